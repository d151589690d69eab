-- The `take` script on a Redis Cluster (its KEYS and ARGV: see `cluster::TAKE`).
local f = redis.call('HMGET', KEYS[1], '@e', '@r')
if not f[1] or tonumber(f[1]) <= tonumber(ARGV[1]) or f[2] then return 0 end
local fields = redis.call('HGETALL', KEYS[1])
local kept = 0
if ARGV[2] ~= '' then
  local until_ms = f[1]
  if tonumber(ARGV[2]) < tonumber(until_ms) then until_ms = ARGV[2] end
  local left = tonumber(until_ms) - tonumber(ARGV[1])
  if left > 0 then
    redis.call('HSET', KEYS[1], '@r', until_ms)
    redis.call('HDEL', KEYS[1], '@e')
    redis.call('PEXPIRE', KEYS[1], left)
    kept = 1
  end
end
if kept == 0 then redis.call('DEL', KEYS[1]) end
return {kept, fields}
