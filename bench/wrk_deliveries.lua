-- Signed deliveries with a unique X-GitHub-Delivery per request; prints one JSON line when done.
local threads = {}
local body, signature, prefix

setup = function(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

init = function(args)
  local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
  body = f:read("*a")
  f:close()
  signature = os.getenv("BENCH_SIGNATURE")
  prefix = os.getenv("BENCH_PREFIX") .. "-" .. tostring(tid) .. "-"
  counter = 0
end

request = function()
  counter = counter + 1
  return wrk.format("POST", "/api/github/webhooks", {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "issues",
    ["X-GitHub-Delivery"] = prefix .. counter,
    ["X-Hub-Signature-256"] = signature,
  }, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
