-- The `index` script on a Redis Cluster (its KEYS and ARGV: see `cluster::INDEX`).
local n = tonumber(ARGV[2])
each('SREM', KEYS[1], ARGV, 3, 2 + n)
if #ARGV > 2 + n then
  each('SADD', KEYS[1], ARGV, 3 + n, #ARGV)
  extend(KEYS[1], ARGV[1])
end
return 1
