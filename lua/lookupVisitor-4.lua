--[[ lookupVisitor: where one visitor stands, read atomically. Read only.
  Caller: waiting-room/scripts.ts lookupVisitor(). Every key in KEYS, all in the room's hash tag.
  Input:
    KEYS[1] q hash {opened, next, at}   KEYS[2] tix hash (visitor -> ticket)
    KEYS[3] pre zset (pre-queue)        KEYS[4] tok hash (visitor -> token)
    ARGV[1] visitor id
  Output: { kind, ticket, at, next, opened (0/1), token or "" }
    kind (PlaceKind in scripts.ts) 0: not in the queue.  1: in the pre-queue before open (ticket 0).
    2: holds ticket (admitted when ticket <= at; the token may still be "" after a crash
    between admission and storing the token: the caller signs one on demand).
    No negative codes.
]]
local vid = ARGV[1]
local st = redis.call('HMGET', KEYS[1], 'opened', 'next', 'at')
local opened = st[1] == '1'
local at, nextT = tonumber(st[3]) or 0, tonumber(st[2]) or 0
local t = redis.call('HGET', KEYS[2], vid)
local kind, ticket = 0, 0
if t then
  kind, ticket = 2, tonumber(t)
else
  local r = redis.call('ZRANK', KEYS[3], vid)
  if r then
    if opened then kind, ticket = 2, r + 1 else kind = 1 end
  end
end
local tok = ''
if kind == 2 and ticket <= at then tok = redis.call('HGET', KEYS[4], vid) or '' end
return { kind, ticket, at, nextT, opened and 1 or 0, tok }
