--[[ include openIfDue: the room's one-way switch from pre-queue to open. O(1).
  The first script call at or after opensAt fixes N = ZCARD pre. From then on `pre` is frozen
  (joins after open get tickets N+1, N+2, ... instead), so the pre-queue's order at open is the
  zset order of the draw keys (HMAC-SHA256 of the room's committed seed over each entrantId, in
  the member: waiting-room/draw.ts): a pre-queue visitor's ticket is ZRANK + 1, with no O(N)
  shuffle or drain step at all.
  Fields of the q hash: opened ("1" once open), N, next (last ticket issued), at (admittedThrough).
  Returns opened (boolean), N.
]]
local function openIfDue(qKey, preKey, nowMs, opensAtMs)
  local st = redis.call('HMGET', qKey, 'opened', 'N')
  if st[1] == '1' then return true, tonumber(st[2]) or 0 end
  if nowMs < opensAtMs then return false, 0 end
  local n = redis.call('ZCARD', preKey)
  redis.call('HSET', qKey, 'opened', 1, 'N', n, 'next', n, 'at', 0)
  return true, n
end
