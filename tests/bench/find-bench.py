#!/usr/bin/env python3
"""Appointment/$find measured against the real binary with wrk: one practitioner's free
times over 30 days among many schedules' slots (default 200 schedules × 16 slots a day × 30
days = 96,000 Slots), on SQLite or PostgreSQL, `--auth none`.

    cargo build -p paraply-server            # or --release, and pass --binary
    python3 tests/bench/find-bench.py --binary target/debug/paraply [--schedules 200] \\
        [--database postgres://postgres@127.0.0.1:5432/find_bench] [--duration 20s] [--connections 32,8]

Then books `--bookings` (400) times with 8 clients: `$hold`, the patient's accepting
AppointmentResponse, `$book`. Needs wrk (Debian: apt-get install wrk). Results: docs/benchmarks.md ("Booking: $find").
"""
import argparse, json, os, re, socket, subprocess, tempfile, threading, time, urllib.request
from datetime import datetime, timedelta


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/fhir+json"})
    with urllib.request.urlopen(req, timeout=120) as reply:
        return json.loads(reply.read())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/debug/paraply")
    parser.add_argument("--database")
    parser.add_argument("--schedules", type=int, default=200)
    parser.add_argument("--duration", default="20s")
    parser.add_argument("--bookings", type=int, default=400)
    # Saturation (32) and below it: on two cores shared with wrk, a p99 at 32 connections is
    # mostly time queued behind the other 31 requests.
    parser.add_argument("--connections", type=lambda t: [int(c) for c in t.split(",")],
                        default=[32, 8])
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="paraply-find-bench-")
    database = args.database or f"sqlite://{workdir}/bench.db"
    listen = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAPLY_")}
    env["PARAPLY_LOG"] = "warn"
    server = subprocess.Popen([args.binary, "serve", "--listen", listen, "--database", database,
                               "--auth", "none"], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(f"{workdir}/server.log", "w"))
    base = f"http://{listen}/fhir"
    try:
        for _ in range(400):
            try:
                urllib.request.urlopen(f"http://{listen}/readyz", timeout=1)
                break
            except Exception:
                time.sleep(0.05)
        first = datetime(2031, 3, 3, 8, 0)
        loaded = time.monotonic()
        slots = 0
        for n in range(args.schedules):
            entries = [
                {"resource": {"resourceType": "Organization", "id": f"unit-{n}", "name": f"Enhet {n}"},
                 "request": {"method": "PUT", "url": f"Organization/unit-{n}"}},
                {"resource": {"resourceType": "PractitionerRole", "id": f"role-{n}",
                              "organization": {"reference": f"Organization/unit-{n}"}},
                 "request": {"method": "PUT", "url": f"PractitionerRole/role-{n}"}},
                {"resource": {"resourceType": "Schedule", "id": f"schedule-{n}", "active": True,
                              "actor": [{"reference": f"PractitionerRole/role-{n}"}]},
                 "request": {"method": "PUT", "url": f"Schedule/schedule-{n}"}},
            ]
            for day in range(30):
                for k in range(16):
                    start = first + timedelta(days=day, minutes=30 * k)
                    entries.append({"resource": {"resourceType": "Slot",
                        "schedule": {"reference": f"Schedule/schedule-{n}"},
                        "status": "busy" if k % 4 == 0 else "free",
                        "start": start.strftime("%Y-%m-%dT%H:%M:00+01:00"),
                        "end": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:00+01:00")},
                        "request": {"method": "POST", "url": "Slot"}})
                    slots += 1
            post(base, {"resourceType": "Bundle", "type": "transaction", "entry": entries})
        loaded = time.monotonic() - loaded
        print(f"loaded {args.schedules} schedules, {slots} slots in {loaded:.0f} s")
        path = ("/fhir/Appointment/$find?actor=PractitionerRole/role-7&start=2031-03-03"
                "&end=2031-04-02&patient=Patient/p&_count=20")
        with urllib.request.urlopen(f"http://{listen}{path}", timeout=30) as reply:
            found = json.loads(reply.read())
        print(f"one answer: {len(found.get('entry', []))} times, next link: "
              f"{any(l['relation'] == 'next' for l in found.get('link', []))}")
        subprocess.run(["wrk", "-t2", "-c8", "-d3s", f"http://{listen}{path}"],
                       capture_output=True, check=True)
        for connections in args.connections:
            out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{args.duration}",
                                  "--latency", f"http://{listen}{path}"], capture_output=True,
                                 text=True, check=True).stdout
            rate = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
            p50 = re.search(r"\n\s+50%\s+(\S+)", out).group(1)
            p99 = re.search(r"\n\s+99%\s+(\S+)", out).group(1)
            errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            print(f"$find, {connections} connections: {rate} requests/s, p50 {p50}, p99 {p99}, "
                  f"non-2xx {errors.group(1) if errors else 0}", flush=True)
        # Booking throughput: 8 booking clients, each holding a free time of its own for a
        # patient, the patient accepting it, and $book; the Slot ends busy.
        req = urllib.request.Request(f"{base}/Patient/p", method="PUT",
            data=json.dumps({"resourceType": "Patient", "id": "p"}).encode(),
            headers={"content-type": "application/fhir+json"})
        urllib.request.urlopen(req, timeout=30).read()
        free = []
        url = f"{base}/Slot?status=free&_count=1000&_elements=id"
        while url and len(free) < args.bookings:
            with urllib.request.urlopen(url, timeout=60) as reply:
                page = json.loads(reply.read())
            free += [e["resource"]["id"] for e in page.get("entry", [])]
            url = next((l["url"] for l in page.get("link", []) if l["relation"] == "next"), None)
        free = free[: args.bookings]
        lock = threading.Lock()
        failures = []

        def book_all(slots):
            for slot_id in slots:
                try:
                    held = post(f"{base}/Appointment/$hold", {"resourceType": "Parameters", "parameter": [
                        {"name": "slot", "valueReference": {"reference": f"Slot/{slot_id}"}},
                        {"name": "patient", "valueReference": {"reference": "Patient/p"}}]})
                    post(f"{base}/AppointmentResponse", {"resourceType": "AppointmentResponse",
                        "appointment": {"reference": f"Appointment/{held['id']}"},
                        "actor": {"reference": "Patient/p"}, "participantStatus": "accepted"})
                    booked = post(f"{base}/Appointment/{held['id']}/$book", {"resourceType": "Parameters"})
                    assert booked["status"] == "booked"
                except Exception as error:  # noqa: BLE001 - counted and reported
                    with lock:
                        failures.append(str(error))

        workers = [threading.Thread(target=book_all, args=(free[i::8],)) for i in range(8)]
        started = time.monotonic()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        took = time.monotonic() - started
        print(f"booking: {len(free) - len(failures)} times held, accepted and booked by 8 clients "
              f"in {took:.1f} s ({(len(free) - len(failures)) / took:.0f} bookings/s, "
              f"{3 * (len(free) - len(failures)) / took:.0f} requests/s), {len(failures)} failed")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
