--[[ include admissionCap: outstanding admissions and the stock cap (docs/api.md section 7).
  Outstanding = admitted visitors who may still take a unit the stock signal shows as available:
    claims  zset visitor -> claim deadline ms (admission + claimSeconds); admitBatch adds,
            checkout removes a visitor when it reserves or is refused sold_out
    used    zset visitor -> stock version of the commit that took its unit, written by checkout;
            counted until the stock signal shows it (its unit is then out of `available`): the
            caller passes usedCutoff, the highest version the signal is known to show
    refused zset visitor -> ms of its latest sold_out refusal, written by checkout; counted for
            claimMs after it, so a unit that comes back goes to those already admitted first
  Each prune is bounded (PRUNE_MAX members per set per call); the rest goes on the next call.
  No per-visitor scan: ZRANGEBYSCORE ... LIMIT + ZREM, and ZCARD.
  Returns outstanding, reservations seen (used entries the signal now shows), claims lapsed.
]]
local PRUNE_MAX = 1000

local function pruneUpTo(key, maxScore)
  local gone = redis.call('ZRANGEBYSCORE', key, '-inf', maxScore, 'LIMIT', 0, PRUNE_MAX)
  if #gone > 0 then redis.call('ZREM', key, unpack(gone)) end
  return #gone
end

local function outstandingAdmissions(claimsKey, usedKey, refusedKey, nowMs, claimMs, usedCutoff)
  local lapsed = pruneUpTo(claimsKey, nowMs)
  local seen = pruneUpTo(usedKey, usedCutoff)
  pruneUpTo(refusedKey, nowMs - claimMs)
  local n = redis.call('ZCARD', claimsKey) + redis.call('ZCARD', usedKey) + redis.call('ZCARD', refusedKey)
  return n, seen, lapsed
end

-- Places the stock leaves for new admissions: ceil(available * overbook) - outstanding
-- (available < 0: checkout does not know the sale, no cap). The 1e-9 keeps 10 * 1.1 at 11.
local function stockRoom(available, overbook, outstanding)
  if available < 0 then return math.huge end
  return math.ceil(available * overbook - 1e-9) - outstanding
end

--[[ Undelivered admissions (docs/api.md section 7): an admitted visitor whose token no one has
  delivered within deliverMs (no socket of it got the admitted message; no /me, /claim or
  WebSocket of it asked) is not there to use it. While the stock cap holds someone back (admitBatch
  decides), its admission is withdrawn: its claim and its
  place against maxActive are freed at once (not after claimSeconds), and its stored token is
  deleted before anyone has it, so nobody holds a token the room no longer counts.
    undelivered zset visitor -> deliver-by ms; admitBatch adds every visitor it admits from the
            line; whoever hands the token out (or sees the visitor) removes it first, atomically
            (lookupVisitor, deliverTokens): a token is either delivered or withdrawn, never both
    withdrawn   zset visitor -> its ticket (0 until it comes back): lookupVisitor answers such a
            visitor as next in line, not admitted
    returned    zset visitor -> ms it came back (lookupVisitor, deliverTokens): admitted again,
            first, when a place is free, before any new ticket
    polled      zset visitor -> ms it was last seen (waiting-room/live.ts, when GET /me or a
            WebSocket connect answers an admitted visitor not delivered yet, or a waiting one near
            the front): delivery grace. A visitor that follows its place by polling GET /me every
            few seconds is there even if its token is not delivered yet: an admission due for
            withdrawal whose visitor was seen within graceMs is kept, its deliver-by moved to
            last seen + graceMs (later than now, so it leaves this call's range: each entry is
            looked at once per call and at most once per poll, no livelock). admitBatch prunes
            it once older than graceMs, every call (bounded like the rest).
  A visitor admitted again after a withdrawal is never in `undelivered` (admitBatch), so it is
  never withdrawn twice. Bounded like the prunes above. Returns how many were withdrawn.
]]
local function withdrawUndelivered(undeliveredKey, withdrawnKey, claimsKey, activeKey, tokKey, polledKey, nowMs, graceMs)
  local gone = redis.call('ZRANGEBYSCORE', undeliveredKey, '-inf', nowMs, 'LIMIT', 0, PRUNE_MAX)
  if #gone == 0 then return 0 end
  redis.call('ZREM', undeliveredKey, unpack(gone))
  local seen = redis.call('ZMSCORE', polledKey, unpack(gone))
  local n = 0
  local keep = {}
  for i = 1, #gone do
    local vid = gone[i]
    -- Still outstanding: it never had its token, so it cannot have reserved or been refused.
    -- (No claim left: it lapsed, an ordinary lapse; nothing to withdraw.)
    local last = tonumber(seen[i])
    if last and last + graceMs > nowMs then
      if redis.call('ZSCORE', claimsKey, vid) then
        keep[#keep + 1] = last + graceMs
        keep[#keep + 1] = vid
      end
    elseif redis.call('ZREM', claimsKey, vid) == 1 then
      redis.call('ZREM', activeKey, vid)
      redis.call('HDEL', tokKey, vid)
      redis.call('ZADD', withdrawnKey, 0, vid)
      n = n + 1
    end
  end
  if #keep > 0 then redis.call('ZADD', undeliveredKey, unpack(keep)) end
  return n
end
