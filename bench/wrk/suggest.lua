-- GET /v1/sessions/{id}/suggestions?k=3 on random pre-seeded visitors (signed ids).
-- wrk -t T ... -s bench/wrk/suggest.lua URL -- VISITORS_FILE RATE [T]
-- RATE: requests/s of the whole run on a fixed schedule (common.pacer; 0: closed loop), T: wrk's -t
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua"
local common = require("common")
local visitors = common.install(function(args) return tonumber(args[2] or "0"), tonumber(args[3] or "1") end)

function request()
  local v = visitors[math.random(#visitors)]
  return wrk.format("GET", "/v1/sessions/" .. v.sid .. "/suggestions?k=3", {["X-Forwarded-For"] = v.ip})
end

function done(summary, latency, requests)
  common.done(summary, latency, requests, "suggest")
end
