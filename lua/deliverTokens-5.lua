--[[ deliverTokens: hand admitted visitors their tokens, unless their admission was withdrawn
  (docs/api.md section 7, lua/include/admissionCap.lua). Atomic against admitBatch: a visitor is
  marked delivered here (removed from `undelivered`) before its token leaves the gateway, or it
  was withdrawn before and gets none; never both.
  Caller: waiting-room/admitter.ts deliverTokens() (a socket's admitted message, ensureToken).
  Every key in KEYS, all in the room's hash tag.
  Input:
    KEYS[1] q hash (ret)   KEYS[2] tok hash (visitor -> token)
    KEYS[3] claims:undelivered zset   KEYS[4] claims:withdrawn zset   KEYS[5] claims:returned zset
    ARGV[1] now (ms)
    ARGV[2..] triples: visitor id, its ticket, a token signed for it or "" (stored with HSETNX
              when it has none: the first stored wins)
  Output: one token per visitor, in order: the stored one (or the given one, now stored), or ""
    when its admission is withdrawn (it is then marked come back: admitted again first) or it
    has none and none was given. No negative codes.
]]
local now = tonumber(ARGV[1]) or 0
local out = {}
local back = false
for i = 2, #ARGV, 3 do
  local vid, ticket, given = ARGV[i], tonumber(ARGV[i + 1]) or 0, ARGV[i + 2]
  if redis.call('ZSCORE', KEYS[4], vid) then
    redis.call('ZADD', KEYS[4], ticket, vid)
    if redis.call('ZADD', KEYS[5], 'NX', now, vid) == 1 then back = true end
    out[#out + 1] = ''
  else
    redis.call('ZREM', KEYS[3], vid)
    local tok = redis.call('HGET', KEYS[2], vid)
    if not tok and given ~= '' then
      redis.call('HSET', KEYS[2], vid, given)
      tok = given
    end
    out[#out + 1] = tok or ''
  end
end
if back then redis.call('HSET', KEYS[1], 'ret', redis.call('ZCARD', KEYS[5])) end
return out
