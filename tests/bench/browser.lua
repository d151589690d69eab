-- A browser-like request driver for tests/bench/callgrind.sh (CG_DRIVER=browser): each wrk thread
-- has one connection and one session, starting from line `id` of the cookie file, and sends back
-- the cookie it was given last (a `Set-Cookie` in a response replaces it).
local counter, cookie = 0, nil
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
function init(args)
  local lines = {}
  for line in io.lines(args[1]) do lines[#lines + 1] = line end
  cookie = lines[(id - 1) % #lines + 1]
end
function request()
  return wrk.format("GET", "/", { ["Cookie"] = cookie })
end
function response(status, headers, body)
  local set = headers["set-cookie"] or headers["Set-Cookie"]
  if set then
    local pair = set:match("^([^;]*)")
    if pair and not pair:match("=$") then cookie = pair end
  end
end
