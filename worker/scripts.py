"""The Lua scripts: every change of a slot or of a run's status happens in one of these.

Each script touches only keys of one workflow (one hash tag), so it is atomic on a single Redis
and on a cluster. The prelude's `release` is the one place a slot is freed: compare-and-delete
on the run id, so a late or repeated release never frees a slot another run holds.
"""

PRELUDE = r"""
local TERMINAL = {succeeded=true, failed=true, timed_out=true, cancelled=true,
                  expired=true, lost=true}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- compare-and-delete: frees the slot only if this run holds it
local function release(slot, run, run_id, reason, now)
  if redis.call('GET', slot) == run_id then
    redis.call('DEL', slot)
    if redis.call('EXISTS', run) == 1 then
      redis.call('HSET', run, 'release_reason', reason, 'released_ms', now)
    end
    return 1
  end
  return 0
end

-- a queued or running run whose slot is gone has lost its lease: record it, once
local function derive(slot, run, run_id, status, now)
  if (status == 'queued' or status == 'running') and redis.call('GET', slot) ~= run_id then
    if status == 'queued' then
      redis.call('HSET', run, 'status', 'expired', 'finished_ms', now,
        'error_type', 'queue_timeout',
        'error', 'no worker started it before its queue lease ran out',
        'release_reason', 'lease_expired', 'released_ms', now)
      return 'expired'
    end
    redis.call('HSET', run, 'status', 'lost', 'finished_ms', now,
      'error_type', 'heartbeat_lost',
      'error', 'the worker stopped answering: its lease ran out with no outcome recorded',
      'release_reason', 'lease_expired', 'released_ms', now)
    return 'lost'
  end
  return status
end
"""

# KEYS: slot, run, index, idempotency
# ARGV: run_id, workflow_id, input_json, lease_ms, retention_s, on_conflict, run_prefix, use_idem
ADMIT = PRELUDE + r"""
local slot, run, index, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local run_id, wf, input = ARGV[1], ARGV[2], ARGV[3]
local lease_ms, retention = tonumber(ARGV[4]), tonumber(ARGV[5])
local on_conflict, run_prefix, use_idem = ARGV[6], ARGV[7], ARGV[8]
local holder = redis.call('GET', slot)
-- a client retry of this very call (the reply was lost): answer as the first call did
if holder == run_id then
  local prior = redis.call('HMGET', run, 'displaced', 'displaced_how', 'created_ms')
  return {'admitted', run_id, prior[1] or '', prior[2] or '', prior[3] or '0'}
end
if use_idem == '1' then
  local prior = redis.call('GET', idem)
  -- a retry after a 503 must be able to start the run the first request could not enqueue
  if prior and redis.call('HGET', run_prefix .. prior, 'error_type') ~= 'enqueue_failed' then
    return {'existing', prior}
  end
end
local now = now_ms()
local displaced, how = '', ''
if holder then
  local hrun = run_prefix .. holder
  local hstatus = redis.call('HGET', hrun, 'status')
  if (not hstatus) or TERMINAL[hstatus] then
    -- proof of death: the holder already ended (a missed signal) or its record is gone
    release(slot, hrun, holder, 'reclaimed', now)
    how = 'reclaimed'
  elseif on_conflict == 'replace' then
    redis.call('HSET', hrun, 'status', 'cancelled', 'finished_ms', now,
      'error_type', 'cancelled', 'error', 'replaced by test run ' .. run_id)
    release(slot, hrun, holder, 'replaced', now)
    how = 'replaced'
  else
    return {'conflict', holder}
  end
  displaced = holder
end
redis.call('SET', slot, run_id, 'PX', lease_ms)
redis.call('HSET', run, 'run_id', run_id, 'workflow_id', wf, 'type', 'test',
  'status', 'queued', 'created_ms', now, 'input', input)
if displaced ~= '' then
  redis.call('HSET', run, 'displaced', displaced, 'displaced_how', how)
end
redis.call('EXPIRE', run, retention)
redis.call('ZADD', index, now, run_id)
redis.call('ZREMRANGEBYSCORE', index, '-inf', now - retention * 1000)
redis.call('EXPIRE', index, retention)
if use_idem == '1' then redis.call('SET', idem, run_id, 'EX', retention) end
return {'admitted', run_id, displaced, how, tostring(now)}
"""

# KEYS: slot, run
# ARGV: run_id, worker, lease_ms, queue_timeout_ms, pid
START = PRELUDE + r"""
local slot, run = KEYS[1], KEYS[2]
local run_id, worker, pid = ARGV[1], ARGV[2], ARGV[5]
local lease_ms, queue_timeout_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local status = redis.call('HGET', run, 'status')
if not status then return {'missing'} end
local now = now_ms()
status = derive(slot, run, run_id, status, now)
if status == 'running' and redis.call('HGET', run, 'worker') == worker
    and redis.call('HGET', run, 'pid') == pid then
  -- a client retry of this very call (the reply was lost): this process did start it
  return {'started', redis.call('HGET', run, 'input') or '{}'}
end
if status ~= 'queued' then return {'refused', status} end
local created = tonumber(redis.call('HGET', run, 'created_ms') or now)
if now - created > queue_timeout_ms then
  redis.call('HSET', run, 'status', 'expired', 'finished_ms', now,
    'error_type', 'queue_timeout', 'error', 'waited longer than the queue timeout for a worker')
  release(slot, run, run_id, 'expired', now)
  return {'refused', 'expired'}
end
redis.call('HSET', run, 'status', 'running', 'started_ms', now, 'worker', worker,
  'heartbeat_ms', now, 'pid', pid)
redis.call('PEXPIRE', slot, lease_ms)
return {'started', redis.call('HGET', run, 'input') or '{}'}
"""

# KEYS: slot, run, logs
# ARGV: run_id, workflow_id, status, error_type, error, result_json ('' = none), reason,
#       worker, retention_s, mode:
#   'outcome'     the worker knows how the run ended (recreates a record Redis lost)
#   'cancel'      a person cancels: derive expired/lost first, a missing record is an error
#   'queued_only' a message was revoked or expired before it ran: ends the run only if it is
#                 still queued (a late duplicate of a running run's message must not end it)
FINISH = PRELUDE + r"""
local slot, run, logs = KEYS[1], KEYS[2], KEYS[3]
local run_id, wf, status, etype, err, result = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local reason, worker, retention, mode = ARGV[7], ARGV[8], tonumber(ARGV[9]), ARGV[10]
local now = now_ms()
local current = redis.call('HGET', run, 'status')
if not current then
  if mode ~= 'outcome' then return {'missing'} end
  -- Redis lost the record (restarted empty): the worker still knows the outcome
  redis.call('HSET', run, 'run_id', run_id, 'workflow_id', wf, 'type', 'test',
    'record_lost', '1', 'input', '{}')
elseif mode ~= 'outcome' then
  current = derive(slot, run, run_id, current, now)
end
if current and TERMINAL[current] then
  local released = release(slot, run, run_id, reason, now)
  if mode == 'cancel' then
    return {'unchanged', current, released, redis.call('HGETALL', run),
            redis.call('LRANGE', logs, 0, -1)}
  end
  return {'unchanged', current, released}
end
if mode == 'queued_only' and current ~= 'queued' then return {'unchanged', current, 0} end
redis.call('HSET', run, 'status', status, 'finished_ms', now, 'error_type', etype, 'error', err)
if result ~= '' then redis.call('HSET', run, 'result', result) end
if worker ~= '' and redis.call('HEXISTS', run, 'worker') == 0 then
  redis.call('HSET', run, 'worker', worker)
end
local released = release(slot, run, run_id, reason, now)
redis.call('EXPIRE', run, retention)
redis.call('EXPIRE', logs, retention)
if mode == 'cancel' then
  -- the caller answers with the run: hand it back instead of a second round trip
  return {'finished', current or '', released, redis.call('HGETALL', run),
          redis.call('LRANGE', logs, 0, -1)}
end
return {'finished', current or '', released}
"""

# KEYS: slot, run, logs   ARGV: run_id
READ = PRELUDE + r"""
local slot, run, logs = KEYS[1], KEYS[2], KEYS[3]
local status = redis.call('HGET', run, 'status')
if not status then return false end
derive(slot, run, ARGV[1], status, now_ms())
return {redis.call('HGETALL', run), redis.call('LRANGE', logs, 0, -1)}
"""

# KEYS: slot, run
# ARGV: run_id, workflow_id, ttl_ms, worker, retention_s, pid
HEARTBEAT = PRELUDE + r"""
local slot, run = KEYS[1], KEYS[2]
local run_id, wf, ttl_ms, worker = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local retention, pid = tonumber(ARGV[5]), ARGV[6]
local now = now_ms()
local status = redis.call('HGET', run, 'status')
if not status then
  -- Redis restarted empty while the run executed: put its record back as running
  redis.call('HSET', run, 'run_id', run_id, 'workflow_id', wf, 'type', 'test',
    'status', 'running', 'started_ms', now, 'worker', worker, 'pid', pid,
    'record_lost', '1', 'input', '{}')
  redis.call('EXPIRE', run, retention)
  status = 'running'
end
-- only the process that started the run speaks for it: a duplicate delivery of the same
-- message (refused by the start check) must neither renew nor be killed for it
if redis.call('HGET', run, 'worker') ~= worker or redis.call('HGET', run, 'pid') ~= pid then
  return {'not_ours', status}
end
if TERMINAL[status] then return {'terminal', status} end
if status ~= 'running' then return {'not_started', status} end
local holder = redis.call('GET', slot)
if holder == run_id then
  redis.call('PEXPIRE', slot, ttl_ms)
  redis.call('HSET', run, 'heartbeat_ms', now)
  return {'renewed'}
end
if not holder then
  -- the lease lapsed (Redis was away) but the run is still executing: it keeps its slot
  redis.call('SET', slot, run_id, 'PX', ttl_ms)
  redis.call('HSET', run, 'heartbeat_ms', now)
  return {'reacquired'}
end
-- another run holds the slot, so this one must not go on
redis.call('HSET', run, 'status', 'lost', 'finished_ms', now, 'error_type', 'heartbeat_lost',
  'error', 'its lease ran out and test run ' .. holder .. ' took the slot')
return {'terminal', 'lost'}
"""

# KEYS: slot   ARGV: run_prefix, reason, expected holder ('' = whoever holds it)
FORCE_RELEASE = PRELUDE + r"""
local slot, run_prefix, reason, expected = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local holder = redis.call('GET', slot)
if not holder then return false end
if expected ~= '' and holder ~= expected then return false end
local run = run_prefix .. holder
local now = now_ms()
local status = redis.call('HGET', run, 'status')
if status and not TERMINAL[status] then
  redis.call('HSET', run, 'status', 'cancelled', 'finished_ms', now,
    'error_type', 'cancelled', 'error', 'its slot was released by an operator')
end
release(slot, run, holder, reason, now)
return holder
"""
