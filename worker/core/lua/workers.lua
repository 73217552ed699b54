-- workers.lua: how many workers consume a queue now (advertisements not yet ended, on Redis'
-- clock), and, when asked, who they are. Reads only.
--
-- KEYS[1]  online       <prefix>:{_workers}:queue:<queue>   zset: hostname → advertisement end
-- KEYS[2…] info         <prefix>:{_workers}:info:<hostname>  each listed worker's details, as
--                       asked for by a NEED_KEYS reply (details '1' only; declare.lua)
-- ARGV[1]  info_prefix  <prefix>:{_workers}:info:   (a worker's details: info_prefix .. hostname)
-- ARGV[2]  details      '1': list each worker too; '0': the count only (ZCOUNT)
--
-- Replies:
--   {count}                                                   details '0'
--   {count, {hostname, ms_left, HGETALL of its info}, …}      details '1'
--   {DECLARE.NEED_KEYS, info key, …}   details '1' with a worker's info key not in KEYS: call
--                                      again with them (declare.lua)
--
-- Safe to repeat: it writes nothing.

local online, info_prefix = KEYS[1], ARGV[1]
local now = now_ms()
local count = redis.call('ZCOUNT', online, '(' .. now, '+inf')
if ARGV[2] ~= '1' then return {count} end
local out = {count}
local members = redis.call('ZRANGEBYSCORE', online, '(' .. now, '+inf', 'WITHSCORES')
for i = 1, #members, 2 do need(info_prefix .. members[i]) end
local ask = undeclared()
if ask then return ask end
for i = 1, #members, 2 do
  out[#out + 1] = {members[i], tostring(tonumber(members[i + 1]) - now),
    redis.call('HGETALL', info_prefix .. members[i])}
end
return out
