-- The `place` script on a Redis Cluster (its KEYS and ARGV: see `cluster::PLACE`).
if ARGV[2] == '1' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 2 end
else
  redis.call('DEL', KEYS[1])
end
each('HSET', KEYS[1], ARGV, 3, #ARGV)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
