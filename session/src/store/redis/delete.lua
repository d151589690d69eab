-- The `delete` script of the Redis store (its KEYS and ARGV: see `DELETE` in mod.rs).
local digest = redis.call('HGET', KEYS[1], '@i')
redis.call('DEL', KEYS[1])
if digest then
  redis.call('SREM', ARGV[1] .. digest, member(KEYS[1]))
end
return 1
