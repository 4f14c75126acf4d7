-- wrk script for the flasfka benchmark: counts every HTTP status and (for GETs) the messages
-- returned, optionally paces each connection, and prints one JSON line for python -m bench.
--
-- Arguments (after `--`): METHOD PATH [BODY_FILE|-] [DELAY_MS]
--   METHOD     POST or GET
--   PATH       request path, e.g. /bench-1/ or /bench-1/g/?limit=1000
--   BODY_FILE  file whose content is the request body ("-" for none)
--   DELAY_MS   wait this long before each request on a connection (0: closed loop at full speed)

local results = require("results")

setup = results.setup
done = results.done

function init(args)
  results.init()
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
  results.count(status, body, counting)
end
