-- bench_chain.lua - wrk script for bench_chain.sh: POST one body to each of BENCH_PATHS in turn
-- (space-separated; one path: every request to it), with the Basic credential NEMO_BASIC, and
-- report in one line. With one connection the requests are sequential, so a round of the
-- paths is one chain called over HTTP, and chains/s is requests/s divided by their number.
local paths = {}
for p in string.gmatch(os.getenv("BENCH_PATHS") or "/function/a", "%S+") do
   paths[#paths + 1] = p
end
local body = os.getenv("BENCH_BODY") or "|x"
local headers = {["Authorization"] = "Basic " .. (os.getenv("NEMO_BASIC") or "")}
local next_path = 0

function request()
   next_path = next_path % #paths + 1
   return wrk.format("POST", paths[next_path], headers, body)
end

-- a wrong answer is an error too: every body must end with the chain's last word
local want = os.getenv("BENCH_WANT") or "x"
wrong = 0
function response(status, hdrs, resp)
   if status ~= 200 or string.sub(resp, -#want) ~= want then
      wrong = wrong + 1
   end
end

local threads = {}
function setup(thread)
   table.insert(threads, thread)
end

function done(summary, latency, requests)
   local e, bad = summary.errors, 0
   for _, t in ipairs(threads) do
      bad = bad + (t:get("wrong") or 0)
   end
   io.write(string.format(
      "WRK requests=%d duration_s=%.3f rps=%.1f p50_us=%d p99_us=%d wrong=%d errors=%d\n",
      summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99), bad,
      e.connect + e.read + e.write + e.timeout + e.status))
end
