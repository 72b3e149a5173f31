-- Shared helpers for the Paraply wrk scripts (loaded with dofile by create/read/update.lua).
-- Counts non-2xx responses per thread and prints the total when wrk is done, so
-- http-bench.sh can show them (wrk's own "Non-2xx or 3xx responses" line counts >= 400 only).

local M = {}
local threads = {}
local next_thread = 0

-- Called by wrk in the main Lua state once per thread, before the run.
function setup(thread)
   thread:set("thread_no", next_thread)
   next_thread = next_thread + 1
   table.insert(threads, thread)
end

non2xx = 0
first_bad = ""

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if first_bad == "" then
         first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 300)
      end
   end
end

function done(summary, latency, requests)
   local total, sample = 0, ""
   for _, thread in ipairs(threads) do
      total = total + (thread:get("non2xx") or 0)
      local s = thread:get("first_bad") or ""
      if sample == "" then sample = s end
   end
   io.write(string.format("PARAPLY non2xx %d\n", total))
   if sample ~= "" then
      io.write("PARAPLY first_non2xx " .. string.gsub(sample, "\n", " ") .. "\n")
   end
end

-- Reads the id file (one id per line).
function M.read_ids(path)
   local ids = {}
   local f = assert(io.open(path, "r"), "cannot open id file " .. tostring(path))
   for line in f:lines() do
      if line ~= "" then table.insert(ids, line) end
   end
   f:close()
   assert(#ids > 0, "no ids in " .. path)
   return ids
end

-- A Swedish personnummer (YYYYMMDDNNNC) with a correct Luhn check digit, from n.
function M.personnummer(n)
   local year = 1930 + (n % 90)
   local month = 1 + (math.floor(n / 90) % 12)
   local day = 1 + (math.floor(n / 1080) % 28)
   local serial = math.floor(n / 30240) % 1000
   local digits9 = string.format("%02d%02d%02d%03d", year % 100, month, day, serial)
   local sum = 0
   for i = 1, 9 do
      local d = tonumber(string.sub(digits9, i, i))
      if i % 2 == 1 then
         d = d * 2
         if d > 9 then d = d - 9 end
      end
      sum = sum + d
   end
   local check = (10 - (sum % 10)) % 10
   return string.format("%04d%02d%02d%03d%d", year, month, day, serial, check)
end

local given_f = { "Karin", "Maria", "Anna", "Eva", "Kerstin", "Ingrid", "Linnea", "Elsa", "Astrid", "Sara" }
local given_m = { "Lars", "Erik", "Johan", "Anders", "Per", "Karl", "Nils", "Olof", "Gustav", "Oskar" }
local family = { "Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson", "Persson", "Svensson", "Gustafsson" }
local cities = {
   { "Stockholm", "111 22", "Stockholms län" },
   { "Göteborg", "411 05", "Västra Götalands län" },
   { "Malmö", "211 20", "Skåne län" },
   { "Uppsala", "753 10", "Uppsala län" },
   { "Linköping", "582 24", "Östergötlands län" },
}

-- A ~1 KB Swedish Patient. id (may be nil) is included for PUT; n varies the content.
function M.patient(n, id)
   local pnr = M.personnummer(n)
   local male = tonumber(string.sub(pnr, 11, 11)) % 2 == 1
   local gender = male and "male" or "female"
   local g = (male and given_m or given_f)[1 + n % 10]
   local g2 = given_f[1 + math.floor(n / 7) % 10]
   local f = family[1 + math.floor(n / 10) % #family]
   local c = cities[1 + n % #cities]
   local idpart = id and string.format('"id":"%s",', id) or ""
   return string.format(
      '{"resourceType":"Patient",%s' ..
      '"identifier":[{"use":"official","system":"http://electronichealth.se/identifier/personnummer","value":"%s"}],' ..
      '"active":true,' ..
      '"name":[{"use":"official","text":"%s %s","family":"%s","given":["%s"]}],' ..
      '"telecom":[{"system":"phone","value":"+46 70 %03d %02d %02d","use":"mobile"},' ..
      '{"system":"email","value":"%s.%s%d@example.se","use":"home"}],' ..
      '"gender":"%s","birthDate":"%s-%s-%s",' ..
      '"address":[{"use":"home","type":"physical","line":["Storgatan %d","lgh 1102"],' ..
      '"city":"%s","district":"%s","postalCode":"%s","country":"SE"}],' ..
      '"maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"M","display":"Married"}]},' ..
      '"contact":[{"relationship":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0131","code":"N","display":"Next-of-Kin"}]}],' ..
      '"name":{"family":"%s","given":["%s"]},"telecom":[{"system":"phone","value":"+46 8 %03d %02d %02d","use":"home"}]}],' ..
      '"communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"sv","display":"Swedish"}]},"preferred":true}]}',
      idpart, pnr, g, f, f, g,
      n % 1000, math.floor(n / 1000) % 100, n % 97,
      string.lower(g), string.lower(f), n,
      gender, string.sub(pnr, 1, 4), string.sub(pnr, 5, 6), string.sub(pnr, 7, 8),
      1 + n % 120, c[1], c[3], c[2],
      f, g2, n % 997, math.floor(n / 997) % 100, n % 89)
end

return M
