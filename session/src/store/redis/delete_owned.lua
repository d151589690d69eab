-- The `delete_owned` script of the Redis store (its KEYS and ARGV: see `DELETE_OWNED` in mod.rs).
local f = redis.call('HMGET', KEYS[1], '@o', '@r', '@p')
if f[1] ~= ARGV[1] or f[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], member(KEYS[1]))
end_copies(f[3])
return 1
