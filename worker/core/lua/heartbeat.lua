-- heartbeat.lua: renew a running run's lease, from the worker's main process, on behalf of
-- the pool process that started it. Also how a cancel reaches a run whose revoke was lost:
-- the reply tells the worker the run ended over its head, and the worker kills the process.
--
-- KEYS[1]  slot         <prefix>:{<workflow>}:slot
-- KEYS[2]  run          <prefix>:{<workflow>}:run:<run>
-- KEYS[3]  events       <prefix>:{<workflow>}:events:<run>   the run's event stream
-- KEYS[4]  outbox       <prefix>:{<workflow>}:ended   the endings outbox (lib.lua note_ending)
-- KEYS[5]  pending      <prefix>:{<workflow>}:waiting the pending run a release promotes
-- KEYS[6…] read         the pending run's record and stream, as asked for by a NEED_KEYS
--                       reply (on a Redis Cluster: declare.lua, lib.lua need_pending);
--                       {DECLARE.NEED_KEYS, key, …} then, nothing written
-- ARGV[1]  run_id
-- ARGV[2]  workflow_id
-- ARGV[3]  ttl_ms       the running lease: the heartbeat TTL
-- ARGV[4]  worker       the Celery worker's hostname
-- ARGV[5]  retention_s  for a record this call has to recreate
-- ARGV[6]  pid          the pool process running the body
--
-- Replies:
--   {BEAT.RENEWED}              the lease is extended
--   {BEAT.REACQUIRED}           the lease had lapsed (Redis was away) and the slot was free:
--                               taken back, since the run is still executing
--   {BEAT.NOT_OURS, status}     this worker and pid did not start the run (e.g. a refused
--                               duplicate delivery): neither renewed nor to be killed
--   {BEAT.TERMINAL, status}     also to a process the record does not name when the record
--                               is one Redis lost and a process wrote back (record_lost):
--                               a running run is ended lost then (see below)
--   {BEAT.TERMINAL, status}     the run has ended; stop its process if the status says it
--                               was ended over its head (cancelled, lost, expired)
--   {BEAT.NOT_STARTED, status}  still queued (not expected from the worker's main process)
-- A record Redis lost (restarted empty) is written back as running (record_lost=1). A run
-- whose slot another run took is recorded lost by this call and answers
-- {BEAT.TERMINAL, STATUS.LOST, duration_ms} (the third element says this call ended it:
-- how long the run had run, start to now).
--
-- Safe to repeat: renewing twice is renewing; once lost, a run stays lost (a second beat from
-- the other claimant answers TERMINAL, lost, again). Status events
-- (running for a rebuilt record, lost) are written only with the change.

local slot, run, events = KEYS[1], KEYS[2], KEYS[3]
local run_id, workflow_id, ttl_ms, worker = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local retention, pid = tonumber(ARGV[5]), ARGV[6]

need_pending(slot)
local ask = undeclared()
if ask then return ask end
local now = now_ms()
local status = redis.call('HGET', run, 'status')
if not status then
  redis.call('HSET', run, 'run_id', run_id, 'workflow_id', workflow_id, 'type', 'test',
    'status', STATUS.RUNNING, 'started_ms', now, 'worker', worker, 'pid', pid,
    'record_lost', '1', 'input', '{}')
  redis.call('EXPIRE', run, retention)
  emit_status(events, run, STATUS.RUNNING, now)
  status = STATUS.RUNNING
end
-- only the process that started the run speaks for it: a duplicate delivery of the same
-- message (refused by the start check) must neither renew nor be killed for it
if redis.call('HGET', run, 'worker') ~= worker or redis.call('HGET', run, 'pid') ~= pid then
  if redis.call('HGET', run, 'record_lost') ~= '1' then return {BEAT.NOT_OURS, status} end
  -- Redis lost the record and another process wrote it back naming itself: two processes
  -- claim the run and nothing tells which one started it. Neither may keep the slot alive
  -- (the one that did not start it would renew a lease no body uses; the one that did would
  -- hear NOT_OURS and never be renewed nor stopped), so the run ends lost, its slot is freed,
  -- and each claimant is told so and stopped.
  if status == STATUS.RUNNING then
    record_end(run, events, STATUS.LOST, ERROR.HEARTBEAT_LOST,
      'two processes claimed it after Redis lost its record', now)
    release(slot, run, run_id, REASON.LEASE_EXPIRED, now)
    status = STATUS.LOST
  end
  return {BEAT.TERMINAL, status}
end
if TERMINAL[status] then return {BEAT.TERMINAL, status} end
if status ~= STATUS.RUNNING then return {BEAT.NOT_STARTED, status} end
local holder = redis.call('GET', slot)
if holder == run_id then
  redis.call('PEXPIRE', slot, ttl_ms)
  redis.call('HSET', run, 'heartbeat_ms', now)
  return {BEAT.RENEWED}
end
if not holder then
  redis.call('SET', slot, run_id, 'PX', ttl_ms)
  redis.call('HSET', run, 'heartbeat_ms', now)
  return {BEAT.REACQUIRED}
end
-- another run holds the slot, so this one must not go on
record_end(run, events, STATUS.LOST, ERROR.HEARTBEAT_LOST,
  'its lease ran out and test run ' .. holder .. ' took the slot', now)
local started = tonumber(redis.call('HGET', run, 'started_ms') or now)
return {BEAT.TERMINAL, STATUS.LOST, tostring(now - started)}
