-- KEYS = [key]. The session hash's names and values as one string, a MessagePack array (empty
-- when the key is absent): the client reads one reply item instead of two per field.
return cmsgpack.pack(redis.call('HGETALL', KEYS[1]))
