#!/usr/bin/env python3
"""Subscription delivery, measured end to end against the real binary: the latency from a
write's acknowledgement to its notification at a webhook receiver on loopback, at a steady
rate, and the outbox's throughput in a burst. Python standard library only.

    cargo build -p paraply-server            # or --release, and pass --binary
    python3 tests/bench/notify-bench.py --binary target/debug/paraply \\
        [--database sqlite:///tmp/x.db | postgres://postgres@127.0.0.1:5432/notify_bench] \\
        [--rate 100] [--seconds 30] [--burst 5000]

Results and how they were taken: docs/benchmarks.md ("Subscription notifications").
"""
import argparse, json, os, socket, subprocess, sys, tempfile, threading, time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "bench-signeringsnyckel-0123456789abcdefghij"
arrivals = {}          # patient id -> first arrival (monotonic seconds)
arrivals_lock = threading.Lock()
notifications = [0]


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        now = time.monotonic()
        bundle = json.loads(body)
        entries = bundle.get("entry", [])
        if len(entries) > 1:
            focus = entries[1]["fullUrl"].rsplit("/", 1)[-1]
            with arrivals_lock:
                notifications[0] += 1
                arrivals.setdefault(focus, now)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/fhir+json"})
    with urllib.request.urlopen(req, timeout=10) as reply:
        return json.loads(reply.read() or b"{}")


def create_patient(base, acks):
    patient = request("POST", f"{base}/Patient", {"resourceType": "Patient", "gender": "female"})
    acks[patient["id"]] = time.monotonic()


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def wait_for(ids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with arrivals_lock:
            if all(i in arrivals for i in ids):
                return True
        time.sleep(0.01)
    return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/debug/paraply")
    parser.add_argument("--database")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--burst", type=int, default=5000)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="paraply-notify-bench-")
    database = args.database or f"sqlite://{workdir}/bench.db"

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{receiver.server_address[1]}/hook"

    listen = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAPLY_")}
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
        subscription = request("POST", f"{base}/Subscription", {
            "resourceType": "Subscription", "status": "requested", "reason": "bench",
            "criteria": "Patient?gender=female",
            "channel": {"type": "rest-hook", "endpoint": endpoint,
                        "payload": "application/fhir+json",
                        "extension": [{"url": "https://paraply.se/fhir/StructureDefinition/subscription-signing-secret",
                                       "valueString": SECRET}]}})
        while request("GET", f"{base}/Subscription/{subscription['id']}")["status"] != "active":
            time.sleep(0.05)

        # Steady rate: one write every 1/rate s, each on its own thread so a slow answer
        # does not slow the rate.
        acks = {}
        threads = []
        start = time.monotonic()
        n = int(args.rate * args.seconds)
        for i in range(n):
            due = start + i / args.rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            t = threading.Thread(target=create_patient, args=(base, acks))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        written = time.monotonic() - start
        if not wait_for(list(acks), 60):
            sys.exit("not every steady-rate write was notified within 60 s")
        latencies = [(arrivals[i] - acks[i]) * 1000 for i in acks]
        print(f"steady: {len(acks)} writes in {written:.1f} s ({len(acks) / written:.0f}/s); "
              f"change -> webhook p50 {percentile(latencies, 50):.0f} ms, "
              f"p99 {percentile(latencies, 99):.0f} ms, max {max(latencies):.0f} ms")

        # Burst: 8 writers as fast as they go; the outbox drains behind them.
        burst_acks = {}
        counter = iter(range(args.burst))
        lock = threading.Lock()

        def writer():
            while True:
                with lock:
                    if next(counter, None) is None:
                        return
                create_patient(base, burst_acks)

        start = time.monotonic()
        writers = [threading.Thread(target=writer) for _ in range(8)]
        for t in writers:
            t.start()
        for t in writers:
            t.join()
        written = time.monotonic() - start
        if not wait_for(list(burst_acks), 300):
            sys.exit("not every burst write was notified within 300 s")
        drained = max(arrivals[i] for i in burst_acks) - start
        print(f"burst: {len(burst_acks)} writes in {written:.1f} s ({len(burst_acks) / written:.0f}/s); "
              f"all notified {drained:.1f} s after the first write "
              f"({len(burst_acks) / drained:.0f} notifications/s end to end)")
    finally:
        server.terminate()
        server.wait()
        receiver.shutdown()


if __name__ == "__main__":
    main()
