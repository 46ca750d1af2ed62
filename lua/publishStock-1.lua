--[[ publishStock: write a sale's stock signal unless a newer one is already there, and announce a change.
  Caller: checkout/stock-signal.ts write(). Its one key is in the sale's own hash tag.

  Input:
    KEYS[1] the sale's stock hash (shared/keys.ts saleStockKey)
    ARGV[1] version (sales.stock_version: larger = newer)
    ARGV[2] total, ARGV[3] available, ARGV[4] reserved, ARGV[5] sold
    ARGV[6] state (checkout's sale state)
    ARGV[7] now (ms): written as updatedAt
    ARGV[8] channel to announce on, ARGV[9] the sale id (the message)
  Output:
    1   written and announced (a newer version, or the same version with another state)
    0   the same version and state: updatedAt refreshed only
    -1  an older version than the stored one: nothing written
]]
local cur = redis.call('HMGET', KEYS[1], 'version', 'state')
local stored = tonumber(cur[1])
local v = tonumber(ARGV[1])
if stored and stored > v then return -1 end
if stored == v and cur[2] == ARGV[6] then
  redis.call('HSET', KEYS[1], 'updatedAt', ARGV[7])
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'total', ARGV[2], 'available', ARGV[3],
  'reserved', ARGV[4], 'sold', ARGV[5], 'state', ARGV[6], 'updatedAt', ARGV[7])
redis.call('PUBLISH', ARGV[8], ARGV[9])
return 1
