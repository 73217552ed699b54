-- read.lua: a run's record and log lines, for GET /api/test-runs/<run> and the run lists.
-- A queued or running run whose slot is gone is settled first (expired / lost), atomically
-- and once, so a reader never sees a live run that nothing will ever end.
--
-- KEYS[1]  slot   <prefix>:{<workflow>}:slot
-- KEYS[2]  run    <prefix>:{<workflow>}:run:<run>
-- KEYS[3]  logs   <prefix>:{<workflow>}:logs:<run>
-- KEYS[4]  events <prefix>:{<workflow>}:events:<run>   the run's event stream
-- KEYS[5]  outbox <prefix>:{<workflow>}:ended   the endings outbox (lib.lua note_ending)
-- KEYS[6]  pending <prefix>:{<workflow>}:waiting (a pending run's read settles its timeout)
-- ARGV[1]  run_id
-- ARGV[2]  fields  READ.FULL: the whole record and its log; READ.SUMMARY: the record without
--                  input and result (lib.lua summary) and no log lines, for the run lists
--
-- Replies:
--   {HGETALL of the record (or its summary), log lines ({} for a summary), first_event_id,
--    last_event_id, settled}   the run, and the ids ('' if none) bounding its event stream as
--       of this read: the events that follow this snapshot are exactly those after
--       last_event_id; settled is the status this read ended the run with (a lapsed lease:
--       expired or lost), else ''
--   false (nil)                          no such record
--
-- Safe to repeat: settling happens once (with its one status event); a second read finds the
-- run terminal.

local slot, run, logs, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local status = redis.call('HGET', run, 'status')
if not status then return false end
local now_status = settle_lapsed(slot, run, events, ARGV[1], status, now_ms())
local reply
if ARGV[2] == READ.SUMMARY then
  reply = {summary(run), {}}
else
  reply = snapshot(run, logs)
end
local first, last = stream_bounds(events)
reply[3], reply[4] = first, last
reply[5] = (now_status ~= status) and now_status or ''
return reply
