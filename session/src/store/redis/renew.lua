-- The `renew` script of the Redis store (its KEYS and ARGV: see `RENEW` in mod.rs).
if not writable(KEYS[1]) then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
local old = redis.call('HGET', KEYS[1], '@i')
if ARGV[9] == '' then
  redis.call('HSET', KEYS[1], '@e', ARGV[3])
  redis.call('RENAME', KEYS[1], KEYS[2])
else
  local fields = redis.call('HGETALL', KEYS[1])
  each('HSET', KEYS[2], fields, 1, #fields)
  local until_ms = redis.call('HGET', KEYS[1], '@e')
  if tonumber(ARGV[9]) < tonumber(until_ms) then until_ms = ARGV[9] end
  local left = tonumber(until_ms) - tonumber(ARGV[2])
  if left > 0 then
    redis.call('HSET', KEYS[1], '@r', until_ms)
    redis.call('HDEL', KEYS[1], '@e')
    redis.call('PEXPIRE', KEYS[1], left)
    -- The new hash names its retired copy, which a delete of the session then ends too.
    redis.call('HSET', KEYS[2], '@p', KEYS[1])
  else
    redis.call('DEL', KEYS[1])
  end
end
apply(KEYS[2])
reindex(KEYS[1], old, KEYS[2], KEYS[3])
if old and ARGV[9] ~= '' and redis.call('EXISTS', KEYS[1]) == 1 then
  -- The retired copy stays in its owner's set. `reindex` may have emptied (and so deleted)
  -- that set when the owner changed: give it back a TTL that covers the copy.
  redis.call('SADD', ARGV[1] .. old, member(KEYS[1]))
  extend(ARGV[1] .. old, redis.call('PTTL', KEYS[1]))
end
return 1
