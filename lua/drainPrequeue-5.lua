--[[ drainPrequeue: give the next batch of pre-queue visitors their tickets, in draw order.
  Bounded: at most ARGV[3] visitors per call, so no call holds Redis long (1,000 ~ 1 ms).
  Any process may call it; each call is atomic, so concurrent drains never hand out a ticket twice.
  Input:
    KEYS[1] q      hash (opened, N, drained, next, at, fd2 = sum of squared rank differences)
    KEYS[2] pre    zset pre-queue (member visitor id, score CSPRNG key); ZPOPMIN = draw order
    KEYS[3] preseq hash visitor id -> join order (removed as drained)
    KEYS[4] tix    hash visitor id -> ticket
    KEYS[5] qpre   list visitor ids of tickets 1..N not yet admitted, in ticket order
    ARGV[1] now (ms)   ARGV[2] opensAt (ms)   ARGV[3] batch size (visitors)
  Output: { opened (0/1), N, drained (after this call), moved (by this call) }
    opened 0: before opensAt, nothing to do.  moved 0 with drained == N: the drain is complete.
]]
local qKey, preKey, preseqKey, tixKey, qpreKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, opensAt, batch = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

--@include openIfDue

local opened, N, drained = openIfDue(qKey, preKey, now, opensAt)
if not opened then return { 0, 0, 0, 0 } end
if drained >= N then return { 1, N, drained, 0 } end
local want = math.min(batch, N - drained)
local popped = redis.call('ZPOPMIN', preKey, want)
local moved = #popped / 2
if moved == 0 then return { 1, N, drained, 0 } end
local tixArgs, vids, sumd2 = {}, {}, 0
local seqs
do
  local ids = {}
  for i = 1, moved do ids[i] = popped[2 * i - 1] end
  seqs = redis.call('HMGET', preseqKey, unpack(ids))
  vids = ids
end
for i = 1, moved do
  local t = drained + i
  tixArgs[2 * i - 1] = vids[i]
  tixArgs[2 * i] = t
  local s = tonumber(seqs[i])
  if s then sumd2 = sumd2 + (t - s) * (t - s) end
end
redis.call('HSET', tixKey, unpack(tixArgs))
redis.call('RPUSH', qpreKey, unpack(vids))
redis.call('HDEL', preseqKey, unpack(vids))
redis.call('HSET', qKey, 'drained', drained + moved)
redis.call('HINCRBYFLOAT', qKey, 'fd2', sumd2)
return { 1, N, drained + moved, moved }
