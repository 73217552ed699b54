-- lib.lua: functions every script shares. Loaded after the generated prelude (TERMINAL,
-- summary_fields()) and declare.lua, and before the script's own body; the members it spells
-- (STATUS.RUNNING, REASON.RECLAIMED, …) are written in as their strings (text.py).

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Append a status change to the run's event stream (what GET /api/test-runs/<run>/events
-- serves). Called only where a script changes the status, so a repeated call -- which finds
-- the status already changed -- never writes a second event. The stream lives as long as its
-- run record (it copies the record's TTL). Log lines are the stream's only other entries, and
-- they trim it (MAXLEN); a run has at most three status events, so the stream stays bounded.
local function emit_status(events, run, status, now)
  redis.call('XADD', events, '*', 'kind', EVENT.STATUS, 'status', status, 'at', now)
  local ttl = redis.call('PTTL', run)
  if ttl > 0 then redis.call('PEXPIRE', events, ttl) end
end

-- The endings outbox: every ending is noted in its workflow's `<prefix>:{<workflow>}:ended`
-- (a sorted set, run id -> when it ended), in the same atomic step that records it. The
-- process that recorded the ending hands it to the webhooks and takes it out
-- (worker/core/webhooks.py); one that a crash left behind is found by the next sweep (a
-- worker's heartbeat, `testruns reconcile`), so no ending misses its webhooks. Its name is
-- built from the events key, and every script that can end a run declares it in KEYS; it
-- keeps at most OUTBOX_MAX entries and lives as long as the longest-lived run it names.
local OUTBOX_MAX = 1000
local function note_ending(run, events, now)
  local tag = string.match(events, '^(.*}):events:')
  local outbox = tag .. ':ended'
  -- every script that can end a run declares it (KEYS): too late here to ask for it
  if DECLARE_KEYS and not DECLARED[outbox] then error('the outbox is not in KEYS') end
  redis.call('ZADD', outbox, now, string.sub(events, #tag + 9))
  redis.call('ZREMRANGEBYRANK', outbox, 0, -(OUTBOX_MAX + 1))
  local ttl = redis.call('PTTL', run)
  if ttl > 0 and redis.call('PTTL', outbox) < ttl then redis.call('PEXPIRE', outbox, ttl) end
end

-- End a run that has not ended: its terminal status, when, and why; with `reason`, also why
-- and when its slot was freed (when the caller knows it is already gone). One HSET, the
-- status event on the run's stream `events`, and the ending in the outbox (note_ending).
local function record_end(run, events, status, error_type, err, now, reason)
  if reason then
    redis.call('HSET', run, 'status', status, 'finished_ms', now, 'error_type', error_type,
      'error', err, 'release_reason', reason, 'released_ms', now)
  else
    redis.call('HSET', run, 'status', status, 'finished_ms', now, 'error_type', error_type,
      'error', err)
  end
  emit_status(events, run, status, now)
  note_ending(run, events, now)
end

-- A key of the same workflow as `slot` (`<prefix>:{<workflow>}:slot`): `<prefix>:{<workflow>}:`
-- .. kind, e.g. 'waiting', 'run:' .. id, 'events:' .. id. Only release()/promote() and
-- settle_lapsed() build names this way, for the pending run: its id is known only inside the
-- step, so a caller cannot name its record (they share the slot's hash tag).
local function beside(slot, kind)
  return string.sub(slot, 1, -5) .. kind
end

-- What this script call promoted: {run id, '1' if its message was pushed here, else '', the
-- pending run it ended expired instead (past its pending timeout), or ''}. Scripts that may
-- free a slot hand it back beside their own reply (text.py wraps them), so the caller
-- publishes a promoted run whose message was not stored (the two-step path) and counts an
-- expired one's ending like any other.
local PROMOTED = {'', '', ''}

-- Promote the workflow's pending run into the free slot `slot`, in the caller's step: the
-- slot gets the run's queued lease, the run becomes queued (its queue timeout counts from
-- now: promoted_ms), and its stored task message is pushed onto its queue (the fused path) or,
-- with none stored, `publish_due` marks it for the caller to publish. A pending run past its
-- pending timeout ends `expired` instead. Returns the promoted run id, or ''. Safe to repeat:
-- the pointer is gone once used.
local function promote(slot, now)
  local pending = beside(slot, 'waiting')
  local id = redis.call('GET', pending)
  if (not id) or redis.call('EXISTS', slot) == 1 then return '' end
  redis.call('DEL', pending)
  local run, events = beside(slot, 'run:' .. id), beside(slot, 'events:' .. id)
  local p = redis.call('HMGET', run, 'status', 'pending_until_ms', 'lease_ms', 'queue',
    'message')
  if p[1] ~= STATUS.PENDING then return '' end
  if now > tonumber(p[2] or '0') then
    record_end(run, events, STATUS.EXPIRED, ERROR.PENDING_TIMEOUT,
      'waited longer than the pending timeout for the slot', now)
    PROMOTED[3] = id
    return ''
  end
  redis.call('SET', slot, id, 'PX', tonumber(p[3]))
  redis.call('HSET', run, 'status', STATUS.QUEUED, 'promoted_ms', now)
  emit_status(events, run, STATUS.QUEUED, now)
  if p[5] and p[5] ~= '' then
    redis.call('LPUSH', p[4], p[5])
    redis.call('HDEL', run, 'message', 'queue')
    PROMOTED[2] = '1'
  else
    redis.call('HSET', run, 'publish_due', '1')
    PROMOTED[2] = ''
  end
  PROMOTED[1] = id
  return id
end

-- On a Redis Cluster (DECLARE_KEYS), the keys a release may touch by promoting the workflow's
-- pending run — its record and stream — named before the caller's first write (declare.lua);
-- the pending key itself (`…:waiting`) every releasing script takes in KEYS. Nothing on one
-- Redis (no extra read).
local function need_pending(slot)
  if not DECLARE_KEYS then return end
  local waiting = redis.call('GET', beside(slot, 'waiting'))
  if waiting then
    need(beside(slot, 'run:' .. waiting))
    need(beside(slot, 'events:' .. waiting))
  end
end

-- THE place a slot is freed. Compare-and-delete: frees the slot only if this run holds it,
-- so a late or repeated release never frees a slot another run holds. Records why and when
-- on the run (and that its body, if it was stopping, is gone). Then, in the same step, the
-- workflow's pending run takes the slot (promote): a slot is never free while a run waits.
-- Returns 1 if it freed the slot, 0 if the run did not hold it.
local function release(slot, run, run_id, reason, now)
  if redis.call('GET', slot) == run_id then
    redis.call('DEL', slot)
    if redis.call('EXISTS', run) == 1 then
      redis.call('HSET', run, 'release_reason', reason, 'released_ms', now)
      redis.call('HDEL', run, 'stopping')
    end
    promote(slot, now)
    return 1
  end
  return 0
end

-- A queued or running run whose slot is gone (or held by another run) has lost its lease:
-- record that, once (expired if it never started, lost if it did). A pending run that is no
-- longer its workflow's pending run, or is past its pending timeout, ends expired. Returns
-- the status the run has now.
local function settle_lapsed(slot, run, events, run_id, status, now)
  if status == STATUS.PENDING then
    local pending = beside(slot, 'waiting')
    local mine = redis.call('GET', pending) == run_id
    if mine and now <= tonumber(redis.call('HGET', run, 'pending_until_ms') or '0') then
      return status
    end
    if mine then redis.call('DEL', pending) end
    record_end(run, events, STATUS.EXPIRED, ERROR.PENDING_TIMEOUT,
      'waited longer than the pending timeout for the slot', now)
    return STATUS.EXPIRED
  end
  if (status == STATUS.QUEUED or status == STATUS.RUNNING)
      and redis.call('GET', slot) ~= run_id then
    if status == STATUS.QUEUED then
      record_end(run, events, STATUS.EXPIRED, ERROR.QUEUE_TIMEOUT,
        'no worker started it before its queue lease ran out', now, REASON.LEASE_EXPIRED)
      return STATUS.EXPIRED
    end
    record_end(run, events, STATUS.LOST, ERROR.HEARTBEAT_LOST,
      'the worker stopped answering: its lease ran out with no outcome recorded', now,
      REASON.LEASE_EXPIRED)
    return STATUS.LOST
  end
  return status
end

-- The run record as a flat HGETALL list plus its log lines, for replies that hand it back.
local function snapshot(run, logs)
  return {redis.call('HGETALL', run), redis.call('LRANGE', logs, 0, -1)}
end

-- The ids of the first and the last entry of a run's event stream ('' when it has none): a
-- reader that took the snapshot in the same script knows exactly which events follow it.
local function stream_bounds(events)
  local first = redis.call('XRANGE', events, '-', '+', 'COUNT', 1)[1]
  local last = redis.call('XREVRANGE', events, '+', '-', 'COUNT', 1)[1]
  return first and first[1] or '', last and last[1] or ''
end

-- Keep at most `max_runs` runs of a workflow (TEST_RUN_MAX_RUNS_PER_WORKFLOW): the oldest
-- beyond that are deleted from the index with their records, logs, event streams and the
-- idempotency keys that still name them, so a caller who triggers without end (say with
-- `on_conflict=replace`, which admits without waiting for a worker) cannot fill Redis. Called
-- by admit.lua right after it indexes the new run `keep` (the slot's holder, never deleted;
-- runs admitted in the same millisecond tie in the index, so it need not rank last) and
-- `holder` (the run holding the slot, older than a pending `keep`, or ''); the others are
-- older and ended, or are settled as such when read. `run_prefix` is
-- `<prefix>:{<workflow>}:run:`; the logs' prefix is the same with `logs:`. Returns how many
-- runs it deleted. Safe to repeat: a second call finds nothing beyond the bound.
local function keep_newest(index, run_prefix, events_prefix, max_runs, keep, holder)
  local excess = redis.call('ZCARD', index) - max_runs
  if excess <= 0 then return 0 end
  local logs_prefix = string.sub(run_prefix, 1, -5) .. 'logs:'
  local deleted = 0
  for _, id in ipairs(redis.call('ZRANGE', index, 0, excess + 1)) do
    if deleted < excess and id ~= keep and id ~= holder then
      local old = run_prefix .. id
      local idem = redis.call('HGET', old, 'idempotency_key')
      if idem and redis.call('GET', idem) == id then redis.call('DEL', idem) end
      redis.call('DEL', old, logs_prefix .. id, events_prefix .. id)
      redis.call('ZREM', index, id)
      deleted = deleted + 1
    end
  end
  return deleted
end

-- The keys keep_newest may delete when `keep` joins `index` (those of runs still within
-- `cutoff_ms`, the retention, as ZREMRANGEBYSCORE leaves them), named with need() before the
-- caller's first write: each candidate's record, log and stream, and the idempotency key its
-- record names once that record was passed (a second NEED round). Nothing on one Redis.
local function need_trimmed(index, run_prefix, events_prefix, max_runs, keep, cutoff_ms)
  if not DECLARE_KEYS then return end
  local excess = redis.call('ZCOUNT', index, '(' .. cutoff_ms, '+inf') + 1 - max_runs
  if excess <= 0 then return end
  local logs_prefix = string.sub(run_prefix, 1, -5) .. 'logs:'
  local oldest = redis.call('ZRANGEBYSCORE', index, '(' .. cutoff_ms, '+inf', 'LIMIT', 0,
    excess + 2)  -- keep_newest may pass over `keep` and the slot's holder
  for _, id in ipairs(oldest) do
    if id ~= keep then
      local old = need(run_prefix .. id)
      need(logs_prefix .. id)
      need(events_prefix .. id)
      if passed(old) then
        local idem = redis.call('HGET', old, 'idempotency_key')
        if idem then need(idem) end
      end
    end
  end
end

-- The fields of a run that a list shows (everything but input, result and logs:
-- summary_fields(), generated from worker/core/runs.py), as a flat field/value list like
-- HGETALL's, read with one HMGET so a list never copies inputs, results or logs inside Redis.
local function summary(run)
  local fields = summary_fields()
  local values = redis.call('HMGET', run, unpack(fields))
  local flat = {}
  for i, name in ipairs(fields) do
    if values[i] then
      flat[#flat + 1] = name
      flat[#flat + 1] = values[i]
    end
  end
  return flat
end
