-- webhook_begin.lua: a delivery task starts an attempt, if its claim is still the current one.
-- The attempt is counted now, and the delivery falls due again when `lease_ms` passes without
-- webhook_end (the task's process died mid-attempt), so it is tried again.
--
-- KEYS[1]  due       <prefix>:{_webhooks}:due
-- KEYS[2]  delivery  <prefix>:{_webhooks}:delivery:<id>
-- ARGV[1]  id
-- ARGV[2]  token     the claim the task was published with
-- ARGV[3]  lease_ms  the attempt's time limit, and some
--
-- Replies:
--   {}                                    not ours: claimed again since, done, or gone
--   {attempt, run_id, target, url, body}  go: this is attempt number `attempt` (body '' until
--                                         the first attempt stored it)
--
-- Safe to repeat: the first call spends the claim, so a repeat (a duplicate message) gets {}.

local due, delivery = KEYS[1], KEYS[2]
local id, token, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
if token == '' or redis.call('HGET', delivery, 'claim') ~= token then return {} end
if redis.call('HGET', delivery, 'state') then return {} end
redis.call('HSET', delivery, 'claim', '')
local attempt = redis.call('HINCRBY', delivery, 'attempts', 1)
redis.call('ZADD', due, now_ms() + lease, id)
local fields = redis.call('HMGET', delivery, 'run_id', 'target', 'url', 'body')
return {attempt, fields[1], fields[2], fields[3], fields[4] or ''}
