-- wrk script: GET /fhir/Patient/{id}[SUFFIX], ids taken round-robin (each thread from its
-- own offset) from a file with one id per line. Usage: wrk -s read.lua URL -- IDS_FILE [SUFFIX]
-- (plan-bench.sh: SUFFIX /$patientkontrakt, the unified plan of each patient).
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local paths, i
local headers = { ["Accept"] = "application/fhir+json" }
-- http-bench.sh auth, plan-bench.sh: a bearer token from the demo login service.
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then headers["Authorization"] = "Bearer " .. token end

function init(args)
   local ids = common.read_ids(args[1])
   local suffix = args[2] or ""
   paths = {}
   for k, id in ipairs(ids) do paths[k] = "/fhir/Patient/" .. id .. suffix end
   i = ((thread_no or 0) * 509) % #paths
end

function request()
   i = i % #paths + 1
   return wrk.format("GET", paths[i], headers)
end
