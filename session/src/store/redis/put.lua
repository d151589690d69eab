-- The `put` script of the Redis store (its KEYS and ARGV: see `PUT` in mod.rs).
redis.call('HSET', KEYS[1], '@e', ARGV[3])
redis.call('DEL', KEYS[1])
write(KEYS[1])
return 1
