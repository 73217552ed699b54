-- webhook_schedule.lua: create one delivery of a run's ending to one target, claimed at once by
-- the caller (who publishes its task with `token`). One delivery per (run, target) ever: its id
-- is made from both, so a second schedule of the same ending (the sweep after a crash,
-- reconcile) finds it and does nothing. Its due time is the claim's end: if the task never
-- runs (a lost message, a dead worker), the delivery falls due again and a sweep re-claims it.
--
-- KEYS[1]  due       <prefix>:{_webhooks}:due            delivery id -> when it is due (ms)
-- KEYS[2]  delivery  <prefix>:{_webhooks}:delivery:<id>  run_id, target, url, attempts, claim,
--                                                        state, body
-- ARGV[1]  id            the delivery id (the `webhook-id` of every attempt)
-- ARGV[2]  run_id
-- ARGV[3]  target        a WebhookTarget value
-- ARGV[4]  url
-- ARGV[5]  token         the claim the caller's task must present
-- ARGV[6]  lease_ms      how long the claim holds before the delivery falls due again
-- ARGV[7]  retention_s   how long the delivery is kept (as long as the run)
--
-- Replies: 1 created and claimed (publish its task); 0 it exists already (nothing written)
--
-- Safe to repeat: the second call finds the delivery and answers 0.

local due, delivery = KEYS[1], KEYS[2]
local id, run_id, target, url, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local lease, retention = tonumber(ARGV[6]), tonumber(ARGV[7])
if redis.call('EXISTS', delivery) == 1 then return 0 end
redis.call('HSET', delivery, 'run_id', run_id, 'target', target, 'url', url, 'attempts', 0,
  'claim', token)
redis.call('EXPIRE', delivery, retention)
redis.call('ZADD', due, now_ms() + lease, id)
redis.call('EXPIRE', due, retention)
return 1
