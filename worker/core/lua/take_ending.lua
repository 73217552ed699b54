-- take_ending.lua: what a run's ending, noted in its workflow's outbox by record_end (lib.lua),
-- must deliver. Called by the process that recorded the ending (right after), and by the
-- sweeps for entries a crash left behind. When there is nothing to deliver the entry is taken
-- out here; otherwise the caller schedules the deliveries, then takes it out (ZREM), so a crash
-- in between leaves it for the next sweep (scheduling is idempotent: one delivery per target).
--
-- KEYS[1]  outbox   <prefix>:{<workflow>}:ended
-- KEYS[2]  run      <prefix>:{<workflow>}:run:<run>
-- ARGV[1]  run_id
-- ARGV[2]  operator '1' when WEBHOOK_URL is set (every run's ending goes to it), else '0'
--
-- Replies:
--   {0}                  not in the outbox (handed over already), or nothing to deliver
--                        (taken out)
--   {1, callback_url}    deliveries are due: the run's callback_url ('' for none) and, with
--                        operator '1', WEBHOOK_URL
--
-- Safe to repeat: a second call finds the same entry (or none) and answers the same.

local outbox, run = KEYS[1], KEYS[2]
local run_id, operator = ARGV[1], ARGV[2]
if not redis.call('ZSCORE', outbox, run_id) then return {0} end
local callback = redis.call('HGET', run, 'callback_url') or ''
if operator ~= '1' and callback == '' then
  redis.call('ZREM', outbox, run_id)
  return {0}
end
return {1, callback}
