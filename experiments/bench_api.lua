-- bench_api.lua - wrk script: POST the echo payload with the bearer token, report in one line.
-- env: NEMO_TOKEN or NEMO_BASIC (required), BENCH_PATH [/function/echo], BENCH_BODY [{"hello":"nemo"}],
-- BENCH_METHOD [POST] (GET sends no body), BENCH_RUN [unset]: also collect each response's
-- X-Duration-Seconds (the function's run as nemod timed it) and report their median, run_p50_us
wrk.method = os.getenv("BENCH_METHOD") or "POST"
wrk.path = os.getenv("BENCH_PATH") or "/function/echo"
if wrk.method == "POST" then
   wrk.body = os.getenv("BENCH_BODY") or '{"hello":"nemo"}'
   wrk.headers["Content-Type"] = "application/json"
end
-- NEMO_BASIC (base64 of uuid:key) sends Basic auth, as OpenWhisk and OpenFaaS clients do
if os.getenv("NEMO_BASIC") then
   wrk.headers["Authorization"] = "Basic " .. os.getenv("NEMO_BASIC")
else
   wrk.headers["Authorization"] = "Bearer " .. (os.getenv("NEMO_TOKEN") or "")
end

local threads = {}
function setup(thread)
   table.insert(threads, thread)
end

if os.getenv("BENCH_RUN") then
   runs = {}
   function response(status, headers, body)
      local d = headers["X-Duration-Seconds"]
      if d then
         runs[#runs + 1] = tonumber(d) * 1e6
      end
   end
end

local function run_p50()
   local all = {}
   for _, t in ipairs(threads) do
      local r = t:get("runs")
      if r then
         for _, v in ipairs(r) do
            all[#all + 1] = v
         end
      end
   end
   if #all == 0 then
      return -1
   end
   table.sort(all)
   return all[math.floor((#all + 1) / 2)]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "WRK requests=%d duration_s=%.3f rps=%.1f p50_us=%d p99_us=%d p999_us=%d " ..
      "non2xx=%d connect_err=%d read_err=%d write_err=%d timeout=%d run_p50_us=%.1f\n",
      summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
      e.status, e.connect, e.read, e.write, e.timeout, run_p50()))
end
