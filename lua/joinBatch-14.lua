--[[ joinBatch: place every join of one room that arrived in the same event-loop turn.
  Caller: waiting-room/scripts.ts joinBatch() (the only one). Every key is in KEYS, all in the
  room's hash tag {room} (one cluster slot): 14 fixed keys, then each distinct ip's cf key once.
  Input:
    KEYS[1] q       hash  {opened, N, next, at, ...} (see include/openIfDue)
    KEYS[2] tix     hash  visitor id -> ticket
    KEYS[3] pre     zset  pre-queue: score 0, member "<hex draw key><visitor id>" (waiting-room/draw.ts);
                        equal scores order by member bytes, i.e. by draw key, exactly; frozen at
                        open, a pre-queue visitor's ticket is then ZRANK + 1
    KEYS[4] preseq  hash  visitor id -> pre-queue join order (for the fairness figure)
    KEYS[5] stats   hash  room counters
    KEYS[6] sec     hash  counters of the current second (EXPIRE 120 s)
    KEYS[7] b:room  string struct.pack('<dd', tokens, ts): the room's token bucket
    KEYS[8] qpost   list  "<visitor id> <arrival ms>" of tickets N+1, N+2, ... not yet admitted, in
                        ticket order (the arrival feeds the post-open fairness figure, admitBatch)
    KEYS[9], KEYS[10], KEYS[11]  bi:<G>:<g-1>, bi:<G>:<g>, bi:<G>:<g+1>  hash  ip -> its state,
                 struct.pack('<dd', tokens, ts) [.. struct.pack('<d', seen ms) .. <ids>] (doubles:
                 read and written without formatting or parsing a number):
                 the ip buckets of generations g-1, g, g+1 (g = floor(now / G), G in ms: whole
                 minutes >= both the seen window, 10 min, and the longest an ip bucket takes to
                 refill plus a minute, so a state is kept at least as long as its own TTL would
                 have; the state of an ip is the one with the latest ts of the three, a gateway
                 whose clock runs a little ahead may have written g+1), written to g only,
                 PEXPIREAT ARGV[13]. <ids>: the first 8 characters of each distinct visitor id seen
                 from the ip for the score, at most 7 (the most the score counts), kept 10 min
                 after the last one was added, i.e. while now - <seen ms> <= 600000; mode off:
                 never added, the 16 bytes of tokens and ts only
    KEYS[12], KEYS[13], KEYS[14]  bs:<G>:<g-1>, bs:<G>:<g>, bs:<G>:<g+1>  hash  subnet -> struct.pack('<dd', tokens, ts), the same
                 way (G from the subnet bucket's refill), PEXPIREAT ARGV[14]
    KEYS[15 ..]: every distinct ip of the batch once (entries of one ip name it by index):
                 cf:<ip> string: failed captchas of the ip (defence/captcha.ts; read only)
    ARGV[1] now (ms since epoch)          ARGV[2] opensAt (ms since epoch)
    ARGV[3] gate (Gate in scripts.ts, the same in every script): 0 open, 1 paused, 2 held,
            3 sold_out, 4 closed, 5 scheduled. Joins are taken at 0, 1, 2 (pre-queue or open is
            decided here from opensAt); 3, 4, 5 refuse new places.
    ARGV[4..5]  room bucket capacity (tokens), refill (tokens/s)
    ARGV[6..7]  subnet bucket capacity, refill      ARGV[8..9] ip bucket capacity, refill
    ARGV[10] captcha mode: 0 off, 1 suspicious, 2 always      ARGV[11] threshold (score 0..100+)
    ARGV[12] entry count n      ARGV[13], ARGV[14]: PEXPIREAT (ms) of KEYS[10], KEYS[13]
    ARGV[15] the length of a cf key's text before the ip (the ip is the field in KEYS[9..11])
    ARGV[16 ..] 6 per entry, then the batch's distinct subnets (their fields in KEYS[12..14]):
      vid, flags: allowListed (0/1), captchaPassed (0/1), then headerScore (0..100), e.g. "000"
             (one argument instead of three: each costs Redis its parsing and a Lua string),
      member (the visitor's pre-queue member: hex HMAC-SHA256(seed, entrantId) .. vid, from Node,
              waiting-room/draw.ts; all pre-queue scores are 0, so Redis orders by these bytes;
              "" when the caller knows the visitor cannot be in the pre-queue and the room is
              open at `now`: a visitor id minted for this request, or a room opened with N = 0),
      arrival (ms since epoch, read in Node when the request arrived at that gateway process),
      ip key index j (KEYS[j] = cf:<ip>), subnet index k (ARGV[k] = the subnet, e.g. 10.1.2.0/24)
  Output: { at, opened (0/1), then per entry: code, ticket, score, retryAfterSeconds }
    code "have"   already holds a place: ticket (0 = pre-queue before open), nothing spent
    code "new"    placed now with ticket          code "pre"   placed in the pre-queue (ticket 0)
    code "closed" | "sold_out" | "not_open"       the room refuses new joins (gate 4 | 3 | 5)
    code "rate_limited"  a bucket is short; retryAfterSeconds >= 1, nothing spent
    code "captcha_required"  suspicion score >= threshold (or mode always); buckets spent
    No negative codes; every other reply is an error of Redis itself.
  Cost (issue 16): the entries are decided one by one in arrival order, exactly as if each were
  its own call, but every key is read at most once per call (tix with one HMGET, the pre-queue with
  one ZMSCORE; the first time an entry needs a bucket: the room bucket and every cf key with one
  MGET, the ip and subnet buckets with one HMGET per generation) and written at most once at the
  end (the room bucket one SET PX, the ip and subnet buckets one HSET + PEXPIREAT each, tix one
  HSET, qpost one RPUSH, pre one ZADD, the counters one HINCRBY each): a call costs ~20 commands
  whatever its size, none per entry (was ~6 per new join with a hash, a PEXPIRE and a HyperLogLog
  per ip, and ~17 before that), a re-join none of its own.
]]
local qKey, tixKey, preKey, preseqKey, statsKey, secKey, tbRoom, qpostKey =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local now, opensAt, gate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local roomCap, roomRate = tonumber(ARGV[4]), tonumber(ARGV[5])
local snCap, snRate = tonumber(ARGV[6]), tonumber(ARGV[7])
local ipCap, ipRate = tonumber(ARGV[8]), tonumber(ARGV[9])
local mode, threshold, n = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local PER = 6
local ipNow, snNow = KEYS[10], KEYS[13]
local ipExpireAt, snExpireAt, cfPre = ARGV[13], ARGV[14], tonumber(ARGV[15])

--@include openIfDue

local opened, preCount = openIfDue(qKey, preKey, now, opensAt)

-- Token buckets, each read once ({tokens, ts} refilled by elapsed_ms * rate / 1000, capped at
-- capacity) and written once at the end if spent from. A bucket kept past its refill (an ip's
-- lives on for its seen ids, and a generation holds states up to twice its length) reads full,
-- exactly as a missing one.
local SEEN_MS, SEEN_MAX, FP = 600000, 7, 8
local buckets, raw = {}, nil
local ipField = {}
local ipState, snState = {}, {}
-- The state with the latest ts of the three generations' values (ts: the double at byte 9).
local function latest(a, b, c)
  if not a and not c then return b or nil end
  local best, bestTs = nil, -1
  if a then best, bestTs = a, struct.unpack('<d', a, 9) end
  if b then local t = struct.unpack('<d', b, 9); if t > bestTs then best, bestTs = b, t end end
  if c then local t = struct.unpack('<d', c, 9); if t > bestTs then best, bestTs = c, t end end
  return best
end
-- Every bucket and cf key of the batch, the first time an entry needs a bucket: the room bucket and
-- the cf keys in one MGET, the ip and subnet buckets in one HMGET per generation.
local function loadAll()
  raw = {}
  local keys = { tbRoom }
  for j = 15, #KEYS do keys[#keys + 1] = KEYS[j] end
  local v = redis.call('MGET', unpack(keys))
  for j = 1, #keys do raw[keys[j]] = v[j] end
  local ips, sns = {}, {}
  for j = 15, #KEYS do
    local ip = string.sub(KEYS[j], cfPre + 1)
    ipField[KEYS[j]] = ip
    ips[#ips + 1] = ip
  end
  for k = 16 + n * PER, #ARGV do sns[#sns + 1] = ARGV[k] end
  for _, g in ipairs({ { ips, 9, ipState }, { sns, 12, snState } }) do
    local fields, first, into = g[1], g[2], g[3]
    if #fields > 0 then
      local a = redis.call('HMGET', KEYS[first], unpack(fields))
      local b = redis.call('HMGET', KEYS[first + 1], unpack(fields))
      local c = redis.call('HMGET', KEYS[first + 2], unpack(fields))
      for j = 1, #fields do into[fields[j]] = latest(a[j], b[j], c[j]) end
    end
  end
end
-- A bucket from its stored state `v` (false/nil: none), kept in `into` under `name` (the room's
-- key, or the ip's or subnet's field). An ip's seen ids stay in `v` (from byte 25) until written.
local function bucket(into, name, kind, v, cap, rate, cfKey)
  local tokens, ts, seenAt, seenN, seenSrc = nil, nil, nil, 0, nil
  if v and #v >= 16 then
    tokens, ts = struct.unpack('<dd', v)
    if #v >= 24 then
      seenAt = struct.unpack('<d', v, 17)
      if now - seenAt <= SEEN_MS then seenN, seenSrc = (#v - 24) / FP, v else seenAt = nil end
    end
  end
  if not tokens or not ts then
    tokens, ts = cap, now
  else
    local elapsed = now - ts
    if elapsed < 0 then elapsed = 0 end
    tokens = tokens + elapsed * rate / 1000
    if tokens > cap then tokens = cap end
    if ts < now then ts = now end
  end
  local b = { name = name, kind = kind, tokens = tokens, ts = ts, cap = cap, rate = rate, spent = false,
        cf = cfKey and (tonumber(raw[cfKey] or '0') or 0) or 0,
        seenAt = seenAt, seenN = seenN, seenSrc = seenSrc, added = nil }
  into[name] = b
  buckets[#buckets + 1] = b
  return b
end
local roomB, ipBs, snBs = nil, {}, {}
-- Whole numbers are written with %d (Lua's own number format is a slow %.14g).
local function num(x)
  if x == math.floor(x) and x < 1e15 and x > -1e15 then return string.format('%d', x) end
  return tostring(x)
end
-- `fp` is one of the ids in `s` from byte `from` on (a hit must start on an id's boundary).
local function hasId(s, from, fp)
  local at = from
  while true do
    local i = string.find(s, fp, at, true)
    if not i then return false end
    if (i - from) % FP == 0 then return true end
    at = i + 1
  end
end
local function waitFor(tokens, rate)
  local s = math.ceil((1 - tokens) / rate)
  if s < 1 then s = 1 end
  return s
end

-- Who already holds a place: one HMGET of tix for the batch, one ZMSCORE of the pre-queue for the
-- entries that may be in it (none once the room opened with an empty pre-queue).
local vids, members = {}, {}
for i = 0, n - 1 do
  local o = 16 + i * PER
  vids[i + 1] = ARGV[o]
  if ARGV[o + 2] ~= '' then members[#members + 1] = ARGV[o + 2] end
end
local tixOf = redis.call('HMGET', tixKey, unpack(vids))
local inPre = {}
if #members > 0 and not (opened and preCount == 0) then
  local sc = redis.call('ZMSCORE', preKey, unpack(members))
  for j = 1, #members do if sc[j] then inPre[members[j]] = true end end
end

local counts = { arrivals = 0, joined = 0, rate_limited = 0, challenged = 0 }
local out = {}
local qf = redis.call('HMGET', qKey, 'at', 'next', 'preJoined')
local atNow = tonumber(qf[1] or '0') or 0
out[1] = atNow
out[2] = opened and 1 or 0

-- Places given in this call (a visitor twice in one batch gets its place back the second time).
local placed = {}
local nextT, preSeq = nil, nil
local tixNew, qpostNew, preNew, preseqNew = {}, {}, {}, {}

for i = 0, n - 1 do
  local o = 16 + i * PER
  local vid = ARGV[o]
  local flags, member = ARGV[o + 1], ARGV[o + 2]
  local allow, passed, headerScore = false, false, 0
  if flags ~= '000' then
    allow, passed, headerScore = string.byte(flags, 1) == 49, string.byte(flags, 2) == 49, tonumber(string.sub(flags, 3))
  end
  local ipIdx, snIdx = tonumber(ARGV[o + 4]), tonumber(ARGV[o + 5])
  local code, ticket, score, retry = nil, 0, 0, 0
  counts.arrivals = counts.arrivals + 1

  -- 1. a visitor that already holds a place gets it back unchanged
  local t = tixOf[i + 1]
  local p = placed[vid]
  if t then
    code, ticket = 'have', tonumber(t)
  elseif p then
    code, ticket = 'have', p
  elseif inPre[member] then
    code = 'have'
    if opened then ticket = redis.call('ZRANK', preKey, member) + 1 end
  -- 2. the room refuses new places
  elseif gate == 4 then code = 'closed'
  elseif gate == 3 then code = 'sold_out'
  elseif gate == 5 then code = 'not_open'
  else
    -- 3. token buckets: check all three, spend only if all pass
    local ipB, snB
    if not allow then
      if not raw then loadAll() end
      local rB = roomB
      if not rB then rB = bucket({}, tbRoom, 'room', raw[tbRoom], roomCap, roomRate); roomB = rB end
      local sn, ip = ARGV[snIdx], ipField[KEYS[ipIdx]]
      snB = snBs[sn] or bucket(snBs, sn, 'subnet', snState[sn], snCap, snRate)
      ipB = ipBs[ip] or bucket(ipBs, ip, 'ip', ipState[ip], ipCap, ipRate, KEYS[ipIdx])
      if rB.tokens < 1 or snB.tokens < 1 or ipB.tokens < 1 then
        code = 'rate_limited'
        if rB.tokens < 1 then retry = math.max(retry, waitFor(rB.tokens, roomRate)) end
        if snB.tokens < 1 then retry = math.max(retry, waitFor(snB.tokens, snRate)) end
        if ipB.tokens < 1 then retry = math.max(retry, waitFor(ipB.tokens, ipRate)) end
        counts.rate_limited = counts.rate_limited + 1
      else
        rB.tokens, snB.tokens, ipB.tokens = rB.tokens - 1, snB.tokens - 1, ipB.tokens - 1
        rB.spent, snB.spent, ipB.spent = true, true, true
      end
    end

    -- mode off: no score at all, so no visitor id is kept for it
    if not code and not allow and not passed and mode ~= 0 then
      -- ==== BEGIN SUSPICION (owned by the bot-defence work; tune only inside this section) ====
      -- score = headerScore (from Node) + what this script can see of the visitor's velocity:
      --   ip bucket depletion x 30, subnet depletion x 20, distinct visitor ids from this ip
      --   above 4 -> +10 each (at most +30), failed captchas on this ip (field cf) x 15.
      --   Distinct ids are counted exactly up to 7 (the most the score uses), kept with the ip bucket.
      score = headerScore + (1 - ipB.tokens / ipCap) * 30 + (1 - snB.tokens / snCap) * 20 + ipB.cf * 15
      --   The id is always added, so the count is there when it can decide; it moves the score
      --   only when the rest is under the threshold by no more than its +30 (else the score
      --   returned is the rest, a lower bound, as before).
      if ipB.seenN < SEEN_MAX then
        local fp = string.sub(vid, 1, FP)
        if not ((ipB.seenSrc and hasId(ipB.seenSrc, 25, fp)) or (ipB.added and hasId(ipB.added, 1, fp))) then
          ipB.added = (ipB.added or '') .. fp
          ipB.seenN = ipB.seenN + 1
        end
      end
      ipB.seenAt = now
      if mode == 1 and score < threshold and score + 30 >= threshold and ipB.seenN > 4 then
        score = score + math.min(30, (ipB.seenN - 4) * 10)
      end
      if mode == 2 or (mode == 1 and score >= threshold) then
        code = 'captcha_required'
        counts.challenged = counts.challenged + 1
      end
      -- ==== END SUSPICION ====
    end

    -- 5. place the visitor
    if not code then
      counts.joined = counts.joined + 1
      if opened then
        if not nextT then nextT = tonumber(qf[2] or '0') or 0 end
        nextT = nextT + 1
        ticket = nextT
        tixNew[#tixNew + 1] = vid
        tixNew[#tixNew + 1] = num(ticket)
        qpostNew[#qpostNew + 1] = vid .. ' ' .. ARGV[o + 3]
        placed[vid] = ticket
        code = 'new'
      else
        if member == '' then return redis.error_reply('joinBatch: a pre-queue join without its member') end
        if not preSeq then preSeq = tonumber(qf[3] or '0') or 0 end
        preSeq = preSeq + 1
        preNew[#preNew + 1] = 0
        preNew[#preNew + 1] = member
        preseqNew[#preseqNew + 1] = vid
        preseqNew[#preseqNew + 1] = num(preSeq)
        placed[vid] = 0
        code = 'pre'
      end
    end
  end
  out[#out + 1] = code
  out[#out + 1] = ticket
  out[#out + 1] = math.floor(score)
  out[#out + 1] = retry
end

-- Every write once: a bucket as its two doubles, an ip's with its seen time and ids; the room's
-- with the TTL its refill needs plus a minute, the ip and subnet states in their current generation.
local ipW, snW = {}, {}
for _, b in ipairs(buckets) do
  if b.spent then
    local v = struct.pack('<dd', b.tokens, b.ts)
    if b.seenAt then
      v = v .. struct.pack('<d', b.seenAt) .. (b.seenSrc and string.sub(b.seenSrc, 25) or '') .. (b.added or '')
    end
    if b.kind == 'ip' then ipW[#ipW + 1] = b.name; ipW[#ipW + 1] = v
    elseif b.kind == 'subnet' then snW[#snW + 1] = b.name; snW[#snW + 1] = v
    else redis.call('SET', b.name, v, 'PX', num(math.ceil((b.cap - b.tokens) * 1000 / b.rate) + 60000)) end
  end
end
if #ipW > 0 then
  redis.call('HSET', ipNow, unpack(ipW))
  redis.call('PEXPIREAT', ipNow, ipExpireAt)
end
if #snW > 0 then
  redis.call('HSET', snNow, unpack(snW))
  redis.call('PEXPIREAT', snNow, snExpireAt)
end
if nextT then
  redis.call('HSET', qKey, 'next', nextT)
  redis.call('HSET', tixKey, unpack(tixNew))
  redis.call('RPUSH', qpostKey, unpack(qpostNew))
end
if preSeq then
  redis.call('HSET', qKey, 'preJoined', preSeq)
  redis.call('ZADD', preKey, unpack(preNew))
  redis.call('HSET', preseqKey, unpack(preseqNew))
end
for field, c in pairs(counts) do
  if c > 0 then
    redis.call('HINCRBY', statsKey, field, c)
    redis.call('HINCRBY', secKey, field, c)
  end
end
redis.call('EXPIRE', secKey, 120)
return out
