-- The `update` script on a Redis Cluster (its KEYS and ARGV: see `cluster::UPDATE`).
local ok, old = writable(KEYS[1])
if not ok then return 0 end
apply(KEYS[1])
return {1, old or ''}
