--[[ admitBatch: admit the next visitors of one room in ticket order. The only writer of `at`
  (admittedThrough), so with any number of gateway processes each ticket is admitted once.
  Rate: a credit of admitRatePerMin/60 per second, refilled by elapsed time and capped at one
  second's worth (at least 1), so no call admits more than one second's worth at a time.
  Stock (docs/api.md section 7, lua/include/admissionCap.lua): no more than
  ceil(available * overbook) outstanding admissions at once; `held` while they reach it.
  Bounded: at most ARGV[6] visitors per call (O(log N + k) for the pre-queue part).
  Caller: waiting-room/scripts.ts admitBatch() (the only one). Every key is in KEYS, all in the
  room's hash tag {room} (one cluster slot). The sale's stock signal lives in the sale's slot: the
  caller reads it and passes what this script needs of it in ARGV (the gate).
  Input:
    KEYS[1] q      hash (opened, N, next, at, credit, cts, fsum, fn)
    KEYS[2] pre    zset pre-queue, frozen at open: ticket t <= N is the member of rank t-1
                   (member = 64 hex chars of draw key, then the visitor id)
    KEYS[3] preseq hash visitor id -> pre-queue join order (fairness figure; removed once admitted)
    KEYS[4] qpost  list "<vid> <arrival ms>" of tickets N+1.. not yet admitted, in ticket order
    KEYS[5] active zset admitted visitors counting against maxActive (score = token expiry ms)
    KEYS[6] stats  hash          KEYS[7] sec hash of the current second (EXPIRE 120 s)
    KEYS[8] fair:post list: the post-open fairness sample, the arrival ms of each admitted
            post-open ticket in admission order, capped to the last ARGV[8] entries (LTRIM)
    KEYS[9] claims zset   KEYS[10] claims:used zset   KEYS[11] claims:refused zset (admissionCap.lua)
    ARGV[1] now (ms)   ARGV[2] opensAt (ms)   ARGV[3] admitRatePerMin (visitors/min)
    ARGV[4] maxActive (visitors)   ARGV[5] token TTL (ms)   ARGV[6] most to admit in this call
    ARGV[7] gate (Gate in scripts.ts, the same in every script): 0 open, 1 paused, 2 held (no
            unit available, some reserved), 3 sold_out, 4 closed, 5 scheduled; admits only at 0
    ARGV[8] the fairness sample's cap (entries; 0 = keep no sample)
    ARGV[9] available: the sale's unreserved units from the stock signal, -1 when unknown (no cap)
    ARGV[10] used cutoff: reservations of this stock version or older are in `available`
    ARGV[11] overbook (1..10)   ARGV[12] claimSeconds in ms
  Also writes to q: out (outstanding after this call), avl (ARGV[9]), held (1 when the stock
  holds the line: gate 2, or the cap reached), cres / clap (running counts of admissions that
  went on to reserve / whose claim lapsed: the room's evidence for `chance`).
  Output: { at, admitted count, waiting (tickets issued and not admitted), active count,
            then vid1, ticket1, vid2, ticket2, ... }
    admitted 0 when: not open yet, gate != 0, credit < 1, maxActive reached, the stock cap
    reached, nobody waiting.
    No negative codes; every other reply is an error of Redis itself.
  Fairness figure: for every admitted pre-queue visitor, fsum += join order / N and fn += 1, so
  fsum / fn is the mean join percentile of those admitted (0.5 = joining early was worth nothing).
  After open, the arrival ms of admitted tickets go to the sample KEYS[8] (admin.ts compares that
  order with arrival order: Kendall tau, overtakes).
]]
local qKey, preKey, preseqKey, qpostKey, activeKey, statsKey, secKey, sampleKey, claimsKey, usedKey, refusedKey =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local now, opensAt, rate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local maxActive, ttl, most, gate = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local sampleCap = tonumber(ARGV[8] or '0') or 0
local available, usedCutoff = tonumber(ARGV[9]) or -1, tonumber(ARGV[10]) or 0
local overbook, claimMs = tonumber(ARGV[11]) or 1, tonumber(ARGV[12]) or 120000

--@include openIfDue
--@include admissionCap

local opened, N = openIfDue(qKey, preKey, now, opensAt)
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

local outstanding, seen, lapsed = outstandingAdmissions(claimsKey, usedKey, refusedKey, now, claimMs, usedCutoff)
local room = stockRoom(available, overbook, outstanding)
local k = 0
if gate == 0 then
  k = math.min(math.floor(credit), maxActive - activeCount, nextT - at, most, room)
  if k < 0 then k = 0 end
end
local held = (gate == 2 or (gate == 0 and room <= 0)) and 1 or 0

local out = { at + k, k, nextT - at - k, activeCount + k }
if k > 0 then
  local vids = {}
  -- Pre-queue tickets at+1 .. min(at+k, N): ranks at .. in the frozen zset.
  if at < N then
    local last = math.min(at + k, N)
    vids = redis.call('ZRANGE', preKey, at, last - 1)
    for i = 1, #vids do vids[i] = string.sub(vids[i], 65) end
    local seqs = redis.call('HMGET', preseqKey, unpack(vids))
    local fsum, fn = 0, 0
    for i = 1, #seqs do
      local s = tonumber(seqs[i])
      if s then fsum, fn = fsum + s / N, fn + 1 end
    end
    redis.call('HDEL', preseqKey, unpack(vids))
    if fn > 0 then
      redis.call('HINCRBYFLOAT', qKey, 'fsum', fsum)
      redis.call('HINCRBY', qKey, 'fn', fn)
    end
  end
  -- Post-open tickets from the arrival-order list.
  local rest = k - #vids
  if rest > 0 then
    local more = redis.call('LPOP', qpostKey, rest) or {}
    local arrivals = {}
    for i = 1, #more do
      local e = more[i]
      local sp = string.find(e, ' ', 1, true)
      if sp then
        vids[#vids + 1] = string.sub(e, 1, sp - 1)
        arrivals[#arrivals + 1] = string.sub(e, sp + 1)
      else
        vids[#vids + 1] = e
      end
    end
    if sampleCap > 0 and #arrivals > 0 then
      redis.call('RPUSH', sampleKey, unpack(arrivals))
      redis.call('LTRIM', sampleKey, -sampleCap, -1)
    end
  end
  local za, zc = {}, {}
  local expiry, deadline = now + ttl, now + claimMs
  for i = 1, #vids do
    out[#out + 1] = vids[i]
    out[#out + 1] = at + i
    za[2 * i - 1] = expiry
    za[2 * i] = vids[i]
    zc[2 * i - 1] = deadline
    zc[2 * i] = vids[i]
  end
  redis.call('ZADD', activeKey, unpack(za))
  redis.call('ZADD', claimsKey, unpack(zc))
  credit = credit - k
  redis.call('HINCRBY', statsKey, 'admitted', k)
  redis.call('HINCRBY', secKey, 'admitted', k)
  redis.call('EXPIRE', secKey, 120)
end
redis.call('HSET', qKey, 'at', at + k, 'credit', tostring(credit), 'cts', cts,
  'out', outstanding + k, 'avl', available, 'held', held)
if seen > 0 then redis.call('HINCRBY', qKey, 'cres', seen) end
if lapsed > 0 then redis.call('HINCRBY', qKey, 'clap', lapsed) end
return out
