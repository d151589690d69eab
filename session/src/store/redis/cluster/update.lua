-- The `update` script on a Redis Cluster (its KEYS and ARGV: see `cluster::UPDATE`).
local ok, old = writable(KEYS[1])
if not ok then return 0 end
local moved = 0
if redis.call('HGET', KEYS[1], '@e') ~= ARGV[3] then moved = 1 end
apply(KEYS[1])
return {1, old or '', moved}
