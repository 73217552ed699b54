-- advertise.lua: a worker's main process says it is alive and consumes a queue, for a while
-- (the heartbeat TTL), or withdraws that at a clean shutdown. Expiry is kept on Redis' clock
-- (TIME), so the workers' and the web's clocks need not agree.
--
-- KEYS[1]  online  <prefix>:{_workers}:queue:<queue>   zset: hostname → advertisement end (ms)
-- KEYS[2]  info    <prefix>:{_workers}:info:<hostname> hash: what `testruns list` shows
-- ARGV[1]  hostname
-- ARGV[2]  ttl_ms  how long this advertisement lasts; '0' withdraws it
-- ARGV[3…] field, value pairs stored in the info hash (pid, concurrency, started_ms, …)
--
-- Reply:
--   the number of workers advertised on this queue after this call
--
-- Safe to repeat: advertising again moves the end forward; withdrawing twice is withdrawing.
-- Ended advertisements are dropped here; the set expires with its last member.

local online, info, hostname, ttl = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', online, '-inf', now)
if ttl > 0 then
  redis.call('ZADD', online, now + ttl, hostname)
  if #ARGV > 2 then redis.call('HSET', info, unpack(ARGV, 3)) end
  redis.call('HSET', info, 'hostname', hostname, 'seen_ms', now)
  redis.call('PEXPIRE', info, ttl)
else
  redis.call('ZREM', online, hostname)
  redis.call('DEL', info)
end
local last = redis.call('ZRANGE', online, -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', online, last[2]) end
return redis.call('ZCOUNT', online, '(' .. now, '+inf')
