--[[ putSigningKey: install a signing key pair shared by every gateway process.
  Caller: waiting-room/scripts.ts putSigningKey(). One key, no hash tag needed.
  Input:
    KEYS[1] keys hash: current = kid; "k:"..kid = key JSON; "retired:"..kid = ms it stopped signing
    ARGV[1] kid   ARGV[2] key JSON (private + public JWK)   ARGV[3] mode "init" | "rotate"
    ARGV[4] now (ms)
  Output: the current kid after the call.
    init: when a current key exists it is kept and returned (the caller's pair is discarded), so
    processes racing at start-up all end up with the same key.
    rotate: the new key becomes current; the old one is marked retired at now.
    No negative codes.
]]
local cur = redis.call('HGET', KEYS[1], 'current')
if ARGV[3] == 'init' and cur then return cur end
if cur then redis.call('HSET', KEYS[1], 'retired:' .. cur, ARGV[4]) end
redis.call('HSET', KEYS[1], 'k:' .. ARGV[1], ARGV[2], 'current', ARGV[1])
return ARGV[1]
