-- wrk: POST /api/workflows/b-<n>/test-runs. BENCH_MODE=spread: every request a different
-- workflow (each thread walks its own half of BENCH_WORKFLOWS from BENCH_OFFSET); one: always b-0.
local mode = os.getenv("BENCH_MODE") or "spread"
local count = tonumber(os.getenv("BENCH_WORKFLOWS") or "100000")
local offset = tonumber(os.getenv("BENCH_OFFSET") or "0")
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local i = 0
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"

function request()
  local key = 0
  if mode == "spread" then
    key = (offset + tid * math.floor(count / 2) + i) % count
    i = i + 1
  end
  return wrk.format(nil, "/api/workflows/b-" .. key .. "/test-runs")
end
