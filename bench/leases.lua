-- wrk script for the at-least-once cycle: GET ?ack=explicit, then POST .../ack of its cursor.
-- Each 200 answer's cursor is queued; the next request wrk asks for acknowledges it (any
-- connection), else it is the next GET. Counts the messages of every 200 (values that start
-- with "bench-") and every status, and prints the same JSON line as load.lua.
--
-- Arguments (after `--`): GET_PATH ACK_PATH

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  messages = 0
  acks = {}
  get_request = wrk.format("GET", args[1])
  ack_path = args[2]
end

function request()
  local cursor = table.remove(acks)
  if cursor then
    return wrk.format("POST", ack_path, {["Content-Type"] = "application/json"},
      '{"cursor":"' .. cursor .. '"}')
  end
  return get_request
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 then
    local _, n = string.gsub(body, '"bench%-', "")
    messages = messages + n
    local cursor = string.match(body, '"cursor":"([^"]+)"')
    if cursor and n > 0 then
      table.insert(acks, cursor)
    end
  end
end

function done(summary, latency, requests)
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
