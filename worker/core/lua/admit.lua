-- admit.lua: take a workflow's slot for a new run and write the run's queued record, in one
-- atomic step (the trigger's first round trip; the publish follows) — and, on the fused path,
-- push the run's task message too (then the trigger is this one round trip).
--
-- KEYS[1]  slot          <prefix>:{<workflow>}:slot        holder's run id, with a TTL (lease)
-- KEYS[2]  run           <prefix>:{<workflow>}:run:<run>   the new run's record (hash)
-- KEYS[3]  index         <prefix>:{<workflow>}:runs        run ids by creation time (zset)
-- KEYS[4]  idempotency   <prefix>:{<workflow>}:idem:<key>  run id admitted under the key
--                        (any key of the workflow's hash tag when ARGV[8] is '0')
-- KEYS[5]  events        <prefix>:{<workflow>}:events:<run> the new run's event stream
-- KEYS[6]  queue         the broker's list for the run's message (kombu's name, e.g. `testruns`)
--                        when ARGV[12] is not '', else any key of the workflow's hash tag. The
--                        one key outside the hash tag: the fused path is only taken when the
--                        broker is this very Redis (worker/message.py), never on a cluster
-- KEYS[7]  outbox        <prefix>:{<workflow>}:ended   the endings outbox (lib.lua note_ending)
-- KEYS[8…] read          keys this call learns by reading, as asked for by a NEED_KEYS reply
--                        (on a Redis Cluster: declare.lua): the holder's record and stream, the
--                        record of the run an idempotency key names, the runs keep_newest
--                        deletes (record, log, stream, idempotency key)
-- ARGV[1]  run_id        the new run's id
-- ARGV[2]  workflow_id
-- ARGV[3]  input         the run's input, JSON text
-- ARGV[4]  lease_ms      the queued lease: queue timeout + grace
-- ARGV[5]  retention_s   how long records, the index and idempotency keys are kept
-- ARGV[6]  on_conflict   POLICY.REJECT or POLICY.REPLACE
-- ARGV[7]  run_prefix    <prefix>:{<workflow>}:run:  (a holder's record is run_prefix .. id)
-- ARGV[8]  use_key       '1' when an Idempotency-Key came with the request, else '0'
-- ARGV[9]  events_prefix <prefix>:{<workflow>}:events:  (a replaced holder's stream)
-- ARGV[10] triggered_by  the caller's name (a named API token), or ''
-- ARGV[11] max_runs      runs kept per workflow (TEST_RUN_MAX_RUNS_PER_WORKFLOW): older ones
--                        are deleted with their logs and streams (lib.lua keep_newest)
-- ARGV[12] message       the task message as kombu's Redis transport would LPUSH it, or ''
--                        (two-step path: the caller publishes after this script)
--
-- Replies:
--   {ADMIT.ADMITTED, run_id, previous_holder, previous_release, created_ms, holder_started_ms}
--       the slot is the new run's; previous_holder is '' or the run it took the slot from,
--       previous_release '' or how (REASON.RECLAIMED: it had ended; REASON.REPLACED);
--       holder_started_ms: when a replaced holder had started ('' if it never did, and on a
--       repeat): its duration ends at created_ms, when this call recorded it cancelled
--   {ADMIT.EXISTING, run_id}    the idempotency key already admitted run_id, or this call
--                               already admitted it (a repeat after its run left the slot):
--                               nothing written
--   {ADMIT.CONFLICT, holder}    another live run holds the slot (POLICY.REJECT): nothing written
--   {DECLARE.NEED_KEYS, key, …} a key read names was not in KEYS: nothing written; call again
--                               with them (declare.lua)
--
-- Safe to repeat: the same call again (its reply was lost) finds its own run holding the slot
-- and answers ADMITTED as the first call did, from what that call recorded; once its run has
-- left the slot (a cancel came between), the repeat finds the record and answers EXISTING
-- with it rather than admitting the run again over a terminal record; the status events
-- (queued on the new run's stream, cancelled on a replaced holder's) are written only with
-- the change they announce, so a repeat writes none; the message is pushed only with the
-- admission itself, so a repeat never pushes a second one.

local slot, run, index, idem, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local run_id, workflow_id, input = ARGV[1], ARGV[2], ARGV[3]
local lease_ms, retention = tonumber(ARGV[4]), tonumber(ARGV[5])
local on_conflict, run_prefix, use_key = ARGV[6], ARGV[7], ARGV[8]
local events_prefix, triggered_by = ARGV[9], ARGV[10]
local max_runs = tonumber(ARGV[11])
local queue, message = KEYS[6], ARGV[12]

local holder = redis.call('GET', slot)
if holder == run_id then
  local prior = redis.call('HMGET', run, 'previous_holder', 'previous_release', 'created_ms')
  return {ADMIT.ADMITTED, run_id, prior[1] or '', prior[2] or '', prior[3] or '0', ''}
end
-- this very call ran before and its run has since left the slot (cancelled, ended, lapsed):
-- answer with that run, never admit it a second time over its record
if redis.call('EXISTS', run) == 1 then return {ADMIT.EXISTING, run_id} end
-- the keys what this call reads names, asked for before its first write (declare.lua)
local now = now_ms()
local prior = use_key == '1' and redis.call('GET', idem) or nil
if prior then need(run_prefix .. prior) end
if holder then
  need(run_prefix .. holder)
  need(events_prefix .. holder)
end
need_trimmed(index, run_prefix, events_prefix, max_runs, run_id, now - retention * 1000)
local ask = undeclared()
if ask then return ask end
if use_key == '1' then
  -- a retry after a 503 must be able to start the run the first request could not enqueue,
  -- but only with that request's body: another body gets the prior run back, which the
  -- caller answers 422 idempotency_key_reused (the key is bound to its body)
  if prior then
    local failed = redis.call('HMGET', run_prefix .. prior, 'error_type', 'input')
    if failed[1] ~= ERROR.ENQUEUE_FAILED or failed[2] ~= input then
      return {ADMIT.EXISTING, prior}
    end
  end
end

local previous_release, holder_started = '', ''
if holder then
  local holder_run = run_prefix .. holder
  local holder_status = redis.call('HGET', holder_run, 'status')
  if (not holder_status) or TERMINAL[holder_status] then
    -- proof of death: the holder already ended (a missed signal) or its record is gone
    release(slot, holder_run, holder, REASON.RECLAIMED, now)
    previous_release = REASON.RECLAIMED
  elseif on_conflict == POLICY.REPLACE then
    holder_started = redis.call('HGET', holder_run, 'started_ms') or ''
    record_end(holder_run, events_prefix .. holder, STATUS.CANCELLED, ERROR.CANCELLED,
      'replaced by test run ' .. run_id, now)
    release(slot, holder_run, holder, REASON.REPLACED, now)
    previous_release = REASON.REPLACED
  else
    return {ADMIT.CONFLICT, holder}
  end
end

redis.call('SET', slot, run_id, 'PX', lease_ms)
redis.call('HSET', run, 'run_id', run_id, 'workflow_id', workflow_id, 'type', 'test',
  'status', STATUS.QUEUED, 'created_ms', now, 'input', input)
if holder then
  redis.call('HSET', run, 'previous_holder', holder, 'previous_release', previous_release)
end
if triggered_by ~= '' then redis.call('HSET', run, 'triggered_by', triggered_by) end
redis.call('EXPIRE', run, retention)
emit_status(events, run, STATUS.QUEUED, now)
redis.call('ZADD', index, now, run_id)
redis.call('ZREMRANGEBYSCORE', index, '-inf', now - retention * 1000)
redis.call('EXPIRE', index, retention)
keep_newest(index, run_prefix, events_prefix, max_runs, run_id)
if use_key == '1' then redis.call('SET', idem, run_id, 'EX', retention) end
if use_key == '1' then redis.call('HSET', run, 'idempotency_key', idem) end
if message ~= '' then redis.call('LPUSH', queue, message) end
return {ADMIT.ADMITTED, run_id, holder or '', previous_release, tostring(now), holder_started}
