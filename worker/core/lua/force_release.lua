-- force_release.lua: an operator frees a workflow's slot (`testruns release`, and
-- `testruns reconcile` for holders that already ended). A live holder is recorded cancelled.
--
-- KEYS[1]  slot         <prefix>:{<workflow>}:slot
-- KEYS[2]  outbox       <prefix>:{<workflow>}:ended   the endings outbox (lib.lua note_ending)
-- KEYS[3]  pending      <prefix>:{<workflow>}:waiting the pending run a release promotes
-- KEYS[4…] holder       the holder's record and event stream (and the pending run's), as
--                       asked for by a NEED_KEYS reply (on a Redis Cluster: declare.lua)
-- ARGV[1]  run_prefix   <prefix>:{<workflow>}:run:  (the holder's record is run_prefix .. id)
-- ARGV[2]  reason       the REASON recorded on the holder (REASON.FORCED, REASON.RECLAIMED:
--                       reconcile, which never frees the slot of a holder whose body may
--                       still run — cancelled while running, `stopping` — only FORCED does)
-- ARGV[3]  expected     free the slot only if this run id holds it; '' = whoever holds it
--                       (so a check-then-release can never free a newer holder)
-- ARGV[4]  events_prefix <prefix>:{<workflow>}:events:  (the holder's event stream)
--
-- Replies:
--   {holder_run_id, ended, started_ms, now_ms}   the run whose slot this call freed; ended is
--                            '1' when this call also ended it (recorded it cancelled), else '';
--                            started_ms: when it had started ('' if it never did); now_ms: when
--                            this call freed it (its end, when ended)
--   false (nil)     nothing freed: the slot was free, or held by another than `expected`
--   {DECLARE.NEED_KEYS, key, …}  the holder's record or stream was not in KEYS: nothing
--                   written; call again with them (declare.lua)
--
-- The release promotes the workflow's pending run in the same step (lib.lua release()).
--
-- Safe to repeat: a second call finds the slot free (or a new holder) and frees nothing (and
-- writes no second status event).

local slot, run_prefix, reason, expected = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local events_prefix = ARGV[4]
local holder = redis.call('GET', slot)
if not holder then return false end
if expected ~= '' and holder ~= expected then return false end
local run, events = need(run_prefix .. holder), need(events_prefix .. holder)
need_pending(slot)
local ask = undeclared()
if ask then return ask end
local now = now_ms()
local status = redis.call('HGET', run, 'status')
if reason == REASON.RECLAIMED and redis.call('HGET', run, 'stopping') then return false end
local ended = ''
if status and not TERMINAL[status] then
  record_end(run, events, STATUS.CANCELLED, ERROR.CANCELLED,
    'its slot was released by an operator', now)
  ended = '1'
end
release(slot, run, holder, reason, now)
return {holder, ended, redis.call('HGET', run, 'started_ms') or '', tostring(now)}
