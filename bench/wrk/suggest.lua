-- GET /v1/sessions/{id}/suggestions?k=3 on random pre-seeded visitors (signed ids).
-- wrk ... -s bench/wrk/suggest.lua URL -- VISITORS_FILE DELAY_MS
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua"
local common = require("common")
local visitors, pause = {}, 0
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  common.seed(tid or 0)
  for _, line in ipairs(common.lines(args[1])) do
    local sid, ip = common.split(line)
    visitors[#visitors + 1] = {sid = sid, ip = ip}
  end
  pause = tonumber(args[2] or "0") or 0
end

function delay()
  return pause
end

function request()
  local v = visitors[math.random(#visitors)]
  return wrk.format("GET", "/v1/sessions/" .. v.sid .. "/suggestions?k=3", {["X-Forwarded-For"] = v.ip})
end

function done(summary, latency, requests)
  common.done(summary, latency, requests, "suggest")
end
