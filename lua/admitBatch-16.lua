--[[ admitBatch: admit the next visitors of one room in ticket order. The only writer of `at`
  (admittedThrough), so with any number of gateway processes each ticket is admitted once.
  Rate: a credit of admitRatePerMin/60 per second, refilled by elapsed time and capped at one
  second's worth (at least 1), so no call admits more than one second's worth at a time.
  Stock (docs/api.md section 7, lua/include/admissionCap.lua): no more than
  ceil(available * overbook) outstanding admissions at once; `held` while they reach it. While the
  cap holds someone back, an admission whose token nobody delivered within ARGV[13] ms, and whose
  visitor was not seen within ARGV[15] ms either (a GET /me poll), is withdrawn
  (withdrawUndelivered in admissionCap.lua); those who come back after that are admitted again
  first, and never withdrawn again.
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
    KEYS[12] tok hash (visitor -> token; a withdrawn visitor's is deleted)
    KEYS[13] claims:undelivered zset   KEYS[14] claims:withdrawn zset   KEYS[15] claims:returned zset
    KEYS[16] claims:polled zset (visitor -> ms last seen: delivery grace, admissionCap.lua)
    ARGV[1] now (ms)   ARGV[2] opensAt (ms)   ARGV[3] admitRatePerMin (visitors/min)
    ARGV[4] maxActive (visitors)   ARGV[5] token TTL (ms)   ARGV[6] most to admit in this call
    ARGV[7] gate (Gate in scripts.ts, the same in every script): 0 open, 1 paused, 2 held (no
            unit available, some reserved), 3 sold_out, 4 closed, 5 scheduled; admits only at 0
    ARGV[8] the fairness sample's cap (entries; 0 = keep no sample)
    ARGV[9] available: the sale's unreserved units from the stock signal, -1 when unknown (no cap)
    ARGV[10] used cutoff: reservations of this stock version or older are in `available`
    ARGV[11] overbook (1..10)   ARGV[12] claimSeconds in ms
    ARGV[13] deliver within (ms): an admission from the line whose token is not delivered by then
             is withdrawn (0 = never)
    ARGV[14] the room's sale: the signal of ARGV[9]/ARGV[10] is that sale's
    ARGV[15] delivery grace (ms): an undelivered admission whose visitor was seen (KEYS[16]) within
             this is not withdrawn yet; it keeps its window until this long after it was last seen
  Stale signals: callers read the signal before calling, so a caller on a slow process may pass a
  signal older than one a call already applied. That call pruned `claims:used` up to its version,
  so the older `available` (which still counts those units free) would admit past the stock. The
  newest signal applied is kept in q (sver, ssale, avl) and used instead of an older one.
  Also writes to q: out (outstanding after this call), avl (ARGV[9], or the newer one kept),
  sver and ssale (its version and sale), held (1 when the stock
  holds the line: gate 2, or the cap reached), cres / clap (running counts of admissions that
  went on to reserve / whose claim lapsed or was withdrawn: the room's evidence for `chance`),
  cold (claims still outstanding but past half of claimSeconds: admissions not resolved yet that
  probably will not reserve, since most reservations come within seconds; docs/chance.md,
  censoring; one ZCOUNT),
  ret (visitors come back after a withdrawal, waiting to be admitted again).
  Output: { at, admitted count, waiting (tickets issued and not admitted), active count,
            then vid1, ticket1, vid2, ticket2, ... }: visitors admitted again (returned) first,
            then new tickets in ticket order
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
local tokKey, undeliveredKey, withdrawnKey, returnedKey, polledKey = KEYS[12], KEYS[13], KEYS[14], KEYS[15], KEYS[16]
local now, opensAt, rate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local maxActive, ttl, most, gate = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local sampleCap = tonumber(ARGV[8] or '0') or 0
local available, usedCutoff = tonumber(ARGV[9]) or -1, tonumber(ARGV[10]) or 0
local overbook, claimMs = tonumber(ARGV[11]) or 1, tonumber(ARGV[12]) or 120000
local deliverMs = tonumber(ARGV[13]) or 0
local sale = ARGV[14] or ''
local graceMs = tonumber(ARGV[15]) or 0
if available >= 0 then
  local seen = redis.call('HMGET', qKey, 'sver', 'ssale', 'avl')
  local seenVer = tonumber(seen[1])
  if seenVer and seen[2] == sale and seenVer > usedCutoff and tonumber(seen[3]) then
    usedCutoff, available = seenVer, tonumber(seen[3])
  end
end

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
-- Undelivered admissions are withdrawn when the stock cap holds someone back (in the line or come
-- back): their places go to the next visitors in this very call. Without a stock signal, or with
-- places to spare, an undelivered admission keeps its claim until claimSeconds as before.
-- Last-seen marks older than the grace can keep nothing (bounded prune, every call).
if graceMs > 0 then pruneUpTo(polledKey, now - graceMs) end
local withdrawn = 0
local returning = redis.call('ZCARD', returnedKey)
if room < (nextT - at) + returning then
  withdrawn = withdrawUndelivered(undeliveredKey, withdrawnKey, claimsKey, activeKey, tokKey, polledKey, now, graceMs)
  if withdrawn > 0 then
    outstanding = outstanding - withdrawn
    room = stockRoom(available, overbook, outstanding)
    activeCount = redis.call('ZCARD', activeKey)
  end
end
local k, kr = 0, 0
local back = {}
if gate == 0 then
  local budget = math.min(math.floor(credit), maxActive - activeCount, most, room)
  if budget > 0 then
    -- Those who came back after a withdrawal go first (they were admitted before anyone waiting).
    local popped = redis.call('ZPOPMIN', returnedKey, budget)
    for i = 1, #popped, 2 do
      local vid = popped[i]
      local ticket = tonumber(redis.call('ZSCORE', withdrawnKey, vid)) or 0
      redis.call('ZREM', withdrawnKey, vid)
      back[#back + 1] = vid
      back[#back + 1] = ticket
    end
    kr = #back / 2
    k = math.min(budget - kr, nextT - at)
  end
  if k < 0 then k = 0 end
end
local held = (gate == 2 or (gate == 0 and room <= 0)) and 1 or 0

local out = { at + k, k + kr, nextT - at - k, activeCount + k + kr }
if kr > 0 then
  -- Admitted again: a claim from now, a place against maxActive; not withdrawn again for want
  -- of delivery (they have just shown they are there; a claim of theirs still lapses).
  local za, zc = {}, {}
  for i = 1, kr do
    local vid = back[2 * i - 1]
    out[#out + 1] = vid
    out[#out + 1] = back[2 * i]
    za[2 * i - 1], za[2 * i] = now + ttl, vid
    zc[2 * i - 1], zc[2 * i] = now + claimMs, vid
  end
  redis.call('ZADD', activeKey, unpack(za))
  redis.call('ZADD', claimsKey, unpack(zc))
  redis.call('HINCRBY', statsKey, 'readmitted', kr)
end
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
  -- Post-open tickets: the arrival ms of each (joinedAt[i] for vids[i]); its join is the latest
  -- sign of a visitor admitted soon after joining (delivery grace, below).
  local joinedAt = {}
  if rest > 0 then
    local more = redis.call('LPOP', qpostKey, rest) or {}
    local arrivals = {}
    for i = 1, #more do
      local e = more[i]
      local sp = string.find(e, ' ', 1, true)
      if sp then
        vids[#vids + 1] = string.sub(e, 1, sp - 1)
        arrivals[#arrivals + 1] = string.sub(e, sp + 1)
        joinedAt[#vids] = tonumber(arrivals[#arrivals])
      else
        vids[#vids + 1] = e
      end
    end
    if sampleCap > 0 and #arrivals > 0 then
      redis.call('RPUSH', sampleKey, unpack(arrivals))
      redis.call('LTRIM', sampleKey, -sampleCap, -1)
    end
  end
  local za, zc, zu = {}, {}, {}
  local expiry, deadline, deliverBy = now + ttl, now + claimMs, now + deliverMs
  for i = 1, #vids do
    out[#out + 1] = vids[i]
    out[#out + 1] = at + i
    za[2 * i - 1] = expiry
    za[2 * i] = vids[i]
    zc[2 * i - 1] = deadline
    zc[2 * i] = vids[i]
    -- Delivery grace: one who joined within graceMs was seen then (a polling page's next poll may
    -- come up to graceMs after its join); later polls are noted in claims:polled.
    local joined = joinedAt[i]
    zu[2 * i - 1] = (joined and joined + graceMs > deliverBy) and joined + graceMs or deliverBy
    zu[2 * i] = vids[i]
  end
  redis.call('ZADD', activeKey, unpack(za))
  redis.call('ZADD', claimsKey, unpack(zc))
  if deliverMs > 0 then redis.call('ZADD', undeliveredKey, unpack(zu)) end
  credit = credit - k - kr
  redis.call('HINCRBY', statsKey, 'admitted', k)
  redis.call('HINCRBY', secKey, 'admitted', k)
  redis.call('EXPIRE', secKey, 120)
end
if k == 0 and kr > 0 then credit = credit - kr end
-- cold, censoring (docs/chance.md): a reservation is seen within seconds of admission, a lapse
-- only after claimSeconds. Claims past half of claimSeconds without a reservation are counted for
-- `chance` as lapses already (the lapsed ones, <= now, are pruned above or counted next call).
redis.call('HSET', qKey, 'at', at + k, 'credit', tostring(credit), 'cts', cts,
  'out', outstanding + k + kr, 'avl', available, 'held', held, 'ret', returning - kr,
  'cold', redis.call('ZCOUNT', claimsKey, '(' .. now, now + claimMs / 2))
if available >= 0 then redis.call('HSET', qKey, 'sver', usedCutoff, 'ssale', sale) end
if seen > 0 then redis.call('HINCRBY', qKey, 'cres', seen) end
if lapsed + withdrawn > 0 then redis.call('HINCRBY', qKey, 'clap', lapsed + withdrawn) end
return out
