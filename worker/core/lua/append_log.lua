-- append_log.lua: append a run's log lines, in order, to its log and to its event stream, within
-- the run's caps: TEST_RUN_MAX_LOG_LINES lines kept (the oldest dropped) and
-- TEST_RUN_MAX_LOG_BYTES bytes written in all. The line that would pass the byte cap is replaced
-- by one marker line (LOG_CUT_MARKER, 66 bytes) and every later line is dropped, so a run's log
-- in Redis never holds more than the cap plus that marker, in the list and in the stream alike.
-- A run with no record (deleted by keep_newest, or past its retention) gets nothing: no orphan
-- log is left. One call takes a batch of lines (the worker's run log sends what a run logged
-- within a moment in one round trip: worker/runner/runlog.py); each is capped as if alone.
--
-- KEYS[1]  run      <prefix>:{<workflow>}:run:<run>     its `log_bytes` counts what was written
-- KEYS[2]  logs     <prefix>:{<workflow>}:logs:<run>
-- KEYS[3]  events   <prefix>:{<workflow>}:events:<run>
-- ARGV[1]  max_lines   TEST_RUN_MAX_LOG_LINES
-- ARGV[2]  max_bytes   TEST_RUN_MAX_LOG_BYTES
-- ARGV[3]  retention_s how long the log and the stream are kept
-- ARGV[4…] the lines, oldest first, each already cut at TEST_RUN_MAX_LOG_LINE characters
--
-- Replies: one per line, in order:
--   LOG.APPENDED   the line was written
--   LOG.CUT        the byte cap was reached: the marker was written instead of the line
--   LOG.FULL       the cap had been reached before: nothing written
--   LOG.NO_RUN     no record: nothing written
--
-- Safe to repeat as far as the caps go: they hold however often it runs (a repeat appends
-- the lines again, as a second log call would; the worker never repeats one).

local LOG_CUT_MARKER = '[log cut: TEST_RUN_MAX_LOG_BYTES reached; later lines are dropped]'
local run, logs, events = KEYS[1], KEYS[2], KEYS[3]
local max_lines, max_bytes = tonumber(ARGV[1]), tonumber(ARGV[2])
local retention = tonumber(ARGV[3])

local replies = {}
if redis.call('EXISTS', run) == 0 then
  for i = 4, #ARGV do replies[#replies + 1] = LOG.NO_RUN end
  return replies
end
local used = tonumber(redis.call('HGET', run, 'log_bytes') or '0')
local wrote = false
for i = 4, #ARGV do
  local line = ARGV[i]
  if used >= max_bytes then
    replies[#replies + 1] = LOG.FULL
  else
    local reply = LOG.APPENDED
    if used + #line > max_bytes then
      line = LOG_CUT_MARKER
      used = max_bytes
      reply = LOG.CUT
    else
      used = used + #line
    end
    redis.call('RPUSH', logs, line)
    redis.call('XADD', events, 'MAXLEN', max_lines, '*', 'kind', EVENT.LOG, 'line', line)
    replies[#replies + 1] = reply
    wrote = true
  end
end
if wrote then
  redis.call('HSET', run, 'log_bytes', used)
  redis.call('LTRIM', logs, -max_lines, -1)
  redis.call('EXPIRE', logs, retention)
  redis.call('EXPIRE', events, retention)
end
return replies
