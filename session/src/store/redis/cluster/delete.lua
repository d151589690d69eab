-- The `delete` script on a Redis Cluster (its KEYS and ARGV: see `cluster::DELETE`).
local f = redis.call('HMGET', KEYS[1], '@o', '@r', '@i', '@p')
local mode = ARGV[1]
if (mode == 'owned' or mode == 'owned-live') and f[1] ~= ARGV[2] then return 0 end
if mode == 'owned-live' and f[2] then return 0 end
if mode == 'retired' and not f[2] then return 0 end
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
local retired = 0
if f[2] then retired = 1 end
return {f[3] or '', f[4] or '', retired}
