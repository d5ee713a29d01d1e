-- wrk script for bench/api.py: optional bearer token and JSON body from the environment,
-- and a JSON summary (requests/s, latency percentiles in ms, errors) printed by done().
--
--   BENCH_TOKEN      access token; sent as "Authorization: Bearer <token>" when set
--   BENCH_METHOD     GET (default) or POST
--   BENCH_BODY_FILE  file whose content is sent as the JSON body (POST)

local token = os.getenv("BENCH_TOKEN")
local method = os.getenv("BENCH_METHOD") or "GET"
local body_file = os.getenv("BENCH_BODY_FILE")

wrk.method = method
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end

local function ms(us)
  return string.format("%.3f", us / 1000)
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write("BENCH_JSON ")
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "requests_per_s": %.1f, ' ..
    '"latency_ms": {"mean": %s, "p50": %s, "p90": %s, "p99": %s, "max": %s}, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, seconds, summary.requests / seconds,
    ms(latency.mean), ms(latency:percentile(50)), ms(latency:percentile(90)),
    ms(latency:percentile(99)), ms(latency.max),
    e.connect, e.read, e.write, e.status, e.timeout))
end
