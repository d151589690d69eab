-- The `write` script of the Redis store (its KEYS and ARGV: see `WRITE` in mod.rs).
local function write(key)
  -- A retired copy keeps its deadline in `@r` instead of `@e` (see `RETIRED`).
  local deadline = '@e'
  if ARGV[6] == '1' then deadline = '@r' end
  redis.call('HSET', key, '@c', ARGV[2], deadline, ARGV[3], '@s', ARGV[5])
  if ARGV[7] == '1' then
    redis.call('HSET', key, '@o', ARGV[8])
  end
  if ARGV[9] ~= '' then
    redis.call('HSET', key, '@i', ARGV[9])
  end
  each('HSET', key, ARGV, 10, #ARGV)
  redis.call('PEXPIRE', key, ARGV[4])
end
