-- admit.lua: a trigger's admission, in one atomic step (the trigger's first round trip; the
-- publish follows) — take a workflow's slot for a new run and write its queued record, or
-- make it the workflow's pending run, or join a run with the same input, or refuse; on the
-- fused path it pushes the run's task message too (then the trigger is this one round trip).
--
-- KEYS[1]  slot          <prefix>:{<workflow>}:slot        holder's run id, with a TTL (lease)
-- KEYS[2]  run           <prefix>:{<workflow>}:run:<run>   the new run's record (hash)
-- KEYS[3]  index         <prefix>:{<workflow>}:runs        run ids by creation time (zset;
--                        a later admission always scores higher)
-- KEYS[4]  idempotency   <prefix>:{<workflow>}:idem:<key>  run id admitted under the key
--                        (any key of the workflow's hash tag when ARGV[8] is '0')
-- KEYS[5]  events        <prefix>:{<workflow>}:events:<run> the new run's event stream
-- KEYS[6]  queue         the broker's list for the run's message (kombu's name, e.g. `testruns`)
--                        when ARGV[12] is not '', else any key of the workflow's hash tag. The
--                        one key outside the hash tag: the fused path is only taken when the
--                        broker is this very Redis (worker/message.py), never on a cluster
-- KEYS[7]  outbox        <prefix>:{<workflow>}:ended   the endings outbox (lib.lua note_ending)
-- KEYS[8]  pending       <prefix>:{<workflow>}:waiting the pending run's id (with a TTL)
-- KEYS[9…] read          keys this call learns by reading, as asked for by a NEED_KEYS reply
--                        (on a Redis Cluster: declare.lua): the holder's record and stream, the
--                        pending run's, the record of the run an idempotency key names, the
--                        runs keep_newest deletes (record, log, stream, idempotency key)
-- ARGV[1]  run_id        the new run's id
-- ARGV[2]  workflow_id
-- ARGV[3]  input         the run's input, JSON text
-- ARGV[4]  lease_ms      the queued lease: queue timeout + grace
-- ARGV[5]  retention_s   how long records, the index and idempotency keys are kept
-- ARGV[6]  on_conflict   a POLICY value: REJECT, REPLACE, QUEUE or JOIN
-- ARGV[7]  run_prefix    <prefix>:{<workflow>}:run:  (a holder's record is run_prefix .. id)
-- ARGV[8]  use_key       '1' when an Idempotency-Key came with the request, else '0'
-- ARGV[9]  events_prefix <prefix>:{<workflow>}:events:  (a replaced holder's stream)
-- ARGV[10] triggered_by  the caller's name (a named API token), or ''
-- ARGV[11] max_runs      runs kept per workflow (TEST_RUN_MAX_RUNS_PER_WORKFLOW): older ones
--                        are deleted with their logs and streams (lib.lua keep_newest)
-- ARGV[12] message       the task message as kombu's Redis transport would LPUSH it, or ''
--                        (two-step path: the caller publishes after this script). A pending
--                        run keeps it on its record (`message`, `queue`) until promoted
-- ARGV[13] pending_ms    how long a run may be pending (TEST_RUN_PENDING_TIMEOUT)
-- ARGV[14] digest        the input as canonical JSON, hashed (what a join compares); '' on
--                        a lazy call, which neither joins nor writes
-- ARGV[15] version       the workflow's version (what a join compares, beside the digest)
-- ARGV[16] lazy          '1': the caller left the message out (ARGV[12] '') because it expects
--                        a conflict (POLICY.REJECT only); if the step would do anything else
--                        it answers NEED_MESSAGE having written nothing (else '0')
--
-- A holder "has a body" while it runs, and after it was cancelled or replaced while running
-- until its worker confirms the body stopped (`stopping`: the release reason to record then,
-- cleared by release()) or its lease lapses: such a holder is never reclaimed, and its slot passes only by release().
--
-- Replies: (previous_holder / previous_release: a holder this call reclaimed — REASON.RECLAIMED,
-- it had ended — or replaced — REASON.REPLACED — else ''; created_ms: now):
--   {ADMIT.ADMITTED, run_id, previous_holder, previous_release, created_ms, holder_started_ms,
--    superseded}  the slot is the new run's; holder_started_ms: when a replaced holder had
--       started ('' if it never did, and on a repeat); superseded: a pending run it took the
--       place of ('' if none)
--   {ADMIT.PENDING, run_id, previous_holder, previous_release, created_ms, holder_started_ms,
--    superseded}  the new run is the workflow's pending run (POLICY.QUEUE; POLICY.REPLACE of a
--       holder with a body, recorded cancelled here): it takes the slot when the slot is freed
--   {ADMIT.JOINED, run_id, previous_holder, previous_release, created_ms}  POLICY.JOIN: the
--       holder or the pending run, triggered with the same digest and version: nothing written
--   {ADMIT.EXISTING, run_id}    the idempotency key already admitted run_id, or this call
--                               already admitted it (a repeat after its run left the slot):
--                               nothing written
--   {ADMIT.CONFLICT, holder, previous_holder, previous_release, now_ms, '', '', status,
--    started_ms, heartbeat_ms, lease_ms_left, pending_id, queued_since_ms}  another run holds
--       the slot (POLICY.REJECT; a JOIN with another input): nothing written but a reclaim
--   {DECLARE.NEED_KEYS, key, …} a key read names was not in KEYS: nothing written; call again
--                               with them (declare.lua)
--   {ADMIT.NEED_MESSAGE}        lazy, and no live run holds the slot (it is free, or its holder
--                               ended and would be reclaimed): nothing written; call again with
--                               the message. A 409 then never carries the ~1 KB message
--
-- Safe to repeat: the same call again (its reply was lost) finds its own run holding the slot
-- (or pending) and answers ADMITTED (PENDING) as the first call did, from what that call
-- recorded; once its run has left the slot (a cancel came between), the repeat finds the
-- record and answers EXISTING with it rather than admitting the run again over a terminal
-- record; the status events are written only with the change they announce, so a repeat
-- writes none; the message is pushed (or stored) only with the admission itself.

local slot, run, index, idem, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local queue, pending = KEYS[6], KEYS[8]
local run_id, workflow_id, input = ARGV[1], ARGV[2], ARGV[3]
local lease_ms, retention = tonumber(ARGV[4]), tonumber(ARGV[5])
local on_conflict, run_prefix, use_key = ARGV[6], ARGV[7], ARGV[8]
local events_prefix, triggered_by = ARGV[9], ARGV[10]
local max_runs = tonumber(ARGV[11])
local message = ARGV[12]
local pending_ms, digest, version = tonumber(ARGV[13]), ARGV[14], ARGV[15]
local lazy = ARGV[16] == '1'

-- what this very call answered before, rebuilt from its record (a repeat)
local function answered(kind)
  local prior = redis.call('HMGET', run, 'previous_holder', 'previous_release', 'created_ms',
    'superseded_run')
  return {kind, run_id, prior[1] or '', prior[2] or '', prior[3] or '0', '', prior[4] or ''}
end

local holder = redis.call('GET', slot)
if holder == run_id then return answered(ADMIT.ADMITTED) end
local waiting = redis.call('GET', pending)
if waiting == run_id then return answered(ADMIT.PENDING) end
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
if waiting then  -- promoted or superseded here
  need(run_prefix .. waiting)
  need(events_prefix .. waiting)
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

-- lazy (a reject that expects a conflict, with no message): only a live holder's conflict
-- is answered; whatever else would happen needs the message, asked for before any write
if lazy then
  if on_conflict ~= POLICY.REJECT then error('a lazy admission rejects on conflict') end
  if not holder then return {ADMIT.NEED_MESSAGE} end
  local held = redis.call('HMGET', run_prefix .. holder, 'status', 'stopping')
  if (not held[1]) or (TERMINAL[held[1]] and not held[2]) then return {ADMIT.NEED_MESSAGE} end
end

-- a lapsed lease left the slot free with a run pending: that run goes first
if waiting and not holder then
  holder = promote(slot, now)
  if holder == '' then holder = false end
  waiting = false  -- promoted, or settled (expired): either way no longer pending
end
local previous, previous_release, holder_started = '', '', ''
if holder then
  local status_stopping = redis.call('HMGET', run_prefix .. holder, 'status', 'stopping')
  local status = status_stopping[1]
  if (not status) or (TERMINAL[status] and not status_stopping[2]) then
    -- proof of death: the holder already ended (a missed signal) and its body is gone, or its
    -- record is gone; the release promotes the pending run if one waits: it holds the slot now
    release(slot, run_prefix .. holder, holder, REASON.RECLAIMED, now)
    previous, previous_release = holder, REASON.RECLAIMED
    if waiting then
      holder = PROMOTED[1] ~= '' and PROMOTED[1] or false
      waiting = false
    else
      holder = false
    end
  end
end

-- the pending run `waiting` ends superseded by this one (if it is still pending)
local function supersede(waiting)
  local waiting_run = run_prefix .. waiting
  if redis.call('HGET', waiting_run, 'status') ~= STATUS.PENDING then return '' end
  record_end(waiting_run, events_prefix .. waiting, STATUS.SUPERSEDED, ERROR.SUPERSEDED,
    'superseded by test run ' .. run_id, now)
  redis.call('HSET', waiting_run, 'superseded_by', run_id)
  redis.call('HDEL', waiting_run, 'message', 'queue')
  return waiting
end

local becomes = STATUS.QUEUED
if holder then
  local holder_run = run_prefix .. holder
  local h = redis.call('HMGET', holder_run, 'status', 'started_ms', 'heartbeat_ms',
    'input_digest', 'workflow_version', 'created_ms', 'promoted_ms')
  if on_conflict == POLICY.JOIN then
    if not TERMINAL[h[1]] and h[4] == digest and h[5] == version then
      return {ADMIT.JOINED, holder, previous, previous_release, tostring(now)}
    end
    if waiting then
      local w = redis.call('HMGET', run_prefix .. waiting, 'status', 'input_digest',
        'workflow_version')
      if w[1] == STATUS.PENDING and w[2] == digest and w[3] == version then
        return {ADMIT.JOINED, waiting, previous, previous_release, tostring(now)}
      end
    end
  end
  if on_conflict == POLICY.REPLACE and h[1] == STATUS.QUEUED then
    -- no body yet (a start check refuses it from now on): the new run takes the slot at once
    if waiting then supersede(waiting) end
    redis.call('DEL', pending)
    record_end(holder_run, events_prefix .. holder, STATUS.CANCELLED, ERROR.CANCELLED,
      'replaced by test run ' .. run_id, now)
    release(slot, holder_run, holder, REASON.REPLACED, now)
    previous, previous_release = holder, REASON.REPLACED
  elseif on_conflict == POLICY.REPLACE or on_conflict == POLICY.QUEUE then
    if on_conflict == POLICY.REPLACE and h[1] == STATUS.RUNNING then
      -- cancelled now; its slot passes when its body has stopped (its worker confirms) or its
      -- lease lapses: until then the replacing run is the pending one
      holder_started = h[2] or ''
      record_end(holder_run, events_prefix .. holder, STATUS.CANCELLED, ERROR.CANCELLED,
        'replaced by test run ' .. run_id, now)
      redis.call('HSET', holder_run, 'stopping', REASON.REPLACED)
      previous, previous_release = holder, REASON.REPLACED
    end
    becomes = STATUS.PENDING
  else
    return {ADMIT.CONFLICT, holder, previous, previous_release, tostring(now), '', '', h[1] or '',
      h[2] or '', h[3] or '', tostring(redis.call('PTTL', slot)), waiting or '',
      h[7] or h[6] or ''}
  end
end

local superseded = ''
if becomes == STATUS.PENDING then
  if waiting then superseded = supersede(waiting) end
  redis.call('SET', pending, run_id, 'PX', pending_ms + lease_ms)
  redis.call('HSET', run, 'pending_until_ms', now + pending_ms, 'lease_ms', lease_ms)
  if message ~= '' then redis.call('HSET', run, 'message', message, 'queue', queue) end
  if superseded ~= '' then redis.call('HSET', run, 'superseded_run', superseded) end
else
  redis.call('SET', slot, run_id, 'PX', lease_ms)
end
redis.call('HSET', run, 'run_id', run_id, 'workflow_id', workflow_id, 'type', 'test',
  'status', becomes, 'created_ms', now, 'input', input, 'input_digest', digest,
  'workflow_version', version)
if previous ~= '' then
  redis.call('HSET', run, 'previous_holder', previous, 'previous_release', previous_release)
end
if triggered_by ~= '' then redis.call('HSET', run, 'triggered_by', triggered_by) end
redis.call('EXPIRE', run, retention)
emit_status(events, run, becomes, now)
-- after the workflow's newest run even within one millisecond: ties sort by run id, and the
-- cap then deleted a newer run than the one it kept (seen in a fresh-clone `make test`)
local newest = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')[2]
redis.call('ZADD', index, (newest and tonumber(newest) >= now) and newest + 1 or now, run_id)
redis.call('ZREMRANGEBYSCORE', index, '-inf', now - retention * 1000)
redis.call('EXPIRE', index, retention)
keep_newest(index, run_prefix, events_prefix, max_runs, run_id,
  (becomes == STATUS.PENDING) and holder or '')
if use_key == '1' then redis.call('SET', idem, run_id, 'EX', retention) end
if use_key == '1' then redis.call('HSET', run, 'idempotency_key', idem) end
if becomes == STATUS.QUEUED and message ~= '' then redis.call('LPUSH', queue, message) end
local kind = (becomes == STATUS.PENDING) and ADMIT.PENDING or ADMIT.ADMITTED
return {kind, run_id, previous, previous_release, tostring(now), holder_started, superseded}
