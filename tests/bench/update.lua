-- wrk script: PUT /fhir/Patient/{id} (no If-Match) with a body carrying the same id
-- and changed content, ids round-robin from a file with one id per line.
-- Usage: wrk -s update.lua URL -- IDS_FILE
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local ids, i, n
local headers = { ["Content-Type"] = "application/fhir+json", ["Accept"] = "application/fhir+json" }

function init(args)
   ids = common.read_ids(args[1])
   i = ((thread_no or 0) * 509) % #ids
   n = (thread_no or 0) * 10000000 + 5000000
end

function request()
   i = i % #ids + 1
   n = n + 1
   return wrk.format("PUT", "/fhir/Patient/" .. ids[i], headers, common.patient(n, ids[i]))
end
