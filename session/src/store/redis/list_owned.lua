-- The `list_owned` script of the Redis store (its KEYS and ARGV: see `LIST_OWNED` in mod.rs).
local listed = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local f = redis.call('HMGET', ARGV[1] .. m, '@c', '@s', '@e', '@o', '@r', 'd:__session_device')
  if not (f[3] or f[5]) or f[4] ~= ARGV[3] then
    redis.call('SREM', KEYS[1], m)
  elseif not f[5] and tonumber(f[3]) > tonumber(ARGV[2]) then
    listed[#listed + 1] = {m, f[1] or '0', f[2] or f[1] or '0', f[3], f[6] or ''}
  end
end
return listed
