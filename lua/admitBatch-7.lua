--[[ admitBatch: admit the next visitors of one room in ticket order. The only writer of `at`
  (admittedThrough), so with any number of gateway processes each ticket is admitted once.
  Rate: a credit of admitRatePerMin/60 per second, refilled by elapsed time and capped at one
  second's worth (at least 1), so no call admits more than one second's worth at a time.
  Input:
    KEYS[1] q      hash (opened, N, drained, next, at, credit, cts)
    KEYS[2] pre    zset (only read by the open switch)
    KEYS[3] qpre   list tickets 1..N not yet admitted (filled by drainPrequeue)
    KEYS[4] qpost  list tickets N+1.. not yet admitted
    KEYS[5] active zset admitted visitors counting against maxActive (score = token expiry ms)
    KEYS[6] stats  hash          KEYS[7] sec hash of the current second (EXPIRE 120 s)
    ARGV[1] now (ms)   ARGV[2] opensAt (ms)   ARGV[3] admitRatePerMin (visitors/min)
    ARGV[4] maxActive (visitors)   ARGV[5] token TTL (ms)   ARGV[6] most to admit in this call
    ARGV[7] gate: 0 admit, 1 paused, 2 held (no unit available, some reserved), 3 sold_out/closed
  Output: { at, admitted count, waiting (tickets issued and not admitted), active count,
            then vid1, ticket1, vid2, ticket2, ... }
    admitted 0 when: not open yet, gate != 0, no credit, maxActive reached, nobody waiting,
    or the next ticket is a pre-queue ticket not drained yet.
]]
local qKey, preKey, qpreKey, qpostKey, activeKey, statsKey, secKey =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local now, opensAt, rate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local maxActive, ttl, most, gate = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])

--@include openIfDue

local opened, N, drained = openIfDue(qKey, preKey, now, opensAt)
redis.call('ZREMRANGEBYSCORE', activeKey, '-inf', now)
local activeCount = redis.call('ZCARD', activeKey)
if not opened then return { 0, 0, 0, activeCount } end

local st = redis.call('HMGET', qKey, 'next', 'at', 'credit', 'cts')
local nextT, at = tonumber(st[1]) or 0, tonumber(st[2]) or 0
local credit, cts = tonumber(st[3]) or 0, tonumber(st[4]) or now
local elapsed = now - cts
if elapsed < 0 then elapsed = 0 end
local cap = math.max(1, rate / 60)
credit = math.min(cap, credit + elapsed * rate / 60000)
if cts < now then cts = now end

local k = 0
if gate == 0 then
  local limit = nextT
  if at < N then limit = drained end
  k = math.min(math.floor(credit), maxActive - activeCount, limit - at, most)
  if k < 0 then k = 0 end
end

local out = { at + k, k, nextT - at - k, activeCount + k }
if k > 0 then
  local expiry = now + ttl
  local za = {}
  for i = 1, k do
    local t = at + i
    local vid
    if t <= N then vid = redis.call('LPOP', qpreKey) else vid = redis.call('LPOP', qpostKey) end
    out[#out + 1] = vid
    out[#out + 1] = t
    za[2 * i - 1] = expiry
    za[2 * i] = vid
  end
  redis.call('ZADD', activeKey, unpack(za))
  credit = credit - k
  redis.call('HINCRBY', statsKey, 'admitted', k)
  redis.call('HINCRBY', secKey, 'admitted', k)
  redis.call('EXPIRE', secKey, 120)
end
redis.call('HSET', qKey, 'at', at + k, 'credit', tostring(credit), 'cts', cts)
return out
