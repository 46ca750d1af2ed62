--[[ include openIfDue: the room's one-way switch from pre-queue to open.
  The first script call at or after opensAt fixes N = ZCARD pre (the pre-queue size):
  pre-queue visitors get tickets 1..N (drawn by drainPrequeue), later joiners N+1, N+2, ...
  Fields of the q hash: opened ("1" once open), N, drained (pre-queue tickets assigned so far),
  next (last ticket issued), at (admittedThrough).
  Returns opened (boolean), N, drained.
]]
local function openIfDue(qKey, preKey, nowMs, opensAtMs)
  local st = redis.call('HMGET', qKey, 'opened', 'N', 'drained')
  if st[1] == '1' then return true, tonumber(st[2]) or 0, tonumber(st[3]) or 0 end
  if nowMs < opensAtMs then return false, 0, 0 end
  local n = redis.call('ZCARD', preKey)
  redis.call('HSET', qKey, 'opened', 1, 'N', n, 'drained', 0, 'next', n, 'at', 0)
  return true, n, 0
end
