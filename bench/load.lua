-- wrk script for the flasfka benchmark: counts every HTTP status and (for GETs) the messages
-- returned, optionally paces each connection, and prints one JSON line for python -m bench.
--
-- Arguments (after `--`): METHOD PATH [BODY_FILE|-] [DELAY_MS]
--   METHOD     POST or GET
--   PATH       request path, e.g. /bench-1/ or /bench-1/g/?limit=1000
--   BODY_FILE  file whose content is the request body ("-" for none)
--   DELAY_MS   wait this long before each request on a connection (0: closed loop at full speed)

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  messages = 0
  delay_ms = tonumber(args[4] or "0") or 0
  local body = nil
  if args[3] and args[3] ~= "-" then
    local f = assert(io.open(args[3], "rb"))
    body = f:read("*a")
    f:close()
  end
  local headers = {}
  if body then
    headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json"
  end
  request_bytes = wrk.format(args[1], args[2], headers, body)
  counting = args[1] == "GET"
end

function request()
  return request_bytes
end

if tonumber(os.getenv("BENCH_DELAY_MS") or "0") > 0 then
  function delay()
    return delay_ms
  end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if counting and status == 200 then
    -- every benchmark message starts with "bench-"; count them in the JSON body
    local _, n = string.gsub(body, '"bench%-', "")
    messages = messages + n
  end
end

function done(summary, latency, requests)
  local all = {}
  local total_messages = 0
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for status, n in pairs(counts) do
      all[status] = (all[status] or 0) + n
    end
    total_messages = total_messages + thread:get("messages")
  end
  local parts = {}
  for status, n in pairs(all) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us": %d, "requests": %d, "statuses": {%s}, "messages": %d, '
      .. '"p50_us": %d, "p99_us": %d, "max_us": %d, "errors": {"connect": %d, "read": %d, '
      .. '"write": %d, "status": %d, "timeout": %d}}\n',
    summary.duration, summary.requests, table.concat(parts, ", "), total_messages,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
