--[[ saveRoomConfig: compare-and-set a room's config JSON and append its audit entry.
  Caller: waiting-room/scripts.ts saveRoomConfig(). Every key in KEYS, all in the room's hash tag.
  Input:
    KEYS[1] cfg string (room config JSON, field `version`)   KEYS[2] audit list (newest first)
    KEYS[3] q hash (field `opened` is "1" once the room has opened: see include/openIfDue.lua)
    ARGV[1] expected current version (0 = the room does not exist yet)
    ARGV[2] new config JSON   ARGV[3] audit entry JSON   ARGV[4] audit cap (entries kept)
    ARGV[5] "1" when this change moves `opensAt`, else "0"
  Output (SaveConfigReply in scripts.ts):
     1 saved
     0 the stored version is not ARGV[1] (another writer won: re-read and retry)
    -1 refused: `opensAt` cannot move once the room has opened (its pre-queue is drawn)
]]
local cur = redis.call('GET', KEYS[1])
local v = 0
if cur then v = tonumber(cjson.decode(cur).version) or 0 end
if v ~= tonumber(ARGV[1]) then return 0 end
if ARGV[5] == '1' and redis.call('HGET', KEYS[3], 'opened') == '1' then return -1 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
return 1
