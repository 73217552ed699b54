-- delivery_log.lua: add one webhook attempt to its run's `deliveries` (a JSON array on the
-- record: time, target, attempt, status code or error, outcome), which GET shows. A run with no
-- record (past its retention, or deleted by keep_newest) gets nothing: no orphan hash.
--
-- KEYS[1]  run      <prefix>:{<workflow>}:run:<run>
-- ARGV[1]  entry    the attempt as a JSON object
-- ARGV[2]  max      entries kept (the oldest dropped beyond it)
--
-- Reply: the number of entries now (0: no record, nothing written)
--
-- Safe to repeat as far as the bound goes: a repeat adds the entry again.

local run, entry, max = KEYS[1], ARGV[1], tonumber(ARGV[2])
if redis.call('EXISTS', run) == 0 then return 0 end
local raw = redis.call('HGET', run, 'deliveries')
local entries = raw and cjson.decode(raw) or {}
entries[#entries + 1] = cjson.decode(entry)
while #entries > max do table.remove(entries, 1) end
local parts = {}
for i, e in ipairs(entries) do parts[i] = cjson.encode(e) end
redis.call('HSET', run, 'deliveries', '[' .. table.concat(parts, ',') .. ']')
return #entries
