-- wrk script: POST /fhir/Patient with a ~1 KB Swedish Patient whose personnummer
-- differs on every request. Usage: wrk -s create.lua http://127.0.0.1:PORT -- [LUA_DIR]
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local counter
local headers = { ["Content-Type"] = "application/fhir+json", ["Accept"] = "application/fhir+json" }

function init(args)
   -- Distinct values per thread and per run (the clock keeps warm-up and run apart).
   counter = (thread_no or 0) * 10000000 + (os.time() % 1000) * 100000
end

function request()
   counter = counter + 1
   return wrk.format("POST", "/fhir/Patient", headers, common.patient(counter))
end
