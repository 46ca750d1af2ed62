--[[ lookupVisitor: where one visitor stands, read atomically. Every caller is the visitor itself
  (GET /me, POST /claim, its WebSocket), so an admitted visitor seen here is there: its admission
  is marked delivered (it will not be withdrawn, docs/api.md section 7), and one whose admission
  was withdrawn (its token undelivered within the room's delivery window) is marked come back and
  answered as the next in line, not admitted, until the admitter admits it again.
  Caller: waiting-room/scripts.ts lookupVisitor(). Every key in KEYS, all in the room's hash tag.
  Input:
    KEYS[1] q hash {opened, next, at, ret}   KEYS[2] tix hash (visitor -> ticket)
    KEYS[3] pre zset (pre-queue)        KEYS[4] tok hash (visitor -> token)
    KEYS[5] claims:undelivered zset   KEYS[6] claims:withdrawn zset   KEYS[7] claims:returned zset
            (lua/include/admissionCap.lua)
    ARGV[1] visitor id   ARGV[2] its pre-queue member (hex draw key .. visitor id, waiting-room/draw.ts)
    ARGV[3] now (ms)
  Output: { kind, ticket, at, next, opened (0/1), token or "" }
    kind (PlaceKind in scripts.ts) 0: not in the queue.  1: in the pre-queue before open (ticket 0).
    2: holds ticket (admitted when ticket <= at; the token may still be "" after a crash
    between admission and storing the token: the caller signs one on demand). A withdrawn
    visitor gets at = ticket - 1 (next in line) and no token.
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
  local r = redis.call('ZRANK', KEYS[3], ARGV[2])
  if r then
    if opened then kind, ticket = 2, r + 1 else kind = 1 end
  end
end
local tok = ''
if kind == 2 and ticket <= at then
  if redis.call('ZSCORE', KEYS[6], vid) then
    redis.call('ZADD', KEYS[6], ticket, vid)
    if redis.call('ZADD', KEYS[7], 'NX', tonumber(ARGV[3]) or 0, vid) == 1 then
      redis.call('HSET', KEYS[1], 'ret', redis.call('ZCARD', KEYS[7]))
    end
    return { kind, ticket, ticket - 1, nextT, opened and 1 or 0, '' }
  end
  redis.call('ZREM', KEYS[5], vid)
  tok = redis.call('HGET', KEYS[4], vid) or ''
end
return { kind, ticket, at, nextT, opened and 1 or 0, tok }
