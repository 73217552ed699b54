-- attach.lua: give a just-admitted run the caller's callback_url (a trigger's
-- `callback_url`), written after admit.lua made the record and before the run's message is
-- published, so the run's ending finds it. A run with no record gets nothing: no orphan hash.
--
-- KEYS[1]  run      <prefix>:{<workflow>}:run:<run>
-- ARGV[1]  callback_url  already checked (worker/core/egress.py)
--
-- Reply: the run's status, or '' when it has no record (nothing written). A terminal status
-- means the run ended before this call (a replace from another caller): the caller schedules
-- its delivery itself, since the ending's own hand-over did not see the URL.
--
-- Safe to repeat: it writes the same value again.

local run = KEYS[1]
local status = redis.call('HGET', run, 'status')
if not status then return '' end
redis.call('HSET', run, 'callback_url', ARGV[1])
return status
