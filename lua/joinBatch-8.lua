--[[ joinBatch: place every join of one room that arrived in the same event-loop turn.
  Caller: waiting-room/scripts.ts joinBatch() (the only one). Every key is in KEYS, all in the
  room's hash tag {room} (one cluster slot): 8 fixed keys, then 3 per entry.
  Input:
    KEYS[1] q       hash  {opened, N, next, at, ...} (see include/openIfDue)
    KEYS[2] tix     hash  visitor id -> ticket
    KEYS[3] pre     zset  pre-queue: member visitor id, score a CSPRNG key drawn in Node;
                        frozen at open, a pre-queue visitor's ticket is then ZRANK + 1
    KEYS[4] preseq  hash  visitor id -> pre-queue join order (for the fairness figure)
    KEYS[5] stats   hash  room counters
    KEYS[6] sec     hash  counters of the current second (EXPIRE 120 s)
    KEYS[7] tb:room hash  {tokens, ts} the room's token bucket
    KEYS[8] qpost   list  "<visitor id> <arrival ms>" of tickets N+1, N+2, ... not yet admitted, in
                        ticket order (the arrival feeds the post-open fairness figure, admitBatch)
    KEYS[9 + 3i .. 11 + 3i], for entry i = 0 .. n-1:
      tb:i:<ip>     hash  the entry's ip bucket {tokens, ts, cf = failed captchas}
      tb:s:<subnet> hash  the entry's subnet bucket {tokens, ts}
      hv:<ip>       HyperLogLog of visitor ids seen from the ip (PEXPIRE 10 min; mode off: untouched)
    ARGV[1] now (ms since epoch)          ARGV[2] opensAt (ms since epoch)
    ARGV[3] gate (Gate in scripts.ts, the same in every script): 0 open, 1 paused, 2 held,
            3 sold_out, 4 closed, 5 scheduled. Joins are taken at 0, 1, 2 (pre-queue or open is
            decided here from opensAt); 3, 4, 5 refuse new places.
    ARGV[4..5]  room bucket capacity (tokens), refill (tokens/s)
    ARGV[6..7]  subnet bucket capacity, refill      ARGV[8..9] ip bucket capacity, refill
    ARGV[10] captcha mode: 0 off, 1 suspicious, 2 always      ARGV[11] threshold (score 0..100+)
    ARGV[12] entry count n; then 6 ARGV per entry:
      vid, allowListed (0/1), headerScore (0..100), captchaPassed (0/1),
      randKey (integer < 2^48 drawn with node:crypto; the pre-queue order),
      arrival (ms since epoch, read in Node when the request arrived at that gateway process)
  Output: { at, opened (0/1), then per entry: code, ticket, score, retryAfterSeconds }
    code "have"   already holds a place: ticket (0 = pre-queue before open), nothing spent
    code "new"    placed now with ticket          code "pre"   placed in the pre-queue (ticket 0)
    code "closed" | "sold_out" | "not_open"       the room refuses new joins (gate 4 | 3 | 5)
    code "rate_limited"  a bucket is short; retryAfterSeconds >= 1, nothing spent
    code "captcha_required"  suspicion score >= threshold (or mode always); buckets spent
    No negative codes; every other reply is an error of Redis itself.
]]
local qKey, tixKey, preKey, preseqKey, statsKey, secKey, tbRoom =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local now, opensAt, gate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local roomCap, roomRate = tonumber(ARGV[4]), tonumber(ARGV[5])
local snCap, snRate = tonumber(ARGV[6]), tonumber(ARGV[7])
local ipCap, ipRate = tonumber(ARGV[8]), tonumber(ARGV[9])
local mode, threshold, n = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])

--@include openIfDue

local opened = openIfDue(qKey, preKey, now, opensAt)

-- Token bucket read: {tokens, ts} refilled by elapsed_ms * rate / 1000, capped at capacity.
local function bucketRead(key, cap, rate)
  local h = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens, ts = tonumber(h[1]), tonumber(h[2])
  if not tokens or not ts then return cap, now end
  local elapsed = now - ts
  if elapsed < 0 then elapsed = 0 end
  tokens = tokens + elapsed * rate / 1000
  if tokens > cap then tokens = cap end
  if ts < now then ts = now end
  return tokens, ts
end
local function bucketWrite(key, tokens, ts, cap, rate)
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', ts)
  redis.call('PEXPIRE', key, math.ceil((cap - tokens) * 1000 / rate) + 60000)
end
local function waitFor(tokens, rate)
  local s = math.ceil((1 - tokens) / rate)
  if s < 1 then s = 1 end
  return s
end

local counts = { arrivals = 0, joined = 0, rate_limited = 0, challenged = 0 }
local out = {}
local atNow = tonumber(redis.call('HGET', qKey, 'at') or '0') or 0
out[1] = atNow
out[2] = opened and 1 or 0

for i = 0, n - 1 do
  local o = 13 + i * 6
  local vid = ARGV[o]
  local allow, headerScore, passed, randKey = ARGV[o + 1] == '1', tonumber(ARGV[o + 2]), ARGV[o + 3] == '1', ARGV[o + 4]
  local ipKey, snKey, hvKey = KEYS[9 + i * 3], KEYS[10 + i * 3], KEYS[11 + i * 3]
  local code, ticket, score, retry = nil, 0, 0, 0
  counts.arrivals = counts.arrivals + 1

  -- 1. a visitor that already holds a place gets it back unchanged
  local t = redis.call('HGET', tixKey, vid)
  if t then
    code, ticket = 'have', tonumber(t)
  elseif redis.call('ZSCORE', preKey, vid) then
    code = 'have'
    if opened then ticket = redis.call('ZRANK', preKey, vid) + 1 end
  -- 2. the room refuses new places
  elseif gate == 4 then code = 'closed'
  elseif gate == 3 then code = 'sold_out'
  elseif gate == 5 then code = 'not_open'
  else
    -- 3. token buckets: check all three, spend only if all pass
    local ipTok, ipTs, snTok, snTs
    if not allow then
      local rTok, rTs = bucketRead(tbRoom, roomCap, roomRate)
      snTok, snTs = bucketRead(snKey, snCap, snRate)
      ipTok, ipTs = bucketRead(ipKey, ipCap, ipRate)
      if rTok < 1 or snTok < 1 or ipTok < 1 then
        code = 'rate_limited'
        if rTok < 1 then retry = math.max(retry, waitFor(rTok, roomRate)) end
        if snTok < 1 then retry = math.max(retry, waitFor(snTok, snRate)) end
        if ipTok < 1 then retry = math.max(retry, waitFor(ipTok, ipRate)) end
        counts.rate_limited = counts.rate_limited + 1
      else
        rTok, snTok, ipTok = rTok - 1, snTok - 1, ipTok - 1
        bucketWrite(tbRoom, rTok, rTs, roomCap, roomRate)
        bucketWrite(snKey, snTok, snTs, snCap, snRate)
        bucketWrite(ipKey, ipTok, ipTs, ipCap, ipRate)
      end
    end

    -- mode off: no score at all (no PFADD/PFCOUNT/HGET), so the velocity keys are never touched
    if not code and not allow and not passed and mode ~= 0 then
      -- ==== BEGIN SUSPICION (owned by the bot-defence work; tune only inside this section) ====
      -- score = headerScore (from Node) + what this script can see of the visitor's velocity:
      --   ip bucket depletion x 30, subnet depletion x 20, distinct visitor ids from this ip
      --   above 4 -> +10 each (at most +30), failed captchas on this ip (field cf) x 15.
      score = headerScore + (1 - ipTok / ipCap) * 30 + (1 - snTok / snCap) * 20
      redis.call('PFADD', hvKey, vid)
      redis.call('PEXPIRE', hvKey, 600000)
      local distinct = redis.call('PFCOUNT', hvKey)
      if distinct > 4 then score = score + math.min(30, (distinct - 4) * 10) end
      local cf = tonumber(redis.call('HGET', ipKey, 'cf') or '0') or 0
      score = score + cf * 15
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
        ticket = redis.call('HINCRBY', qKey, 'next', 1)
        redis.call('HSET', tixKey, vid, ticket)
        redis.call('RPUSH', KEYS[8], vid .. ' ' .. ARGV[o + 5])
        code = 'new'
      else
        redis.call('ZADD', preKey, randKey, vid)
        redis.call('HSET', preseqKey, vid, redis.call('HINCRBY', qKey, 'preJoined', 1))
        code = 'pre'
      end
    end
  end
  out[#out + 1] = code
  out[#out + 1] = ticket
  out[#out + 1] = math.floor(score)
  out[#out + 1] = retry
end

for field, c in pairs(counts) do
  if c > 0 then
    redis.call('HINCRBY', statsKey, field, c)
    redis.call('HINCRBY', secKey, field, c)
  end
end
redis.call('EXPIRE', secKey, 120)
return out
