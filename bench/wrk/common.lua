-- Shared by the wrk scripts: visitors and articles from the files bench/wrk_load.py writes, and a JSON
-- summary line printed by done() for the driver to parse. Each visitor has its own client address, sent as
-- X-Forwarded-For as the proxy in front of the service would (the app runs with trust_forwarded_for), so the
-- per-client rate limit is exercised as in production instead of lifted.

local M = {}

function M.lines(path)
  local out = {}
  for line in io.lines(path) do
    if #line > 0 then out[#out + 1] = line end
  end
  return out
end

function M.split(line)
  local a, b = line:match("^(%S+)%s+(%S+)$")
  return a, b
end

-- wrk's threads are separate Lua states: each picks its own stream of visitors.
function M.seed(tid)
  math.randomseed(os.time() + tid * 7919)
end

-- setup() and init() of a script whose arguments start with the visitors file; `extra(args)` reads the rest.
-- Returns the visitors table (filled in init) and a function giving the per-request delay.
function M.install(extra)
  local visitors, pause = {}, 0
  local counter = 0
  _G.setup = function(thread)
    counter = counter + 1
    thread:set("tid", counter)
  end
  _G.init = function(args)
    M.seed(tid or 0)
    for _, line in ipairs(M.lines(args[1])) do
      local sid, ip = M.split(line)
      visitors[#visitors + 1] = {sid = sid, ip = ip}
    end
    pause = extra(args) or 0
  end
  _G.delay = function() return pause end
  return visitors
end

function M.done(summary, latency, requests, label)
  local e = summary.errors
  io.write(string.format(
    '{"label":"%s","requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    label, summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end

return M
