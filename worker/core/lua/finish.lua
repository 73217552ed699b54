-- finish.lua: record how a run ended and free its slot. A terminal status never changes: a
-- run that already ended keeps its status, and only its slot is released (if it still holds
-- it), so this is safe to repeat and safe for late signals (Celery sends task_failure twice on
-- a hard time limit). Safe to repeat: a second call finds the run terminal and changes
-- nothing but a release that is still due (and writes no second status event).
--
-- KEYS[1]  slot     <prefix>:{<workflow>}:slot
-- KEYS[2]  run      <prefix>:{<workflow>}:run:<run>
-- KEYS[3]  logs     <prefix>:{<workflow>}:logs:<run>
-- KEYS[4]  events   <prefix>:{<workflow>}:events:<run>   the run's event stream
-- KEYS[5]  outbox   <prefix>:{<workflow>}:ended   the endings outbox (lib.lua note_ending)
-- KEYS[6]  pending  <prefix>:{<workflow>}:waiting the pending run a release promotes
-- KEYS[7…] read     the pending run's record and stream, as asked for by a NEED_KEYS reply
--                   (on a Redis Cluster: declare.lua, lib.lua need_pending)
-- ARGV[1]  run_id
-- ARGV[2]  workflow_id
-- ARGV[3]  status       the terminal status to record (a STATUS value)
-- ARGV[4]  error_type   an ERROR value, or ''
-- ARGV[5]  error        human text, or ''
-- ARGV[6]  result       the result as JSON text, or '' for none
-- ARGV[7]  reason       the REASON recorded when this call frees the slot
-- ARGV[8]  worker       the worker's hostname, or '' (kept if the run has none yet)
-- ARGV[9]  retention_s  how long the record and its logs are kept from now
-- ARGV[10] mode         FINISH_MODE.OUTCOME     the worker knows how the run ended; a record
--                                               Redis lost (restarted empty) is recreated
--                       FINISH_MODE.CANCEL      a person cancels: a lapsed lease is settled
--                                               first (expired/lost); a missing record is
--                                               MISSING; the reply carries the record. A
--                                               running run is recorded cancelled but keeps
--                                               its slot (`stopping`) until its worker
--                                               confirms the body stopped (an OUTCOME call,
--                                               which releases it) or its lease lapses; a
--                                               pending run stops being the pending one
--                       FINISH_MODE.BODY_GONE   the worker saw the process of a run ended
--                                               over its head (cancelled, replaced) die:
--                                               frees the slot it kept for the body; never
--                                               ends a run that is not terminal
--                       FINISH_MODE.QUEUED_ONLY a message was revoked or expired before it
--                                               ran: ends the run only if it is still queued
--                                               (a late duplicate of a running run's message
--                                               must not end that run)
--
-- Replies: (record: {HGETALL, log lines} in CANCEL mode, else false; started_ms: when the
-- run started, '' if it never did; finished_ms: when it ended)
--   {FINISH.FINISHED, status_before, released, record, '', started_ms, finished_ms}  this
--       call ended the run; status_before is what it was ('' if the record was recreated);
--       released is the REASON recorded if this call freed the slot (the stop's own —
--       cancelled, replaced — for a body that was stopping), else ''
--   {FINISH.UNCHANGED, status, released, record, settled, started_ms, finished_ms}  the run
--       had already ended (or, in QUEUED_ONLY mode, is not queued): status is what it is;
--       released as above; settled is '1' when this very call found its lease lapsed and
--       recorded that ending (CANCEL mode: expired or lost, REASON.LEASE_EXPIRED), else ''
--   {FINISH.MISSING}   no record, in CANCEL or QUEUED_ONLY mode: nothing written
--   {DECLARE.NEED_KEYS, key, …}  the pending run's keys were not in KEYS: nothing written
-- Any release promotes the workflow's pending run in the same step (lib.lua release()).

local slot, run, logs, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local run_id, workflow_id, status = ARGV[1], ARGV[2], ARGV[3]
local error_type, err, result = ARGV[4], ARGV[5], ARGV[6]
local reason, worker, retention, mode = ARGV[7], ARGV[8], tonumber(ARGV[9]), ARGV[10]

need_pending(slot)
local ask = undeclared()
if ask then return ask end
local now = now_ms()
local current = redis.call('HGET', run, 'status')
if not current then
  if mode ~= FINISH_MODE.OUTCOME then return {FINISH.MISSING} end
  -- Redis lost the record (restarted empty): the worker still knows the outcome
  redis.call('HSET', run, 'run_id', run_id, 'workflow_id', workflow_id, 'type', 'test',
    'record_lost', '1', 'input', '{}')
  redis.call('EXPIRE', run, retention)  -- before record_end: the outbox copies its TTL
end
local settled = ''
if current and mode ~= FINISH_MODE.OUTCOME then
  local before = current
  current = settle_lapsed(slot, run, events, run_id, current, now)
  if current ~= before then settled = '1' end
end
local function times()
  return redis.call('HGET', run, 'started_ms') or '', redis.call('HGET', run, 'finished_ms') or ''
end

if current and TERMINAL[current] then
  -- a run cancelled while running keeps its slot until its body is gone: only the worker's
  -- outcome (OUTCOME mode) says so, never a second cancel or a late queued-only call
  -- (whose release records why it was stopped: cancelled, replaced)
  local released = ''
  local stopping = redis.call('HGET', run, 'stopping')
  if (mode == FINISH_MODE.OUTCOME or mode == FINISH_MODE.BODY_GONE or not stopping)
      and release(slot, run, run_id, stopping or reason, now) == 1 then
    released = stopping or reason
  end
  local started, finished = times()
  local record = (mode == FINISH_MODE.CANCEL) and snapshot(run, logs) or false
  return {FINISH.UNCHANGED, current, released, record, settled, started, finished}
end
if mode == FINISH_MODE.BODY_GONE
    or (mode == FINISH_MODE.QUEUED_ONLY and current ~= STATUS.QUEUED) then
  return {FINISH.UNCHANGED, current, '', false, '', '', ''}
end

record_end(run, events, status, error_type, err, now)
if result ~= '' then redis.call('HSET', run, 'result', result) end
if worker ~= '' and redis.call('HEXISTS', run, 'worker') == 0 then
  redis.call('HSET', run, 'worker', worker)
end
local released = ''
if mode == FINISH_MODE.CANCEL and current == STATUS.RUNNING then
  -- its body may still execute: the slot passes only once it is gone (strict single-flight)
  redis.call('HSET', run, 'stopping', REASON.CANCELLED)
elseif current == STATUS.PENDING then
  -- never held the slot: it only stops being the workflow's pending run
  local pending = beside(slot, 'waiting')
  if redis.call('GET', pending) == run_id then redis.call('DEL', pending) end
  redis.call('HDEL', run, 'message', 'queue')
elseif release(slot, run, run_id, reason, now) == 1 then
  released = reason
end
redis.call('EXPIRE', run, retention)
redis.call('EXPIRE', logs, retention)
redis.call('EXPIRE', events, retention)
-- in CANCEL mode the caller answers with the run: hand it back instead of a second round trip
local record = (mode == FINISH_MODE.CANCEL) and snapshot(run, logs) or false
local started = redis.call('HGET', run, 'started_ms') or ''
return {FINISH.FINISHED, current or '', released, record, '', started, tostring(now)}
