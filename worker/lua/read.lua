-- read.lua: a run's record and log lines, for GET /api/test-runs/<run> and the run lists.
-- A queued or running run whose slot is gone is settled first (expired / lost), atomically
-- and once, so a reader never sees a live run that nothing will ever end.
--
-- KEYS[1]  slot   <prefix>:{<workflow>}:slot
-- KEYS[2]  run    <prefix>:{<workflow>}:run:<run>
-- KEYS[3]  logs   <prefix>:{<workflow>}:logs:<run>
-- ARGV[1]  run_id
--
-- Replies:
--   {HGETALL of the record, log lines}   the run
--   false (nil)                          no such record
--
-- Safe to repeat: settling happens once; a second read finds the run terminal.

local slot, run, logs = KEYS[1], KEYS[2], KEYS[3]
local status = redis.call('HGET', run, 'status')
if not status then return false end
settle_lapsed(slot, run, ARGV[1], status, now_ms())
return snapshot(run, logs)
