-- append_log.lua: append one line to a run's log and to its event stream, within the run's
-- caps: TEST_RUN_MAX_LOG_LINES lines kept (the oldest dropped) and TEST_RUN_MAX_LOG_BYTES
-- bytes written in all. The line that would pass the byte cap is replaced by one marker line
-- (LOG_CUT_MARKER, 66 bytes) and every later line is dropped, so a run's log in Redis never holds
-- more than the cap plus that marker, in the list and in the stream alike. A run with no
-- record (deleted by keep_newest, or past its retention) gets nothing: no orphan log is left.
--
-- KEYS[1]  run      <prefix>:{<workflow>}:run:<run>     its `log_bytes` counts what was written
-- KEYS[2]  logs     <prefix>:{<workflow>}:logs:<run>
-- KEYS[3]  events   <prefix>:{<workflow>}:events:<run>
-- ARGV[1]  line        the line, already cut at TEST_RUN_MAX_LOG_LINE characters
-- ARGV[2]  max_lines   TEST_RUN_MAX_LOG_LINES
-- ARGV[3]  max_bytes   TEST_RUN_MAX_LOG_BYTES
-- ARGV[4]  retention_s how long the log and the stream are kept
--
-- Replies:
--   LOG.APPENDED   the line was written
--   LOG.CUT        the byte cap was reached: the marker was written instead of the line
--   LOG.FULL       the cap had been reached before: nothing written
--   LOG.NO_RUN     no record: nothing written
--
-- Safe to repeat as far as the caps go: they hold however often it runs (a repeat appends
-- the line again, as a second log call would; the worker never repeats one).

local LOG_CUT_MARKER = '[log cut: TEST_RUN_MAX_LOG_BYTES reached; later lines are dropped]'
local run, logs, events = KEYS[1], KEYS[2], KEYS[3]
local line, max_lines = ARGV[1], tonumber(ARGV[2])
local max_bytes, retention = tonumber(ARGV[3]), tonumber(ARGV[4])

if redis.call('EXISTS', run) == 0 then return LOG.NO_RUN end
local used = tonumber(redis.call('HGET', run, 'log_bytes') or '0')
if used >= max_bytes then return LOG.FULL end
local reply = LOG.APPENDED
if used + #line > max_bytes then
  line = LOG_CUT_MARKER
  used = max_bytes
  reply = LOG.CUT
else
  used = used + #line
end
redis.call('HSET', run, 'log_bytes', used)
redis.call('RPUSH', logs, line)
redis.call('LTRIM', logs, -max_lines, -1)
redis.call('EXPIRE', logs, retention)
redis.call('XADD', events, 'MAXLEN', max_lines, '*', 'kind', EVENT.LOG, 'line', line)
redis.call('EXPIRE', events, retention)
return reply
