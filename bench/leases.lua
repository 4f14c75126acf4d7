-- wrk script for the at-least-once cycle: GET ?ack=explicit, then POST .../ack of its cursor.
-- Each 200 answer's cursor is queued; the next request wrk asks for acknowledges it (any
-- connection), else it is the next GET. Counts the messages of every 200 (values that start
-- with "bench-") and every status, and prints the same JSON line as load.lua.
--
-- Arguments (after `--`): GET_PATH ACK_PATH

local results = require("results")

setup = results.setup
done = results.done

function init(args)
  results.init()
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
  local n = results.count(status, body, true)
  if n > 0 then
    local cursor = string.match(body, '"cursor":"([^"]+)"')
    if cursor then
      table.insert(acks, cursor)
    end
  end
end
