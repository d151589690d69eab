-- The `delete` script of the Redis store (its KEYS and ARGV: see `DELETE` in mod.rs).
local f = redis.call('HMGET', KEYS[1], '@i', '@p')
redis.call('DEL', KEYS[1])
if f[1] then
  redis.call('SREM', ARGV[1] .. f[1], member(KEYS[1]))
end
end_copies(f[2])
return 1
