-- The request driver of tests/bench/loadbench.sh and tests/bench/callgrind.sh: wrk sends one
-- request per collected session cookie (the file given as the script's argument, one `Cookie`
-- header value per line), in turn.
local reqs, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do
    reqs[#reqs + 1] = wrk.format("GET", "/", { ["Cookie"] = line })
  end
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
