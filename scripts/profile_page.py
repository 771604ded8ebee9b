"""Where a page's time goes: CPU time per request in-process, and a cProfile of it.

Runs against a copy of the bench's cached SQLite build (run `make bench` once first),
or with --database-url against a database of your choosing (the bench's PostgreSQL run
copy, tierdesk_bench_run, after a run), through Flask's test client, so the figures are
the app's own work without the HTTP stack. Less noisy than the bench on a busy machine,
for finding what to speed up; the bench stays the measure.

    .venv/bin/python scripts/profile_page.py bm_sh /customers [/approvals ...] [--profile 25]
"""
import argparse
import cProfile
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("user")
    parser.add_argument("paths", nargs="+", help="GET paths; prefix with POST: and add "
                        "&-joined form data after a space to post")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--htmx", action="store_true", help="send HX-Request: true")
    parser.add_argument("--profile", type=int, metavar="N", help="print the top N functions")
    parser.add_argument("--database-url", help="measure this database, as it is")
    parser.add_argument("--wall", action="store_true", help="wall-clock time, which "
                        "counts PostgreSQL's own work (CPU time is this process's alone)")
    args = parser.parse_args(argv)

    url = args.database_url
    if not url:
        caches = sorted((ROOT / "bench-results" / "cache").glob("*.sqlite3"),
                        key=lambda p: p.stat().st_mtime)
        if not caches:
            sys.exit("no bench database: run `make bench` (or scripts/bench.py) once first")
        work = Path(tempfile.mkdtemp()) / "profile.sqlite3"
        shutil.copy(caches[-1], work)
        url = f"sqlite:///{work}"

    from app import create_app
    from services.demo import DEMO_PASSWORD

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "profile",
                      "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    response = client.post("/login", data={"username": args.user, "password": DEMO_PASSWORD})
    if response.status_code != 302:
        sys.exit(f"login as {args.user} failed: {response.status_code}")
    headers = {"HX-Request": "true"} if args.htmx else {}

    def fetch(path):
        if path.startswith("POST:"):
            url, _, data = path[5:].partition(" ")
            fields = dict(pair.split("=", 1) for pair in data.split("&") if pair)
            return client.post(url, data=fields, headers=headers)
        return client.get(path, headers=headers)

    for path in args.paths:
        status = fetch(path).status_code
        for _ in range(10):
            fetch(path)
        clock = time.perf_counter if args.wall else time.process_time
        times = []
        for _ in range(args.runs):
            start = clock()
            fetch(path)
            times.append((clock() - start) * 1000)
        times.sort()
        print(f"{path}: {status}  median {statistics.median(times):.2f} ms  "
              f"p95 {times[int(len(times) * 0.95)]:.2f} ms "
              f"({'wall' if args.wall else 'CPU'}, in-process)")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(50):
                fetch(path)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
