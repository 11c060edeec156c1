-- Shared by the wrk scripts: visitors and articles from the files bench/wrk_load.py writes, the request pacing,
-- and a JSON summary line printed by done() for the driver to parse. Each visitor has its own client address,
-- sent as X-Forwarded-For as the proxy in front of the service would (the app runs with trust_forwarded_for), so
-- the per-client rate limit is exercised as in production instead of lifted.

local ffi = require("ffi")  -- wrk runs LuaJIT: its ffi reads the monotonic clock, which plain Lua cannot
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } wrk_pace_timespec;
int clock_gettime(int clk_id, wrk_pace_timespec *tp);
]]
local CLOCK_MONOTONIC = 1  -- Linux
local ts = ffi.new("wrk_pace_timespec")

local M = {}

function M.now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

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

-- wrk (Debian's 4.1, not wrk2) has no constant-rate mode, only delay(): the milliseconds a connection waits
-- before its next request. A fixed delay offers connections / (delay + latency) requests a second, so the offered
-- rate falls whenever the service slows down and a benchmark measures its own pacing rather than the service.
-- This pacer keeps a schedule instead: slot i is at t0 + i / rate, and each connection that finishes a request
-- claims the next unclaimed slot and waits until it. The offered rate is `rate` whatever the latency, as long as
-- a connection is free at each slot; a slot that comes while every connection is busy is sent as soon as one
-- frees up and counted late, with how late (`lag`): latency is counted from the send, as wrk does, so a run with
-- many late sends understates the latency a visitor would see (coordinated omission; wrk2 corrects for it).
-- rate <= 0: no pacing (closed loop, every connection sends as soon as its last answer came back).
function M.pacer(rate)
  local stats = {sent = 0, late = 0, lag_sum = 0, lag_max = 0}
  if not rate or rate <= 0 then
    return function() stats.sent = stats.sent + 1; return 0 end, stats
  end
  local period = 1000 / rate
  local next_slot = nil
  return function()
    local now = M.now_ms()
    local slot = next_slot or now
    next_slot = slot + period
    stats.sent = stats.sent + 1
    local wait = slot - now
    if wait < -1 then  -- more than wrk's timer resolution (1 ms) behind: no connection was free at the slot
      stats.late = stats.late + 1
      stats.lag_sum = stats.lag_sum - wait
      if -wait > stats.lag_max then stats.lag_max = -wait end
    end
    -- wrk truncates the delay to whole milliseconds; rounding keeps each send within 0.5 ms of its slot, and the
    -- schedule, not the delays, sets the rate, so the rounding does not add up
    return math.max(0, math.floor(wait + 0.5))
  end, stats
end

-- setup() and init() of a script whose arguments start with the visitors file; `extra(args)` reads the rest and
-- returns the run's total rate (requests/s, 0: closed loop) and wrk's thread count (-t; each thread paces its
-- share). Returns the visitors table (filled in init).
function M.install(extra)
  local visitors = {}
  local counter = 0
  local threads = {}
  _G.setup = function(thread)
    counter = counter + 1
    thread:set("tid", counter)
    threads[#threads + 1] = thread
  end
  _G.init = function(args)
    M.seed(tid or 0)
    for _, line in ipairs(M.lines(args[1])) do
      local sid, ip = M.split(line)
      visitors[#visitors + 1] = {sid = sid, ip = ip}
    end
    local rate, nthreads = extra(args)
    -- `pace`: a global, so that done() (in the main Lua state) can read each thread's counts with thread:get
    _G.delay, _G.pace = M.pacer((rate or 0) / math.max(1, nthreads or 1))
  end
  M.threads = threads
  return visitors
end

function M.done(summary, latency, requests, label)
  local e = summary.errors
  local sent, late, lag_sum, lag_max = 0, 0, 0, 0
  for _, thread in ipairs(M.threads or {}) do
    local p = thread:get("pace") or {}
    sent = sent + (p.sent or 0)
    late = late + (p.late or 0)
    lag_sum = lag_sum + (p.lag_sum or 0)
    lag_max = math.max(lag_max, p.lag_max or 0)
  end
  io.write(string.format(
    '{"label":"%s","requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"paced":%d,"late":%d,"lag_mean_ms":%.3f,"lag_max_ms":%.3f}\n',
    label, summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    sent, late, late > 0 and lag_sum / late or 0, lag_max))
end

return M
