-- Mixed widget and chat traffic on pre-seeded visitors (signed ids), in these shares:
--   35% GET suggestions                      20% page view (half KB pages, half site pages with ~1.5 kB text)
--   15% page view + suggestions in one batch 10% impressions of three suggestions (batch)
--    5% suggestion click                      6% search                 4% chat message
--    5% a new visitor (POST /v1/sessions)
-- wrk -t T ... -s bench/wrk/mixed.lua URL -- VISITORS_FILE ARTICLES_FILE RATE [T [SITE_PAGES_FILE [ZIPF_S]]]
-- RATE: requests/s of the whole run on a fixed schedule (common.pacer; 0: closed loop), T: wrk's -t.
-- Site pages: without SITE_PAGES_FILE each is a new random text (the worst case: no cache can help); with it, each
-- is drawn from the file's fixed pages ("url<TAB>title<TAB>text" lines, most popular first), the one at rank r with
-- probability proportional to r^-ZIPF_S (default 0.8), as a real site's visitors read its pages.
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua"
local common = require("common")
local articles = {}
local words = {"json", "serialize", "socket", "network", "thread", "lock", "csv", "reader", "parse", "date",
               "time", "zone", "regex", "pattern", "http", "client", "server", "queue", "async", "file", "path",
               "encode", "decode", "unicode", "bytes", "buffer", "stream", "process", "signal", "test"}
local site, site_cum = {}, {}  -- the fixed site pages, if any, and their cumulative popularity (last = 1)
local mix = {}
for _, pair in ipairs({{"suggest", 35}, {"view", 20}, {"view_batch", 15}, {"impressions", 10}, {"click", 5},
                       {"search", 6}, {"chat", 4}, {"new", 5}}) do
  for _ = 1, pair[2] do mix[#mix + 1] = pair[1] end
end

local visitors = common.install(function(args)
  for _, line in ipairs(common.lines(args[2])) do
    local id, url = common.split(line)
    articles[#articles + 1] = {id = id, url = url}
  end
  if args[5] and #args[5] > 0 then
    for _, line in ipairs(common.lines(args[5])) do
      local url, title, body = line:match("^([^\t]+)\t([^\t]*)\t(.*)$")
      site[#site + 1] = {url = url, title = title, text = body}
    end
    local s, total = tonumber(args[6] or "0.8"), 0
    for r = 1, #site do total = total + r ^ -s; site_cum[r] = total end
    for r = 1, #site do site_cum[r] = site_cum[r] / total end
  end
  return tonumber(args[3] or "0"), tonumber(args[4] or "1")
end)

local function text(n)
  local out = {}
  for i = 1, n do out[i] = words[math.random(#words)] end
  return table.concat(out, " ")
end

-- a fixed site page by popularity: the first rank whose cumulative share reaches a uniform draw (binary search)
local function site_page()
  local u, lo, hi = math.random(), 1, #site_cum
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if site_cum[mid] < u then lo = mid + 1 else hi = mid end
  end
  return site[lo]
end

local function page_view()
  if math.random(2) == 1 then
    local a = articles[math.random(#articles)]
    return '{"kind":"page_view","url":"' .. a.url .. '"}'
  end
  if #site > 0 then
    local p = site_page()
    return '{"kind":"page_view","url":"' .. p.url .. '","title":"' .. p.title .. '","text":"' .. p.text .. '"}'
  end
  local n = math.random(100000)
  return '{"kind":"page_view","url":"https://site.test/p' .. n .. '","title":"' .. text(4) ..
         '","text":"' .. text(220) .. '"}'
end


function request()
  local v = visitors[math.random(#visitors)]
  local base = "/v1/sessions/" .. v.sid
  local h = {["Content-Type"] = "application/json", ["X-Forwarded-For"] = v.ip}
  local kind = mix[math.random(#mix)]
  if kind == "suggest" then
    return wrk.format("GET", base .. "/suggestions?k=3", {["X-Forwarded-For"] = v.ip})
  elseif kind == "view" then
    return wrk.format("POST", base .. "/events", h, page_view())
  elseif kind == "view_batch" then
    return wrk.format("POST", base .. "/events/batch", h, '{"events":[' .. page_view() .. '],"suggest":3}')
  elseif kind == "impressions" then
    local ev = {}
    for i = 0, 2 do
      ev[#ev + 1] = '{"kind":"suggestion_impression","article_id":"' .. articles[math.random(#articles)].id ..
                    '","position":' .. i .. '}'
    end
    return wrk.format("POST", base .. "/events/batch", h, '{"events":[' .. table.concat(ev, ",") .. ']}')
  elseif kind == "click" then
    return wrk.format("POST", base .. "/events", h, '{"kind":"suggestion_click","article_id":"' ..
                      articles[math.random(#articles)].id .. '","position":' .. math.random(0, 2) .. '}')
  elseif kind == "search" then
    return wrk.format("POST", base .. "/events", h, '{"kind":"search","query":"' .. text(3) .. '"}')
  elseif kind == "chat" then
    return wrk.format("POST", base .. "/chat", h, '{"message":"how do I ' .. text(4) .. '?"}')
  end
  return wrk.format("POST", "/v1/sessions", {["X-Forwarded-For"] = v.ip})
end

function done(summary, latency, requests)
  common.done(summary, latency, requests, "mixed")
end
