-- webhook_claim.lua: claim the deliveries that are due (a retry whose time came, or a claim
-- whose task never ran), for a worker's heartbeat to publish their tasks. Each claimed one
-- gets a fresh token and is due again only when the claim lapses, so two sweeps never claim
-- the same delivery at once, and an older task that still holds a previous token does nothing.
--
-- KEYS[1]  due      <prefix>:{_webhooks}:due
-- KEYS[2…] delivery <prefix>:{_webhooks}:delivery:<id>  each due delivery's hash, as asked for
--                   by a NEED_KEYS reply (declare.lua)
-- ARGV[1]  delivery_prefix  <prefix>:{_webhooks}:delivery:  (+ id: a delivery's hash)
-- ARGV[2]  lease_ms
-- ARGV[3]  limit    at most this many per call
-- ARGV[4]  token    this call's token; each delivery gets token .. ':' .. its position
--
-- Replies:
--   {id, token, id, token, ...}  the deliveries claimed (a delivery whose hash expired is
--                                dropped from the index instead)
--   {DECLARE.NEED_KEYS, delivery key, …}  a due delivery's hash was not in KEYS: nothing
--                                written; call again with them (declare.lua)
--
-- Safe to repeat: a delivery claimed by the first call is not due for the second.

local due, prefix = KEYS[1], ARGV[1]
local lease, limit, token = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local now = now_ms()
local claimed = {}
local ids = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do need(prefix .. id) end
local ask = undeclared()
if ask then return ask end
for i, id in ipairs(ids) do
  local delivery = prefix .. id
  if redis.call('EXISTS', delivery) == 0 then
    redis.call('ZREM', due, id)
  else
    local mine = token .. ':' .. i
    redis.call('HSET', delivery, 'claim', mine)
    redis.call('ZADD', due, now + lease, id)
    claimed[#claimed + 1] = id
    claimed[#claimed + 1] = mine
  end
end
return claimed
