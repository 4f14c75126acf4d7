-- What every wrk script of the benchmark shares (require "results"; bench/wrk.py puts bench/
-- on LUA_PATH): each thread counts every HTTP status and the messages of its 200 answers, and
-- done() prints one JSON line of the totals, the latencies and the socket errors, which
-- bench/wrk.py reads.

local results = {}
local threads = {}

-- wrk's setup(thread): keep every thread, to total their counts in done().
function results.setup(thread)
  table.insert(threads, thread)
end

-- Called from a script's init(args): the counts of this thread (globals, read by done()).
function results.init()
  statuses = {}
  messages = 0
end

-- Counts one answer; with count_messages, the messages of a 200 answer too (every benchmark
-- message starts with "bench-"). Returns how many it counted.
function results.count(status, body, count_messages)
  statuses[status] = (statuses[status] or 0) + 1
  if count_messages and status == 200 then
    local _, n = string.gsub(body, '"bench%-', "")
    messages = messages + n
    return n
  end
  return 0
end

-- wrk's done(summary, latency, requests): the BENCH_RESULT line.
function results.done(summary, latency, requests)
  local all = {}
  local total_messages = 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
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

return results
