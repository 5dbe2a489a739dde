-- wrk script for `make bench-jit`: Marqeta-shaped JIT funding bodies, unique tokens, Basic auth.
--
-- wrk -t T -c C -d D -s bench/jit.lua URL -- <template> <users> <mode> <prefix> <auth> \
--     <amount> <scenario> <results>
--   template  JSON body with @@USER@@ @@CARD@@ @@JIT@@ @@TXN@@ @@AMOUNT@@ (bench_load writes it)
--   users     "user card" lines; mode "hot" uses the first line, "cold" a random line each time
--   prefix    makes jit_funding.token unique across the run's wrk invocations
--   results   done() appends one JSON line: throughput, latency percentiles (us), statuses;
--             answers the stand-in policy gave (tag fallback=1) go to <results>.fallback, one
--             "jit_token status" line each, for the report to look up in the outbox
-- The body is built by concatenating pre-split chunks: no gsub per request.

local threads, next_id = {}, 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local chunks, users, mode, prefix, amount, id
local counter = 0

local function split(template)
  local parts, position = {}, 1
  while true do
    local first, last, name = string.find(template, "@@(%u+)@@", position)
    if not first then break end
    table.insert(parts, string.sub(template, position, first - 1))
    table.insert(parts, name)
    position = last + 1
  end
  table.insert(parts, string.sub(template, position))
  return parts
end

function init(args)
  local file = assert(io.open(args[1], "r"))
  chunks = split(file:read("*a"))
  file:close()
  users = {}
  for line in io.lines(args[2]) do
    local user, card = string.match(line, "^(%S+)%s+(%S+)")
    if user then table.insert(users, {user, card}) end
  end
  mode, prefix, amount = args[3], args[4], args[6]
  id = wrk.thread:get("id")
  math.randomseed(os.time() * 1000 + id)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = args[5]
  scenario, results = args[7], args[8]  -- globals: read by done() through thread:get
  ok, declined, other = 0, 0, 0
end

function request()
  counter = counter + 1
  local pick = users[1]
  if mode == "cold" then pick = users[math.random(#users)] end
  local jit = prefix .. "-" .. id .. "-" .. counter
  local values = {USER = pick[1], CARD = pick[2], JIT = jit, TXN = "t" .. jit, AMOUNT = amount}
  local out = {}
  for index, part in ipairs(chunks) do
    if index % 2 == 0 then out[index] = values[part] else out[index] = part end
  end
  return wrk.format(nil, nil, nil, table.concat(out))
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status == 402 then
    declined = declined + 1
  else
    other = other + 1
    if other <= 3 then io.stderr:write("status " .. status .. ": " .. body:sub(1, 300) .. "\n") end
  end
  if status ~= 200 and string.find(body, "fallback=1", 1, true) then
    local token = string.match(body, '"token": "([^"]*)"') or "?"
    local file = io.open(results .. ".fallback", "a")
    if file then
      file:write(token .. " " .. status .. "\n")
      file:close()
    end
  end
end

function done(summary, latency, requests)
  local approved, refused, odd = 0, 0, 0
  for _, thread in ipairs(threads) do
    approved = approved + thread:get("ok")
    refused = refused + thread:get("declined")
    odd = odd + thread:get("other")
  end
  local errors = summary.errors
  local line = string.format(
    '{"scenario":"%s","requests":%d,"duration_us":%d,"rps":%.1f,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"status_200":%d,"status_402":%d,"status_other":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d}}\n',
    threads[1]:get("scenario"), summary.requests, summary.duration,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    approved, refused, odd,
    errors.connect, errors.read, errors.write, errors.timeout)
  io.write(line)
  local file = assert(io.open(threads[1]:get("results"), "a"))
  file:write(line)
  file:close()
end
