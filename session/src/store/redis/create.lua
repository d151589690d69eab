-- The `create` script of the Redis store (its KEYS and ARGV: see `CREATE` in mod.rs).
if redis.call('EXISTS', KEYS[1]) == 1 then return 2 end
write(KEYS[1])
if KEYS[2] then
  redis.call('SADD', KEYS[2], member(KEYS[1]))
  extend(KEYS[2], ARGV[4])
end
return 1
