-- start.lua: the task's start check, run in the pool process before the workflow body. The
-- run may execute only if its record is still queued, it still holds its slot, and it has
-- not waited longer than the queue timeout; then it is marked running by this process and its
-- slot gets the running lease (the heartbeat TTL).
--
-- KEYS[1]  slot    <prefix>:{<workflow>}:slot
-- KEYS[2]  run     <prefix>:{<workflow>}:run:<run>
-- KEYS[3]  events  <prefix>:{<workflow>}:events:<run>   the run's event stream
-- KEYS[4]  outbox  <prefix>:{<workflow>}:ended   the endings outbox (lib.lua note_ending)
-- KEYS[5]  pending <prefix>:{<workflow>}:waiting the pending run a release promotes
-- KEYS[6…] read    the pending run's record and stream, as asked for by a NEED_KEYS reply
--                  (on a Redis Cluster: declare.lua, lib.lua need_pending)
-- ARGV[1]  run_id
-- ARGV[2]  worker            the Celery worker's hostname
-- ARGV[3]  lease_ms          the running lease: the heartbeat TTL
-- ARGV[4]  queue_timeout_ms  a run queued longer than this never starts (counted from its
--                            promotion for a run that was pending: promoted_ms)
-- ARGV[5]  pid               the pool process that will run the body
--
-- Replies:
--   {START.STARTED, input_json, queue_wait_ms}   go ahead (input_json is the run's input;
--                                 queue_wait_ms: admission to now, '' on a repeated call)
--   {START.REFUSED, status, ended_reason}  must not execute; status is what the run is now (a
--                                 cancelled, superseded, expired or already-started run);
--                                 ended_reason is the REASON recorded when this call ended it
--                                 (REASON.EXPIRED: queue timeout, slot freed here;
--                                 REASON.LEASE_EXPIRED: its lease had lapsed), else ''
--   {START.MISSING}               no record (Redis lost it, or it outlived its retention)
--   {DECLARE.NEED_KEYS, key, …}   the pending run's keys were not in KEYS: nothing written
--
-- A release here (the queue timeout) promotes the workflow's pending run (lib.lua release()).
--
-- Safe to repeat: the same call again from the same worker and pid finds the run running as
-- this process and answers STARTED again; a duplicate delivery from any other process is
-- REFUSED. Status events (running, expired, lost) are written only with the change.

local slot, run, events = KEYS[1], KEYS[2], KEYS[3]
local run_id, worker, pid = ARGV[1], ARGV[2], ARGV[5]
local lease_ms, queue_timeout_ms = tonumber(ARGV[3]), tonumber(ARGV[4])

need_pending(slot)
local ask = undeclared()
if ask then return ask end
local status = redis.call('HGET', run, 'status')
if not status then return {START.MISSING} end
local now = now_ms()
local before = status
status = settle_lapsed(slot, run, events, run_id, status, now)
if status == STATUS.RUNNING and redis.call('HGET', run, 'worker') == worker
    and redis.call('HGET', run, 'pid') == pid then
  return {START.STARTED, redis.call('HGET', run, 'input') or '{}', ''}
end
if status ~= STATUS.QUEUED then
  return {START.REFUSED, status, (status ~= before) and REASON.LEASE_EXPIRED or ''}
end
local queued_at = redis.call('HMGET', run, 'promoted_ms', 'created_ms')
local created = tonumber(queued_at[1] or queued_at[2] or now)
if now - created > queue_timeout_ms then
  record_end(run, events, STATUS.EXPIRED, ERROR.QUEUE_TIMEOUT,
    'waited longer than the queue timeout for a worker', now)
  release(slot, run, run_id, REASON.EXPIRED, now)
  return {START.REFUSED, STATUS.EXPIRED, REASON.EXPIRED}
end
redis.call('HSET', run, 'status', STATUS.RUNNING, 'started_ms', now, 'worker', worker,
  'heartbeat_ms', now, 'pid', pid)
redis.call('PEXPIRE', slot, lease_ms)
emit_status(events, run, STATUS.RUNNING, now)
return {START.STARTED, redis.call('HGET', run, 'input') or '{}', tostring(now - created)}
