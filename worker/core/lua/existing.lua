-- existing.lua: which of many keys exist, in one call. Every worker's heartbeat sweeps all
-- registered workflows (worker/runner/upkeep.py: a pending run into a lapsed slot; the
-- webhooks' outboxes); asking this first makes a beat cost the workflows that have something
-- to sweep, not every registered one (100,000 workflows: seconds of a worker's CPU a beat,
-- one script or command per workflow). On one Redis only: one call's keys may belong to many
-- workflows (many hash slots), which a Redis Cluster refuses. Its wrapper (reading.py) asks
-- EXISTS for the count of a chunk first, and this only of a chunk with some but not all.
--
-- KEYS[1]   a key to look for (an empty sorted set or list does not exist) …
-- KEYS[n]   … and each of the others, up to the caller's chunk (1,000)
-- ARGV[1]   (none)
--
-- Replies:
--   {i, …}   the positions in KEYS (1-based, ascending) of the keys that exist
--
-- Safe to repeat: it writes nothing.

local found = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then found[#found + 1] = i end
end
return found
