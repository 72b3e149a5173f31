#!/usr/bin/env python3
"""Bulk export throughput, measured against the real binary (hand-run, not in CI): a
synthetic population loaded with `paraply synth`, then a system `$export` kicked off, polled
and every NDJSON file downloaded, while the server's resident memory is sampled. Python
standard library only; `--auth none`, so the server itself exports (no token needed).

    cargo build --release -p paraply-server --target-dir target-release
    python3 tests/bench/export-bench.py --binary target-release/release/paraply \\
        [--patients 10000] [--database sqlite:///tmp/export-bench.db] [--skip-load] [--runs 2]

Prints, per run: resources exported, seconds from kick-off to manifest (the worker counting
the files), seconds downloading, resources/s (download and kick-off to last byte), and the
server's RSS before and at its highest while downloading. Results: docs/benchmarks.md
("Bulk export").
"""
import argparse, json, os, socket, subprocess, sys, tempfile, threading, time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid, field="VmRSS"):
    """`VmRSS` (everything resident), or `RssAnon` (heap and stacks: without the pages of the
    database file that SQLite's memory-mapped readers have touched, which the kernel may drop
    at will)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    """The highest RSS of `pid`, sampled every 20 ms until stopped."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.peak_anon, self.running = pid, 0, 0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, rss_kib(self.pid))
            self.peak_anon = max(self.peak_anon, rss_kib(self.pid, "RssAnon"))
            time.sleep(0.02)


def get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    return urllib.request.urlopen(request, timeout=600)


def export(base, pid):
    before = rss_kib(pid)
    before_anon = rss_kib(pid, "RssAnon")
    started = time.monotonic()
    with get(f"{base}/$export", {"prefer": "respond-async"}) as reply:
        status_url = reply.headers["content-location"]
    while True:
        with get(status_url) as reply:
            if reply.status == 200:
                manifest = json.loads(reply.read())
                break
        time.sleep(0.05)
    counted = time.monotonic()
    sampler = RssSampler(pid)
    sampler.start()
    lines = 0
    for output in manifest["output"]:
        with get(output["url"], {"accept": "application/fhir+ndjson"}) as reply:
            tail = b""
            while True:
                chunk = reply.read(1 << 20)
                if not chunk:
                    break
                lines += chunk.count(b"\n")
                tail = chunk[-1:]
            if tail and tail != b"\n":
                sys.exit(f"{output['type']}: the file does not end with a newline")
    done = time.monotonic()
    sampler.running = False
    sampler.join()
    expected = sum(o["count"] for o in manifest["output"])
    if lines != expected:
        sys.exit(f"downloaded {lines} lines, the manifest counts {expected}")
    return {
        "resources": lines,
        "files": len(manifest["output"]),
        "count_s": round(counted - started, 2),
        "download_s": round(done - counted, 2),
        "download_per_s": round(lines / max(done - counted, 1e-9)),
        "overall_per_s": round(lines / max(done - started, 1e-9)),
        "rss_before_mib": round(before / 1024, 1),
        "rss_peak_mib": round(sampler.peak / 1024, 1),
        "anon_before_mib": round(before_anon / 1024, 1),
        "anon_peak_mib": round(sampler.peak_anon / 1024, 1),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/debug/paraply")
    parser.add_argument("--database")
    parser.add_argument("--patients", type=int, default=10000)
    parser.add_argument("--skip-load", action="store_true",
                        help="the database already holds the population")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="paraply-export-bench-")
    database = args.database or f"sqlite://{workdir}/bench.db"
    listen = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAPLY_")}
    server = subprocess.Popen([args.binary, "serve", "--listen", listen, "--database", database,
                               "--auth", "none"], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(f"{workdir}/server.log", "w"))
    base = f"http://{listen}/fhir"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://{listen}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        if not args.skip_load:
            started = time.monotonic()
            subprocess.run([args.binary, "synth", "--patients", str(args.patients),
                            "--base-url", base], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            print(json.dumps({"loaded_patients": args.patients,
                              "load_s": round(time.monotonic() - started, 1)}))
        for _ in range(args.runs):
            print(json.dumps(export(base, server.pid)))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
