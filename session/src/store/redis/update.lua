-- The `update` script of the Redis store (its KEYS and ARGV: see `UPDATE` in mod.rs).
local ok, old = writable(KEYS[1])
if not ok then return 0 end
apply(KEYS[1])
reindex(KEYS[1], old, KEYS[1], KEYS[2])
return 1
