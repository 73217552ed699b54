-- webhook_end.lua: record how an attempt ended: done (DELIVERY.DELIVERED, GAVE_UP, REFUSED:
-- out of the due index for good, its body dropped) or DELIVERY.RETRYING (due again after
-- `delay_ms`, the body it sent kept so every retry sends the very same bytes). Only the current
-- attempt may: a slow task whose attempt was since given up and tried again changes nothing.
--
-- KEYS[1]  due       <prefix>:{_webhooks}:due
-- KEYS[2]  delivery  <prefix>:{_webhooks}:delivery:<id>
-- ARGV[1]  id
-- ARGV[2]  attempt   the attempt number webhook_begin gave
-- ARGV[3]  outcome   a DELIVERY value
-- ARGV[4]  delay_ms  RETRYING: when to try again
-- ARGV[5]  body      the body sent (kept if none is yet, for the retries)
-- ARGV[6]  kept_s    a delivery done is kept this long (without its body): long enough that a
--                    late sweep of the same ending finds it and does not deliver it again
--
-- Replies: 1 recorded; 0 not the current attempt (nothing written)
--
-- Safe to repeat: a repeat records the same outcome again (a retry's due time moves by the
-- repeat's delay).

local due, delivery = KEYS[1], KEYS[2]
local id, attempt, outcome = ARGV[1], ARGV[2], ARGV[3]
local delay, body, kept = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
if redis.call('HGET', delivery, 'attempts') ~= attempt then return 0 end
if outcome == DELIVERY.RETRYING then
  if body ~= '' then redis.call('HSETNX', delivery, 'body', body) end
  redis.call('ZADD', due, now_ms() + delay, id)
else
  redis.call('HSET', delivery, 'state', outcome)
  redis.call('HDEL', delivery, 'body')
  redis.call('EXPIRE', delivery, kept)
  redis.call('ZREM', due, id)
end
return 1
