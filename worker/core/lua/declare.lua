-- declare.lua: every key a script touches is declared in KEYS. A Redis Cluster routes a script
-- by its KEYS, and Redis' documentation (and some managed cluster proxies, which refuse the
-- rest) require every key a script reads or writes to be among them. Most keys a script
-- touches are known to its caller (the workflow's slot, a run's record); a few are known only
-- from what the script reads (the holder's record, the runs a bound deletes, a worker's
-- details, a due delivery). The design: the script names each such key with `need(key)` while
-- it reads, before it writes anything; if any was not declared, it answers
-- {DECLARE.NEED_KEYS, key, …} having written nothing, and its wrapper calls again with those
-- keys appended to KEYS (worker/core/lua/base.py: until it asks for none). The second
-- call reads again, atomically: if what it read changed in between (a new holder), it names
-- what it needs now, so a script never acts on a key it did not declare. Keys declared and not
-- needed any more are harmless (they share the workflow's hash tag). Loaded after the
-- generated vocabulary and before lib.lua.
--
-- Only with DECLARE_KEYS (text.py: a script registered on a Redis Cluster client). On one
-- Redis (and Sentinel) a script may touch a key of its own hash tag that it builds, so `need()`
-- asks for nothing there: no extra call on the fused admission's one round trip, nor on a 409.

local PASSED, DECLARED = {}, {}
if DECLARE_KEYS then  -- on one Redis nothing reads them: ~3.5 µs a call of 8 keys, measured
  for _, key in ipairs(KEYS) do
    PASSED[key] = true
    DECLARED[key] = true
  end
end
local UNDECLARED = {}

-- True when the caller passed `key` in KEYS (so the script may touch it now); always on one
-- Redis, where nothing is asked for.
local function passed(key)
  return (not DECLARE_KEYS) or PASSED[key] == true
end

-- `key`, noted as needed: the caller must declare it if it has not.
local function need(key)
  if DECLARE_KEYS and not DECLARED[key] then
    DECLARED[key] = true
    UNDECLARED[#UNDECLARED + 1] = key
  end
  return key
end

-- The reply that asks for the keys still undeclared, or nil when every needed key was
-- declared. A script returns it (if not nil) after its reads and before its first write.
local function undeclared()
  if #UNDECLARED == 0 then return nil end
  local reply = {DECLARE.NEED_KEYS}
  for _, key in ipairs(UNDECLARED) do reply[#reply + 1] = key end
  return reply
end
