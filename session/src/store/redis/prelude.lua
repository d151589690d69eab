-- The `prelude` script of the Redis store (its KEYS and ARGV: see `PRELUDE` in mod.rs).
local function each(cmd, key, list, first, last)
  local i = first
  while i <= last do
    local j = math.min(i + 511, last)
    redis.call(cmd, key, unpack(list, i, j))
    i = j + 1
  end
end
local function member(key)
  return string.sub(key, -64)
end
local function extend(set, ttl)
  if redis.call('PTTL', set) < tonumber(ttl) then
    redis.call('PEXPIRE', set, ttl)
  end
end
-- Whether the session can be written (there, not expired, not retired), and the digest of its
-- owner (false when it has none), in one read.
local function writable(key)
  local f = redis.call('HMGET', key, '@e', '@r', '@i')
  return f[1] and tonumber(f[1]) > tonumber(ARGV[2]) and not f[2], f[3]
end
local function apply(key)
  local n = tonumber(ARGV[10])
  local first = 11 + n
  -- The first write grows the hash: when Redis is out of memory it refuses the whole script
  -- here, before anything was changed.
  if ARGV[5] ~= '1' and #ARGV - first < 128 then
    -- A small change set: the times and the entries in one HSET.
    redis.call('HSET', key, '@e', ARGV[3], '@s', ARGV[2], unpack(ARGV, first, #ARGV))
  else
    redis.call('HSET', key, '@e', ARGV[3], '@s', ARGV[2])
    if ARGV[5] == '1' then
      -- Clearing drops the entries, not the creation time, the owner or the retired copy a
      -- renew just linked (a logout must still end it).
      local kept = redis.call('HMGET', key, '@c', '@o', '@i', '@p')
      redis.call('DEL', key)
      redis.call('HSET', key, '@c', kept[1] or ARGV[2], '@e', ARGV[3], '@s', ARGV[2])
      if kept[2] and kept[3] then
        redis.call('HSET', key, '@o', kept[2], '@i', kept[3])
      end
      if kept[4] then
        redis.call('HSET', key, '@p', kept[4])
      end
    end
    each('HSET', key, ARGV, first, #ARGV)
  end
  -- Removed entries and set entries never share a field.
  each('HDEL', key, ARGV, 11, 10 + n)
  if ARGV[6] == '-' then
    redis.call('HDEL', key, '@o', '@i')
  elseif ARGV[6] == '+' then
    redis.call('HSET', key, '@o', ARGV[7], '@i', ARGV[8])
  end
  redis.call('PEXPIRE', key, ARGV[4])
end
-- Moves the session's index entry: it was `from`, owned by the digest `old` (or false), and is
-- now `to`. `given` is the new owner's set when this change names the owner (declared in KEYS);
-- an unchanged owner's set is derived from the digest kept in the hash.
local function reindex(from, old, to, given)
  local new = old
  if ARGV[6] == '+' then
    new = ARGV[8]
  elseif ARGV[6] == '-' then
    new = false
  end
  if old and (old ~= new or from ~= to) then
    redis.call('SREM', ARGV[1] .. old, member(from))
  end
  if new then
    local set = given or (ARGV[1] .. new)
    redis.call('SADD', set, member(to))
    extend(set, ARGV[4])
  end
end
-- Deletes the retired copies a deleted session was renewed from: `previous` is the deleted
-- hash's `@p`, and each copy names the one before it. Only retired hashes, a few at most: a
-- logout within the renew grace window must not leave the old ids readable.
local function end_copies(previous)
  for _ = 1, 8 do
    if not previous or redis.call('HEXISTS', previous, '@r') == 0 then return end
    local before = redis.call('HGET', previous, '@p')
    redis.call('DEL', previous)
    previous = before
  end
end
