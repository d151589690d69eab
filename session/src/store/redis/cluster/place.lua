-- The `place` script on a Redis Cluster (its KEYS and ARGV: see `cluster::PLACE`).
local there = redis.call('EXISTS', KEYS[1]) == 1
if ARGV[2] == 'new' and there then return 2 end
if ARGV[2] == 'existing' then
  if not there then return 0 end
  redis.call('DEL', KEYS[1])
end
each('HSET', KEYS[1], ARGV, 3, #ARGV)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
