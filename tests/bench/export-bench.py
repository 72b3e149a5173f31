#!/usr/bin/env python3
"""Bulk export throughput, measured against the real binary (hand-run, not in CI): a
synthetic population loaded with `paraply synth`, then a system `$export` kicked off, polled
and every NDJSON file downloaded, while the server's resident memory is sampled. Python
standard library only; `--auth none`, so the server itself exports (no token needed).

    cargo build --release -p paraply-server --target-dir target-release
    python3 tests/bench/export-bench.py --binary target-release/release/paraply \\
        [--patients 10000] [--database sqlite:///tmp/export-bench.db] [--skip-load] [--runs 2]
    # K times the resources of a kept SQLite database, copied behind Paraply's back:
    python3 tests/bench/export-bench.py --binary target-release/release/paraply \\
        --database sqlite:///tmp/export-bench.db --skip-load --copies 10

Prints, per run: resources exported, seconds from kick-off to manifest (the worker counting
the files), seconds downloading, resources/s (download and kick-off to last byte), and the
server's RSS before and at its highest while downloading. Results: docs/benchmarks.md
("Bulk export").
"""
import argparse, json, os, socket, sqlite3, subprocess, sys, tempfile, threading, time
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


# Copies every stored version K-1 times under new ids (`<id>-c<k>`, in the row and in the body's
# own "id"), so a file holds K times the resources of the loaded population. References inside
# the copies still point at the originals: the export streams stored bytes and never follows
# them, so what it costs per line is the same.
COPY_SQL = """
INSERT INTO resource_version (resource_type, id, version_id, last_updated, is_current, body)
SELECT resource_type, id || '-c{k}', version_id, last_updated, is_current,
       replace(body, '"id":"' || id || '"', '"id":"' || id || '-c{k}"')
FROM resource_version WHERE seq <= {top}
"""


def copy_resources(database, copies):
    started = time.monotonic()
    with sqlite3.connect(database.removeprefix("sqlite://")) as db:
        # The copies' keys land all over the indexes: a large cache keeps that in memory.
        db.execute("PRAGMA cache_size = -4000000")
        (top,) = db.execute("SELECT max(seq) FROM resource_version").fetchone()
        for k in range(1, copies):
            db.execute(COPY_SQL.format(k=k, top=top))
            db.commit()
        (rows,) = db.execute("SELECT count(*) FROM resource_version").fetchone()
        # Into the database file: a server reading through gigabytes of WAL spends its
        # time looking pages up in the WAL's index.
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(json.dumps({"copies": copies, "resource_versions": rows,
                      "copy_s": round(time.monotonic() - started, 1)}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/debug/paraply")
    parser.add_argument("--database")
    parser.add_argument("--patients", type=int, default=10000)
    parser.add_argument("--skip-load", action="store_true",
                        help="the database already holds the population")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--copies", type=int, default=1,
                        help="with --skip-load and a SQLite database: copy every stored "
                             "version K-1 times before the server starts")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="paraply-export-bench-")
    database = args.database or f"sqlite://{workdir}/bench.db"
    if args.copies > 1:
        if not (args.skip_load and database.startswith("sqlite://")):
            sys.exit("--copies needs --skip-load and a kept SQLite database")
        copy_resources(database, args.copies)
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
