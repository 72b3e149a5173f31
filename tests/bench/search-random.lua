-- wrk script for the search benchmark (tests/bench/search-bench.sh): every request is a
-- GET of a path template with "{}" replaced by a value drawn at random, so each request
-- asks about a different existing patient, personnummer or organization.
--
-- Usage: wrk -s search-random.lua URL -- TEMPLATE SOURCE
--   TEMPLATE  a path with one "{}", e.g. "/fhir/CareTeam?patient=Patient/p-{}&status=active"
--             (already URL-encoded; the value is inserted as it is)
--   SOURCE    "range:LOW:HIGH"  an integer drawn uniformly from LOW..HIGH (patient numbers:
--                               every Patient/p-<n> with 1 <= n <= patients exists), or
--             a file path       a line of the file drawn uniformly (one value per line)
-- Non-2xx responses are counted by common.lua's response() and printed at the end.
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local prefix, suffix, values, low, high
local headers = { ["Accept"] = "application/fhir+json" }

function init(args)
   local template, source = args[1], args[2]
   assert(template and source, "usage: -- TEMPLATE SOURCE")
   local at = string.find(template, "{}", 1, true)
   assert(at, "the template has no {}: " .. template)
   prefix = string.sub(template, 1, at - 1)
   suffix = string.sub(template, at + 2)
   local a, b = string.match(source, "^range:(%d+):(%d+)$")
   if a then
      low, high = tonumber(a), tonumber(b)
      assert(low <= high, "empty range " .. source)
   else
      values = common.read_ids(source)
   end
   -- Different sequences per thread and per run (the clock keeps warm-up and run apart).
   math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
end

function request()
   local value
   if values then
      value = values[math.random(#values)]
   else
      value = tostring(math.random(low, high))
   end
   return wrk.format("GET", prefix .. value .. suffix, headers)
end
