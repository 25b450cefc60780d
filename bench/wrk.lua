-- One script for every HTTP scenario of the benchmark (bench/load.py writes its data file).
--
--   wrk -t1 -c32 -d10s -s bench/wrk.lua http://127.0.0.1:PORT -- RECORDS_FILE
--
-- Each line of RECORDS_FILE is one request, sent in turn and cycled:
--   METHOD <tab> PATH <tab> HEADERS <tab> BODY
-- HEADERS is `name: value` pairs joined by `|` (the token is the same on every request of an installation,
-- as Vercel reuses it). In BODY, %N% becomes a counter unique within the run (a new resource name per POST);
-- a line without %N% is formatted once, up front. done() prints one JSON line that bench/load.py reads.

local records = {}
local counter = 0

local function split(line, sep)
  local fields, start = {}, 1
  while true do
    local stop = string.find(line, sep, start, true)
    if not stop then
      fields[#fields + 1] = string.sub(line, start)
      return fields
    end
    fields[#fields + 1] = string.sub(line, start, stop - 1)
    start = stop + #sep
  end
end

function init(args)
  for line in io.lines(args[1]) do
    local f = split(line, "\t")
    local headers = {}
    if f[3] ~= "" then
      for _, pair in ipairs(split(f[3], "|")) do
        local colon = string.find(pair, ": ", 1, true)
        headers[string.sub(pair, 1, colon - 1)] = string.sub(pair, colon + 2)
      end
    end
    local body = f[4] ~= "" and f[4] or nil
    local record = { method = f[1], path = f[2], headers = headers, body = body }
    if not (body and string.find(body, "%N%", 1, true)) then
      record.ready = wrk.format(f[1], f[2], headers, body)
    end
    records[#records + 1] = record
  end
end

function request()
  counter = counter + 1
  local record = records[(counter - 1) % #records + 1]
  if record.ready then
    return record.ready
  end
  local body = string.gsub(record.body, "%%N%%", tostring(counter))
  return wrk.format(record.method, record.path, record.headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"wrk": true, "requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d,'
      .. ' "p50_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max
  ))
end
