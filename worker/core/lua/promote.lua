-- promote.lua: the upkeep of a workflow's pending run, swept by every worker's heartbeat
-- (worker/runner/upkeep.py) and by `testruns reconcile`. A slot that nobody released — its
-- lease lapsed: a worker gone, a queued run never published — leaves nothing to run the
-- promotion in release(); this does it: if the slot is free, the pending run takes it (lib.lua
-- promote(), pushing its stored message). A pending run past its pending timeout, or a pointer
-- to a run that is no longer pending, is settled here too.
--
-- KEYS[1]  slot     <prefix>:{<workflow>}:slot
-- KEYS[2]  pending  <prefix>:{<workflow>}:waiting   (lib.lua builds the same name from slot)
-- KEYS[3]  outbox   <prefix>:{<workflow>}:ended     the endings outbox (lib.lua note_ending)
-- KEYS[4…] read     the pending run's record and stream, as asked for by a NEED_KEYS reply
--                   (on a Redis Cluster: declare.lua); {DECLARE.NEED_KEYS, key, …} then
-- ARGV[1]  (none)
--
-- Replies: (wrapped by text.py with what was promoted: {reply, promoted_id, pushed})
--   {promoted_id, expired_id}   the run this call promoted ('' if none) and a pending run it
--                               ended expired ('' if none)
--
-- Safe to repeat: a second call finds the slot held (or nothing pending) and changes nothing.

local slot, pending = KEYS[1], KEYS[2]
local id = redis.call('GET', pending)
if not id then return {'', ''} end
need_pending(slot)
local ask = undeclared()
if ask then return ask end
local now = now_ms()
local run = beside(slot, 'run:' .. id)
local status = redis.call('HGET', run, 'status')
if status ~= STATUS.PENDING then
  redis.call('DEL', pending)  -- a pointer to a run that is gone or no longer pending
  return {'', ''}
end
local events = beside(slot, 'events:' .. id)
if settle_lapsed(slot, run, events, id, status, now) ~= STATUS.PENDING then return {'', id} end
if redis.call('EXISTS', slot) == 1 then return {'', ''} end
return {promote(slot, now), ''}
