-- The `delete_all_owned` script of the Redis store (its KEYS and ARGV: see `DELETE_ALL_OWNED` in mod.rs).
local deleted = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if m ~= ARGV[3] then
    local key = ARGV[1] .. m
    local f = redis.call('HMGET', key, '@o', '@r')
    if f[1] == ARGV[2] then
      redis.call('DEL', key)
      if not f[2] then
        deleted[#deleted + 1] = m
      end
    end
    redis.call('SREM', KEYS[1], m)
  end
end
return deleted
