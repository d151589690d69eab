-- The `update_small` script of the Redis store (its KEYS and ARGV: see `UPDATE_SMALL` in mod.rs).
local e = redis.call('HGET', KEYS[1], '@e')
if not e or tonumber(e) <= tonumber(ARGV[2]) then return 0 end
local n = tonumber(ARGV[5])
local result = 1
if e == ARGV[3] then
  -- The expiry stays (it moves at most once per refresh interval), and so do the TTL and the
  -- owner's set, whose TTL already covers it.
  redis.call('HSET', KEYS[1], '@s', ARGV[2], unpack(ARGV, 6 + n, #ARGV))
else
  -- A retired copy in the layout of earlier builds (`@e` and `@r` = 1) never gets a longer life.
  local f = redis.call('HMGET', KEYS[1], '@r', '@i')
  if f[1] then return 0 end
  redis.call('HSET', KEYS[1], '@e', ARGV[3], '@s', ARGV[2], unpack(ARGV, 6 + n, #ARGV))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  local owner = f[2]
  if owner and ARGV[1] == '' then
    -- On a Redis Cluster the owner's set is on another slot: the caller moves it.
    result = owner
  elseif owner then
    local set = ARGV[1] .. owner
    redis.call('SADD', set, string.sub(KEYS[1], -64))
    if redis.call('PTTL', set) < tonumber(ARGV[4]) then
      redis.call('PEXPIRE', set, ARGV[4])
    end
  end
end
if n > 0 then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 6, 5 + n))
end
return result
