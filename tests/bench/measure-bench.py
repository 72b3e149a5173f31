#!/usr/bin/env python3
"""Follow-up measures M1–M4 ($evaluate-measure) timed against the real binary, `--auth none`:
loads a synthetic population with `paraply synth` (the load rate shows what recording the
follow-up facts costs each write), times each measure, then — with `--copies K` — stops the
server, copies every follow-up fact K-1 times under new subjects (SQL behind Paraply's back:
the facts table is all a report reads, so this is what K times the patients would give it),
restarts and times the measures again.

    cargo build --release -p paraply-server --target-dir /work/target-release
    python3 tests/bench/measure-bench.py --binary /work/target-release/release/paraply \\
        --patients 100000 --copies 10 [--database postgres://postgres@127.0.0.1:5432/measure_bench]
    # time the measures again on a kept database, no load and no copies:
    python3 tests/bench/measure-bench.py --binary /work/target-release/release/paraply \\
        --database sqlite:///work/bench/m.db --skip-load

Results: docs/benchmarks.md ("Follow-up measures").
"""
import argparse, json, os, socket, sqlite3, statistics, subprocess, tempfile, time, urllib.request

MEASURES = ["m1", "m2", "m3", "m4"]
PERIOD = "periodStart=2026-01-01&periodEnd=2027-12-31"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, listen, database, workdir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAPLY_")}
    env["PARAPLY_LOG"] = "warn"
    server = subprocess.Popen([binary, "serve", "--listen", listen, "--database", database,
                               "--auth", "none"], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(f"{workdir}/server.log", "a"))
    for _ in range(36000):
        try:
            urllib.request.urlopen(f"http://{listen}/readyz", timeout=1)
            return server
        except Exception:
            if server.poll() is not None:
                raise SystemExit(f"the server stopped: see {workdir}/server.log")
            time.sleep(0.05)
    raise SystemExit("the server did not become ready")


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def time_measures(listen, runs):
    results = {}
    for measure in MEASURES:
        took = []
        report = None
        for _ in range(runs):
            started = time.monotonic()
            url = f"http://{listen}/fhir/Measure/{measure}/$evaluate-measure?{PERIOD}"
            with urllib.request.urlopen(url, timeout=600) as reply:
                report = json.loads(reply.read())
            took.append(time.monotonic() - started)
        first = report["group"][0]["population"]
        counts = [p.get("count", "masked") for p in first]
        results[measure] = (min(took), statistics.median(took), counts)
        print(f"{measure}: best {min(took):.2f} s, median {statistics.median(took):.2f} s "
              f"over {runs} runs; first group's populations {counts}", flush=True)
    return results


# Copies every current fact K-1 times, each copy's subject suffixed `-copy<k>` (and a
# patient fact's `patient` too, so the copies are distinct patients).
COPY_SQL = """
INSERT INTO fact (kind, subject, valid_from, valid_to, body)
SELECT kind, subject || '-copy' || {k}, valid_from, valid_to,
       CASE WHEN kind = 'followup/patient' AND body <> 'null'
            THEN replace(body, '"patient":"', '"patient":"c{k}-') ELSE body END
FROM fact WHERE subject NOT LIKE '%-copy%'
"""


def copy_facts(database, copies):
    for k in range(1, copies):
        sql = COPY_SQL.format(k=k)
        if database.startswith("postgres"):
            subprocess.run(["psql", database, "-q", "-c", sql], check=True)
        else:
            with sqlite3.connect(database.removeprefix("sqlite://")) as db:
                db.execute(sql)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/debug/paraply")
    parser.add_argument("--database")
    parser.add_argument("--patients", type=int, default=10000)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-load", action="store_true",
                        help="the database already holds the population (and its copies)")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="paraply-measure-bench-")
    database = args.database or f"sqlite://{workdir}/bench.db"
    listen = f"127.0.0.1:{free_port()}"
    server = start(args.binary, listen, database, workdir)
    try:
        if args.skip_load:
            time_measures(listen, args.runs)
            print(f"server peak RSS {peak_rss_mib(server.pid):.0f} MiB", flush=True)
            return
        started = time.monotonic()
        subprocess.run([args.binary, "synth", "--patients", str(args.patients),
                        "--base-url", f"http://{listen}/fhir"], check=True)
        loaded = time.monotonic() - started
        print(f"loaded {args.patients} patients in {loaded:.0f} s", flush=True)
        time_measures(listen, args.runs)
        print(f"server peak RSS {peak_rss_mib(server.pid):.0f} MiB", flush=True)
        if args.copies > 1:
            server.terminate()
            server.wait()
            started = time.monotonic()
            copy_facts(database, args.copies)
            print(f"facts copied to {args.patients * args.copies} patients in "
                  f"{time.monotonic() - started:.0f} s", flush=True)
            server = start(args.binary, listen, database, workdir)
            time_measures(listen, args.runs)
            print(f"server peak RSS {peak_rss_mib(server.pid):.0f} MiB", flush=True)
    finally:
        server.terminate()
        server.wait()
        print(f"work directory: {workdir}")


if __name__ == "__main__":
    main()
