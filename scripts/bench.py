"""Tierdesk benchmark rig: the latency of named pages, as ratios to a floor outside the app.

`make bench` builds a large demo company (20,000 customers, ~300 users), serves it
with gunicorn (2 workers) on 127.0.0.1, and measures p50, p95 and p99 latency of
the pages in `PAGES` below. The floor is another app, scripts/floor_app.py: a plain,
well-written Flask page (Flask-Login, a connection per request, one primary-key
lookup, a small template with a layout) that imports nothing of Tierdesk, served
beside it by the same gunicorn settings from the same database, and measured in the
same rounds, interleaved with the pages, so that each page is reported as a ratio to
it. Tierdesk's own per-request costs count against every page. Ratios travel
between machines and survive a noisy neighbour far better than milliseconds do.

It is a report, not a test: it exits non-zero only when something breaks (a page
answers an unexpected status, the server does not start), never because a page is
slow. Results go to the terminal and to bench-results/latest.json.

    make bench                             # the full run, a few minutes
    make bench BENCH_ARGS=--quick          # a smoke run: small database, few samples
    .venv/bin/python scripts/bench.py --page audit --rounds 200
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import http.client
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit, urlunsplit


@dataclass(frozen=True)
class Page:
    """One measured request.

    `server` is "tierdesk", or "floor" for the reference app (scripts/floor_app.py).
    `path` (and `data`, the form of a POST) may be a callable taking a `Context`:
    it is called once per planned request before measuring starts, so it may
    query the database (say, for a customer id) without slowing the timed loop.
    `user` is the demo username to log in as (None: no login). With
    `concurrency` N, N clients (each its own logged-in session and connection)
    send their requests at the same time, each `requests` of them per round
    (default: --requests); keep that low for many clients, or the run grows long.
    POSTs carry the session's CSRF token in the `X-CSRFToken` header, as htmx does.
    """

    name: str
    method: str
    path: str | Callable[[Context], str]
    user: str | None
    concurrency: int = 1
    data: dict | Callable[[Context], dict] | None = None
    headers: dict = field(default_factory=dict)  # e.g. {"HX-Request": "true"} for a partial
    expect: tuple[int, ...] = (200,)  # any other status is an error
    requests: int | None = None  # per client and round; None: --requests
    server: str = "tierdesk"
    target: float | None = None  # the most this page's percentile may be, × its floor's
    quantile: int = 95  # the percentile the target is about
    floor: str = "floor"  # the floor row it is compared with


# The pages to measure. Add a line to add a page; `floor` must stay. Examples:
#   Page("customer detail", "GET",
#        lambda ctx: f"/customers/{ctx.pick('SELECT id FROM customer')}", "bm_sh"),
#   Page("search as you type", "GET", "/customers?q=上海", "bm_sh",
#        headers={"HX-Request": "true"}),
#   Page("autosave", "POST", lambda ctx: f"/assessments/{ctx.pick(...)}/score", "member1",
#        concurrency=30, requests=1, expect=(200, 303),
#        data=lambda ctx: {"criterion": 1, "points": ctx.rng.randint(0, 15)}),
# Targets (issue 19, at 20,000 and 100,000 customers, on SQLite and PostgreSQL): every
# page p95 <= 3x the floor; the summary <= 4x; the meeting's partials and the funnel's
# "my week" <= 2x; the autosave under 30 members at once p99 <= 3x the floor's p99 under
# the same load.
PAGES = [
    Page("floor", "GET", "/", "admin", server="floor"),
    Page("healthz", "GET", "/healthz", None, target=3),
    Page("dashboard (bm_sh)", "GET", "/", "bm_sh", target=3),
    Page("dashboard (admin)", "GET", "/", "admin", target=3),
    Page("admin users", "GET", "/admin/users", "admin", target=3),
    Page("audit", "GET", "/audit", "admin", target=3),
    Page("customer list (bm_sh)", "GET", "/customers", "bm_sh", target=3),
    Page("customer list (admin, all)", "GET", "/customers?sort=name", "admin", target=3),
    Page("customer list filtered", "GET",
         lambda ctx: f"/customers?tier={ctx.pick('SELECT id FROM tier')}&kind=existing",
         "admin", target=3),
    # One and two Chinese characters, a term nobody holds, codes: search must not read
    # the whole book for any of them.
    Page("search as you type (bm_sh)", "GET",
         lambda ctx: "/customers?q=" + quote(ctx.rng.choice(
             ["s", "sh", "shh", "上", "上海", "无此客户名", "C00"])),
         "bm_sh", headers={"HX-Request": "true"}, target=3),
    Page("search as you type (admin)", "GET",
         lambda ctx: "/customers?q=" + quote(ctx.rng.choice(
             ["b", "bj", "bjh", "科", "科技", "查无此名", "C1"])),
         "admin", headers={"HX-Request": "true"}, target=3),
    Page("customer detail", "GET",
         lambda ctx: f"/customers/{ctx.pick('SELECT id FROM customer WHERE branch_id = 1')}",
         "bm_sh", target=3),
    Page("meeting: chair's live view", "GET", lambda ctx: _board(ctx), "chair",
         headers={"HX-Request": "true"}, target=2),
    Page("meeting: member's scoring partial", "POST", lambda ctx: _score_slot(ctx)[0],
         "member2", headers={"HX-Request": "true"}, data=lambda ctx: _score_slot(ctx)[1],
         target=2),
    # The same stack under the same 30-client load, for the autosave's comparison.
    Page("floor x30", "GET", "/", "admin", concurrency=30, requests=1, server="floor"),
    Page("meeting: autosave x30 members", "POST", lambda ctx: _score_slot(ctx)[0],
         "member1", concurrency=30, requests=1, headers={"HX-Request": "true"},
         data=lambda ctx: _score_slot(ctx)[1], target=3, quantile=99, floor="floor x30"),
    Page("cycle summary", "GET", lambda ctx: f"/cycles/{ctx.pick(MEETING)}", "chair",
         target=4),
    # The approval queue with 5,000 open requests and the compliance lists.
    Page("approval queue (bm_sh)", "GET", "/approvals", "bm_sh", target=3),
    Page("approval queue (director)", "GET", "/approvals", "director", target=3),
    Page("approval queue filtered (director)", "GET",
         lambda ctx: f"/approvals?to_tier={ctx.pick('SELECT id FROM tier')}&page="
                     f"{ctx.rng.randint(1, 5)}", "director", headers={"HX-Request": "true"},
         target=3),
    Page("tier change inline", "GET",
         lambda ctx: "/tier-changes/" + str(ctx.pick(
             "SELECT r.id FROM tier_change_request r JOIN customer c ON c.id = r.customer_id "
             "WHERE c.branch_id = 1 AND r.status = 'open'")), "bm_sh",
         headers={"HX-Request": "true"}, target=3),
    Page("tiers", "GET", "/tiers", "admin", target=3),
    Page("tier policy page", "GET", "/tiers/A", "admin", target=3),
    Page("compliance (bm_sh)", "GET", "/compliance", "bm_sh", target=3),
    Page("compliance (admin, all)", "GET", "/compliance?kind=contact", "admin", target=3),
    Page("compliance list (admin)", "GET",
         lambda ctx: "/compliance?kind=" + ctx.rng.choice(["contact", "visit", "analysis"])
         + f"&page={ctx.rng.randint(1, 20)}", "admin",
         headers={"HX-Request": "true", "HX-Target": "overdue"}, target=3),  # as the pager
    Page("due this week (rep)", "GET", "/compliance/due", "rep_sh_1", target=3),
    # Issue 21: the share × volume chart of every visible customer (a grid of cells
    # beyond a few thousand), its counts and its lists.
    Page("portfolio (bm_sh)", "GET", "/portfolio", "bm_sh", target=4),
    Page("portfolio (admin, all)", "GET", "/portfolio", "admin", target=4),
    # Issue 21, part 3: the branch's service requests, newest first, with their clocks
    # (a tenth of the customers' worth of requests company-wide).
    Page("service requests (bm_sh)", "GET", "/service-requests", "bm_sh", target=3),
    # The funnel: a branch of 50 reps among ~300 with a year of history. The week is the
    # last one of the demo's history, so that a cache built earlier still measures a
    # full week.
    Page("funnel team table (bm_sh, 50 reps)", "GET",
         lambda ctx: f"/funnel/team?week={_funnel_week(ctx)}", "bm_sh", target=3),
    Page("funnel team table, previous week (htmx)", "GET",
         lambda ctx: f"/funnel/team?week={_funnel_week(ctx, 1)}", "bm_sh",
         headers={"HX-Request": "true"}, target=3),
    Page("funnel my week (rep_sh_1)", "GET", lambda ctx: f"/funnel?week={_funnel_week(ctx)}",
         "rep_sh_1", target=2),
]


def _funnel_week(ctx, weeks_back=0):
    """The ISO week of the demo history's last move (minus `weeks_back`)."""
    last = ctx.values("SELECT MAX(moved_on) FROM stage_move")[0]
    day = datetime.date.fromisoformat(str(last)[:10]) - datetime.timedelta(weeks=weeks_back)
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _board(ctx):
    """The chair's polled panel of the bench meeting's current customer."""
    cycle = ctx.values(MEETING)[0]
    current = ctx.values("SELECT current_assessment FROM grading_cycle "
                         "WHERE phase = 'committee'")[0]
    return f"/cycles/{cycle}/meeting/board?assessment={current}"


def _score_slot(ctx):
    """A committee save to a (sheet, criterion) this client has not saved yet, so that
    nearly every request writes (revision 0) rather than being told it is stale.
    Scores are per member, so two users never meet; each client of one user keeps
    to its own block of sheets (a client that sends more than its block's slots
    writes them again and is told it is stale, as after a reconnection)."""
    sheets = ctx.values("SELECT a.id FROM assessment a JOIN grading_cycle c ON c.id = a.cycle_id "
                        "WHERE c.phase = 'committee' ORDER BY a.id")[1:]  # [0] is on the board
    criteria = ctx.values("SELECT cr.id FROM criterion cr JOIN grading_cycle c "
                          "ON c.template_existing_id = cr.template_id "
                          "WHERE c.phase = 'committee' ORDER BY cr.position")
    block = len(sheets) // ctx.clients
    sheet = sheets[ctx.client * block + (ctx.index // len(criteria)) % block]
    data = {"criterion": criteria[ctx.index % len(criteria)], "points": ctx.rng.randint(0, 10),
            "revision": 0, "stage": "committee", "comment": ""}
    return f"/assessments/{sheet}/scores", data

FLOOR = "floor"

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"

# The demo company: build_demo(seed, customers, reps_per_branch, branches).
SEED = 2027
BRANCHES = 12
REPS_PER_BRANCH = 24  # 7 + 12 * (1 + 24) = 307 users
WORKERS = 2
# The funnel issue's big team: the SH branch grows to this many reps.
FUNNEL_TEAM = 50
# The grading issue's meeting: a 1,000-customer cycle with a 9-person committee.
MEETING_SIZE = 1000
COMMITTEE = 9
MEETING = "SELECT id FROM grading_cycle WHERE phase = 'committee'"
# The tiers issue's approval queue: 5,000 open tier change requests.
APPROVALS = 5000

# Samples: every round runs every page (the floor included) REQUESTS times per client,
# in a shuffled order. 200 rounds x 5 = 1,000 samples per page: medians stable to a few %
# on a busy 2-core machine, and p99 rests on ten samples rather than one.
ROUNDS = 200
REQUESTS = 5
WARMUP_ROUNDS = 2
QUICK = {"customers": [1000], "reps_per_branch": 2, "rounds": 4, "requests": 2}
# The company sizes every page is measured at, and the databases.
SIZES = (20000, 100000)
BACKENDS = ("sqlite", "postgresql")
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
RUN_DATABASE = "tierdesk_bench_run"  # PostgreSQL: each run's copy of the cached build

# Throughput: requests a second that N clients at once get from 2 workers, sending
# back to back for THROUGHPUT_SECONDS; each a ratio to the floor's at the same N. The
# autosave writes as a different member at each N, each client to sheets of its own.
THROUGHPUT_SECONDS = 4
THROUGHPUT_CLIENTS = (1, 8, 32)
MAX_REQUESTS_A_SECOND = 1500  # planned for: more than 2 workers answer on 2 cores
THROUGHPUT_MEMBERS = {1: "member5", 8: "member6", 32: "member7"}

HX_TOKEN = re.compile(r'"X-CSRFToken":\s*"([^"]+)"')
FORM_TOKEN = re.compile(r'<input\b[^>]*\bname="csrf_token"[^>]*\bvalue="([^"]*)"')
TIMEOUT_S = 60


class BenchError(Exception):
    """Something broke: the run cannot give figures worth reading."""


# ---------------------------------------------------------------- database

def _load_app(database_url):
    """The Flask app bound to `database_url`, for building and for `Context` queries."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from app import create_app

    return create_app({"DATABASE_URL": database_url, "SECRET_KEY": "bench"})


def _build_prefix(customers, reps_per_branch):
    return f"tierdesk-c{customers}-b{BRANCHES}-r{reps_per_branch}-s{SEED}-"


def _build_key(customers, reps_per_branch):
    """File name of a cached build: its parameters and a hash of the code that shapes
    it (demo, models, migrations), so that changing any of them rebuilds."""
    digest = hashlib.sha256()
    sources = [ROOT / "services" / "demo.py", *sorted((ROOT / "models").glob("*.py")),
               *sorted((ROOT / "migrations").glob("*.py"))]
    for path in sources:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return f"{_build_prefix(customers, reps_per_branch)}{digest.hexdigest()[:12]}.sqlite3"


def _build(app, customers, reps_per_branch):
    """Schema and demo company into the app's (empty) database; returns seconds taken."""
    from models.schema import upgrade
    from services.demo import (
        add_reps,
        build_approvals,
        build_demo,
        build_funnel_history,
        build_meeting,
        build_service_requests,
    )

    started = time.perf_counter()
    with app.app_context():
        upgrade()
        build_demo(seed=SEED, customers=customers, reps_per_branch=reps_per_branch,
                   branches=BRANCHES, funnel=False)
        build_meeting(size=min(MEETING_SIZE, customers // 2), committee=COMMITTEE)
        build_approvals(size=min(APPROVALS, customers // 4))
        build_service_requests(size=customers // 10, seed=SEED)
        # A year of funnel history for every rep, SH grown to a team of FUNNEL_TEAM.
        add_reps("SH", max(FUNNEL_TEAM, reps_per_branch))
        build_funnel_history(seed=SEED)
    return time.perf_counter() - started


def prepare_sqlite(customers, reps_per_branch, rebuild):
    """A fresh copy of the cached SQLite build; builds it first when missing.

    Each run serves a copy, so that the logins and writes of one run do not
    change what the next one measures.
    """
    cache = RESULTS / "cache" / _build_key(customers, reps_per_branch)
    build_seconds = None
    if rebuild or not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(cache.name + ".partial")
        _remove_sqlite(partial)
        print(f"Building the database: {customers} customers ... ", end="", flush=True)
        try:
            app = _load_app(f"sqlite:///{partial}")
            build_seconds = _build(app, customers, reps_per_branch)
            from models.base import db

            with app.app_context():
                db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            db.close()
            os.replace(partial, cache)
        finally:
            _remove_sqlite(partial)
        for stale in cache.parent.glob(f"{_build_prefix(customers, reps_per_branch)}*.sqlite3"):
            if stale != cache:  # a build of older code, never to be used again
                stale.unlink()
        print(f"{build_seconds:.1f} s -> {cache.relative_to(ROOT)}")
    else:
        print(f"Database: cached {cache.relative_to(ROOT)}")
    served = RESULTS / "run.sqlite3"
    _remove_sqlite(served)
    shutil.copyfile(cache, served)
    return f"sqlite:///{served}", build_seconds


def _remove_sqlite(path):
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def prepare_postgres(server_url, customers, reps_per_branch, rebuild):
    """A fresh copy of the cached PostgreSQL build on the server at `server_url`.

    The build is a database of its own, named like the SQLite cache (its parameters
    and a hash of the code that shapes it); each run serves a copy of it made with
    CREATE DATABASE … TEMPLATE, so that one run's logins and writes do not change what
    the next one measures.
    """
    import psycopg2

    cache = "tierdesk_" + _build_key(customers, reps_per_branch).removeprefix(
        "tierdesk-").removesuffix(".sqlite3").replace("-", "_")
    prefix = cache.rsplit("_", 1)[0] + "_"
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    build_seconds = None
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                           (prefix + "%",))
            present = {row[0] for row in cursor.fetchall()}
            if rebuild or cache not in present:
                partial = cache + "_partial"
                cursor.execute(f'DROP DATABASE IF EXISTS "{partial}" WITH (FORCE)')
                cursor.execute(f'DROP DATABASE IF EXISTS "{cache}" WITH (FORCE)')
                cursor.execute(f'CREATE DATABASE "{partial}"')
                print(f"Building the database: {customers} customers into PostgreSQL "
                      f"{cache} ... ", end="", flush=True)
                app = _load_app(_database_url(server_url, partial))
                build_seconds = _build(app, customers, reps_per_branch)
                _close_database()
                cursor.execute(f'ALTER DATABASE "{partial}" RENAME TO "{cache}"')
                print(f"{build_seconds:.1f} s")
                for stale in present - {cache}:  # builds of older code
                    cursor.execute(f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)')
            else:
                print(f"Database: cached PostgreSQL {cache}")
            cursor.execute(f'DROP DATABASE IF EXISTS "{RUN_DATABASE}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{RUN_DATABASE}" TEMPLATE "{cache}"')
    finally:
        admin.close()
    url = _database_url(server_url, RUN_DATABASE)
    # The build never gave the planner its statistics, and a copy starts with no record
    # of the writes that would make autovacuum analyze it: without them the planner
    # guessed (a two-character search read the whole table, ~8x slower than with them).
    # A served database has them: autovacuum analyzes and vacuums after such writes.
    run = psycopg2.connect(url)
    run.autocommit = True
    try:
        with run.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    finally:
        run.close()
    return url, build_seconds


def _database_url(server_url, name):
    """`server_url` pointing at the database `name` instead."""
    return urlunsplit(urlsplit(server_url)._replace(path="/" + name))


def _close_database():
    """Close every connection this process holds (a template must have none)."""
    from models.base import db

    close_all = getattr(db.obj, "close_all", None)
    close_all() if close_all else db.close()


def postgres_answers(server_url):
    try:
        import psycopg2

        psycopg2.connect(server_url, connect_timeout=3).close()
        return True
    except Exception:  # noqa: BLE001 - any failure means: not this time
        return False


def redact(url):
    """The URL without its password, for printing and for the JSON."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class Context:
    """What a `Page.path` or `Page.data` callable may use while requests are planned.

    `rng` is seeded, so a run is repeatable; `client` is the client's number
    (0 .. concurrency-1) and `index` the request's number for that client.
    `values()` and `pick()` read the benchmark database and cache the answer.
    """

    def __init__(self, app, seed):
        self.app = app
        self.rng = random.Random(seed)
        self.client = 0
        self.clients = 1  # how many clients the page has
        self.index = 0
        self._cache = {}

    def values(self, query):
        """First column of every row of `query` (SQL text or a peewee query)."""
        from models.base import db

        sql, params = query.sql() if hasattr(query, "sql") else (query, ())
        key = (sql, tuple(params))
        if key not in self._cache:
            with self.app.app_context():
                self._cache[key] = [row[0] for row in db.execute_sql(sql, params).fetchall()]
            if not self._cache[key]:
                raise BenchError(f"no rows for {sql!r}")
        return self._cache[key]

    def pick(self, query):
        """One value of `values(query)`, chosen at random."""
        return self.rng.choice(self.values(query))


def per_round(page, requests):
    """Requests per client of `page` in each round."""
    return page.requests or requests


def plan_requests(pages, app, rounds, requests):
    """[(path, body)] per page and client, resolved before any timing starts."""
    context = Context(app, SEED)
    plan = {}
    for page in pages:
        plan[page.name] = []
        context.clients = page.concurrency
        for client in range(page.concurrency):
            requests_of_client = []
            for index in range(rounds * per_round(page, requests)):
                context.client, context.index = client, index
                path = page.path(context) if callable(page.path) else page.path
                data = page.data(context) if callable(page.data) else page.data
                body = urlencode(data).encode() if data is not None else None
                requests_of_client.append((path, body))
            plan[page.name].append(requests_of_client)
    return plan


def database_summary(app):
    """How big the measured company is."""
    from models import Customer, User

    with app.app_context():
        return {"customers": Customer.select().count(), "users": User.select().count()}


# ---------------------------------------------------------------- server

def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# What gunicorn serves: Tierdesk, and the floor beside it.
APPS = {"tierdesk": "app:create_app()", "floor": "scripts.floor_app:create_app()"}


class Server:
    """gunicorn serving an app of APPS on 127.0.0.1; always stopped on leaving the `with`."""

    def __init__(self, database_url, port, workers, app="tierdesk", access_log=False):
        self.database_url, self.port, self.workers = database_url, port, workers
        self.app, self.access_log = app, access_log
        self.log_path = RESULTS / ("gunicorn.log" if app == "tierdesk" else f"gunicorn-{app}.log")
        self.process = None

    def __enter__(self):
        env = dict(os.environ, DATABASE_URL=self.database_url,
                   SECRET_KEY=secrets.token_hex(32))  # one key, shared by both workers
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", str(self.workers),
             "--bind", f"127.0.0.1:{self.port}", "--timeout", str(TIMEOUT_S),
             *(["--access-logfile", "-"] if self.access_log else []), APPS[self.app]],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def alive(self):
        return self.process.poll() is None

    def log_tail(self, lines=30):
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait_ready(self, seconds=60):
        """Wait until /healthz answers 200; returns its JSON."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.alive():
                raise BenchError(f"gunicorn exited:\n{self.log_tail()}")
            try:
                status, body, _ = Client(self.port).request("GET", "/healthz")
            except OSError:
                time.sleep(0.1)
                continue
            if status == 200:
                return json.loads(body)
            raise BenchError(f"/healthz answered {status}: {body[:300]!r}")
        raise BenchError(f"gunicorn did not answer within {seconds} s:\n{self.log_tail()}")


# ---------------------------------------------------------------- client

class Client:
    """One browser: a keep-alive connection, cookies, and the session's CSRF token.

    Uses http.client only, so that the client stays light on a small machine.
    (gunicorn's sync workers close every connection after the response;
    http.client then reconnects by itself, the same for every page.)
    """

    def __init__(self, port, username=None, server="tierdesk"):
        self.port, self.username, self.server = port, username, server
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
        self.cookies = {}
        self.csrf_token = None
        self.last_location = ""

    def request(self, method, path, body=None, headers=None):
        """Send one request; returns (status, body, seconds from sending to the last byte)."""
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            if self.csrf_token:
                headers["X-CSRFToken"] = self.csrf_token
        for attempt in (1, 2):
            reused = self.connection.sock is not None
            started = time.perf_counter()
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                content = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A keep-alive connection the server had closed while idle: once more.
                self.connection.close()
                if attempt == 2 or not reused:
                    raise
                continue
            elapsed = time.perf_counter() - started
            break
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel.value:
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        self.last_location = response.headers.get("Location", "")
        return response.status, content, elapsed

    def login(self, password):
        """Log in as `username` through the form, then read the session's CSRF token."""
        status, body, _ = self.request("GET", "/login")
        match = FORM_TOKEN.search(body.decode())
        if status != 200 or not match:
            raise BenchError(f"GET /login answered {status} without a csrf_token field")
        form = {"username": self.username, "password": password, "csrf_token": match[1]}
        status, body, _ = self.request("POST", "/login", urlencode(form).encode())
        if status != 302 or urlsplit(self.last_location).path != "/":
            raise BenchError(f"login as {self.username!r} failed: {status} "
                             f"{self.last_location or body[:200]!r}")
        if self.server == "tierdesk":  # the floor's page posts nothing
            self.fetch_csrf_token()

    def fetch_csrf_token(self):
        """The token the pages carry; login starts a new session, hence a new token."""
        status, body, _ = self.request("GET", "/" if self.username else "/login")
        text = body.decode()
        match = HX_TOKEN.search(text) or FORM_TOKEN.search(text)
        if status != 200 or not match:
            raise BenchError(f"no CSRF token on the page after login as {self.username!r}")
        self.csrf_token = match[1]


def open_sessions(pages, ports, parallel):
    """A logged-in client per (server, user, client number), shared by the pages that
    need it; `ports` maps each server of APPS to its port.

    Logins run `parallel` at a time: a password check is slow on purpose, and
    thirty of them one after another would take longer than the measuring.
    """
    from services.demo import DEMO_PASSWORD

    clients = {}
    posting = set()
    for page in pages:
        for number in range(page.concurrency):
            key = (page.server, page.user, number)
            clients.setdefault(key, Client(ports[page.server], page.user, page.server))
            if page.method != "GET":
                posting.add(key)

    def start(key):
        client = clients[key]
        if client.username:
            client.login(DEMO_PASSWORD)
        elif key in posting:
            client.fetch_csrf_token()

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(start, clients))  # list() re-raises the first failure
    return clients


# ---------------------------------------------------------------- measuring

class Recorder:
    """Samples per page, and the errors that disqualify a page."""

    def __init__(self, pages):
        self.samples = {page.name: [] for page in pages}
        self.errors = []
        self.failed = set()
        self.lock = threading.Lock()

    def error(self, page, message):
        with self.lock:
            self.failed.add(page.name)
            self.errors.append({"page": page.name, "error": message})


def run_client(page, client, requests, recorder, record, barrier=None):
    """Send `requests` one after another on one client; keep the timings if `record`."""
    timings = []
    if barrier is not None:
        barrier.wait()
    for path, body in requests:
        try:
            status, content, elapsed = client.request(page.method, path, body, page.headers)
        except OSError as error:
            recorder.error(page, f"{page.method} {path}: {error!r}")
            return
        if status not in page.expect:
            recorder.error(page, f"{page.method} {path} as {page.user}: status {status}: "
                                 f"{content[:300].decode(errors='replace')!r}")
            return
        timings.append(elapsed * 1000)
    if record:
        with recorder.lock:
            recorder.samples[page.name].extend(timings)


def run_turn(page, clients, requests_by_client, recorder, record):
    """One page's turn in a round: its clients at once, each with its requests."""
    if page.concurrency == 1:
        run_client(page, clients[(page.server, page.user, 0)], requests_by_client[0], recorder,
                   record)
        return
    barrier = threading.Barrier(page.concurrency)
    threads = [threading.Thread(target=run_client, args=(
        page, clients[(page.server, page.user, n)], requests_by_client[n], recorder, record,
        barrier))
        for n in range(page.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def measure(pages, clients, plan, rounds, requests, servers):
    """Warm up, then `rounds` rounds of every page in a shuffled order."""
    recorder = Recorder(pages)
    order_rng = random.Random(SEED)
    total = WARMUP_ROUNDS + rounds
    for round_number in range(total):
        record = round_number >= WARMUP_ROUNDS
        slot = (round_number - WARMUP_ROUNDS) % rounds if record else 0
        order = list(pages)
        order_rng.shuffle(order)
        for page in order:
            if page.name in recorder.failed:
                continue
            count = per_round(page, requests)
            batch = [planned[slot * count:(slot + 1) * count] for planned in plan[page.name]]
            run_turn(page, clients, batch, recorder, record)
            for server in servers:
                if not server.alive():
                    raise BenchError(f"gunicorn ({server.app}) exited during the run:\n"
                                     f"{server.log_tail()}")
        if FLOOR in recorder.failed:
            break  # without a floor there is nothing to compare with
        done = round_number + 1
        if sys.stdout.isatty():
            print(f"\r  round {done}/{total}", end="", flush=True)
        elif done % max(1, total // 4) == 0 or done == total:
            print(f"  round {done}/{total}", flush=True)
    if sys.stdout.isatty():
        print()
    return recorder


def percentile(values, q):
    """The q-th percentile (0..100) of sorted `values`, interpolating between ranks."""
    if not values:
        return None
    position = (len(values) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def summarise(pages, recorder):
    """A row per page: n, p50/p95/p99 in ms, each as a ratio to its floor's, and whether
    the page meets its target."""
    stats = {}
    for page in pages:
        values = sorted(recorder.samples[page.name])
        stats[page.name] = {q: percentile(values, q) for q in (50, 95, 99)}
    rows = []
    for page in pages:
        floor = stats.get(page.floor)
        values = recorder.samples[page.name]
        ms = stats[page.name]
        row = {
            "page": page.name, "method": page.method,
            "path": page.path if isinstance(page.path, str) else "(chosen per request)",
            "user": page.user, "concurrency": page.concurrency, "n": len(values),
            "failed": page.name in recorder.failed,
            "p50_ms": ms[50], "p95_ms": ms[95], "p99_ms": ms[99],
            "mean_ms": sum(values) / len(values) if values else None,
            "max_ms": max(values) if values else None,
        }
        for q in (50, 95, 99):
            usable = (floor and floor[q] and ms[q] is not None
                      and page.floor not in recorder.failed)
            row[f"p{q}_ratio"] = ms[q] / floor[q] if usable else None
        ratio = row[f"p{page.quantile}_ratio"]
        row.update(floor=page.floor, target=page.target, target_quantile=page.quantile,
                   met=None if page.target is None or ratio is None else ratio <= page.target)
        rows.append(row)
    return rows


def print_table(rows):
    def fmt(value, digits):
        return "-" if value is None else f"{value:.{digits}f}"

    header = ("page", "n", "p50 ms", "p95 ms", "p99 ms", "p50/floor", "p95/floor", "p99/floor",
              "target")
    lines = []
    for row in rows:
        name = row["page"] + (f" x{row['concurrency']}" if row["concurrency"] > 1 else "")
        name += " FAILED" if row["failed"] else ""
        lines.append((name, str(row["n"]), fmt(row["p50_ms"], 1), fmt(row["p95_ms"], 1),
                      fmt(row["p99_ms"], 1), fmt(row["p50_ratio"], 2),
                      fmt(row["p95_ratio"], 2), fmt(row["p99_ratio"], 2), _target(row)))
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    for cells in [header, tuple("-" * w for w in widths), *lines]:
        print("  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                        for i, cell in enumerate(cells)))


def _target(row):
    """"p95 ≤ 3 ok", "p95 ≤ 2 MISSED", or "" for a floor."""
    if row["target"] is None:
        return ""
    vs = "" if row["floor"] == FLOOR else f" vs {row['floor']}"
    verdict = "-" if row["met"] is None else "ok" if row["met"] else "MISSED"
    return f"p{row['target_quantile']} ≤ {row['target']:g}{vs} {verdict}"


def git_revision():
    """The commit measured, with `+dirty` when the tree has changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


# ---------------------------------------------------------------- main

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", action="append", choices=BACKENDS,
                        help="measure on this database (repeatable); default: SQLite, and "
                        "PostgreSQL when --postgres-url answers")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL",
                                                                 DEFAULT_POSTGRES),
                        help="a PostgreSQL server the bench may create databases on "
                        f"(default $BENCH_POSTGRES_URL or {DEFAULT_POSTGRES})")
    parser.add_argument("--customers", type=int, action="append",
                        help="customers in the demo company (repeatable; default "
                        f"{' and '.join(map(str, SIZES))})")
    parser.add_argument("--rounds", type=int, help=f"measured rounds (default {ROUNDS})")
    parser.add_argument("--requests", type=int,
                        help=f"requests per page and client in each round (default {REQUESTS})")
    parser.add_argument("--throughput-seconds", type=float, default=THROUGHPUT_SECONDS,
                        help="how long each throughput measure runs (0: none)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: small database, few samples, writes quick.json")
    parser.add_argument("--page", action="append", metavar="NAME",
                        help="measure only this page (repeatable); the floor always runs")
    parser.add_argument("--workers", type=int, default=WORKERS, help="gunicorn workers")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached databases")
    parser.add_argument("--output", type=Path, help="JSON results "
                        "(default bench-results/latest.json, quick.json with --quick)")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else {}
    args.customers = args.customers or preset.get("customers", list(SIZES))
    args.reps_per_branch = preset.get("reps_per_branch", REPS_PER_BRANCH)
    args.rounds = args.rounds or preset.get("rounds", ROUNDS)
    args.requests = args.requests or preset.get("requests", REQUESTS)
    if args.quick:
        args.throughput_seconds = min(args.throughput_seconds, 1)
    args.output = args.output or RESULTS / ("quick.json" if args.quick else "latest.json")
    for name in ("rounds", "requests", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if min(args.customers) < 100:
        parser.error("--customers must be at least 100")
    return args


def select_pages(names):
    """The registry, or the named pages plus the floor; checks the registry's shape."""
    seen = [page.name for page in PAGES]
    if len(set(seen)) != len(seen) or FLOOR not in seen:
        raise BenchError("page names must be unique and include the floor")
    if any(page.concurrency < 1 or (page.requests or 1) < 1 for page in PAGES):
        raise BenchError("concurrency and requests must be at least 1")
    if not names:
        return list(PAGES)
    unknown = set(names) - set(seen)
    if unknown:
        raise BenchError(f"unknown page(s) {sorted(unknown)}; known: {seen}")
    floors = {FLOOR} | {page.floor for page in PAGES if page.name in names}
    return [page for page in PAGES if page.name in floors or page.name in names]


def run_config(args, pages, backend, customers):
    """Build (or copy) the database, serve it and the floor, measure; returns the
    configuration's results."""
    if backend == "postgresql":
        url, build_seconds = prepare_postgres(args.postgres_url, customers,
                                              args.reps_per_branch, args.rebuild)
    else:
        url, build_seconds = prepare_sqlite(customers, args.reps_per_branch, args.rebuild)
    app = _load_app(url)
    company = database_summary(app)
    plan = plan_requests(pages, app, args.rounds, args.requests)
    tp_pages = throughput_pages(args.throughput_seconds) if args.throughput_seconds else []
    tp_plan = plan_requests(tp_pages, app, 1, 1)
    _close_database()  # the bench process does not touch the database while measuring

    ports = {"tierdesk": free_port(), "floor": free_port()}
    load_before = os.getloadavg()
    print(f"Serving {company['customers']} customers, {company['users']} users ({backend}) "
          f"with gunicorn ({args.workers} workers), the floor app beside it; "
          f"{args.rounds} rounds x {args.requests} requests per page and client; "
          f"load average {load_before[0]:.1f} on {os.cpu_count()} CPUs")
    with Server(url, ports["tierdesk"], args.workers) as server, \
            Server(url, ports["floor"], args.workers, app="floor") as floor:
        phase = time.perf_counter()
        health = server.wait_ready()
        floor.wait_ready()
        print(f"  gunicorn ready in {time.perf_counter() - phase:.1f} s")
        if health.get("status") != "ok":
            print(f"  note: /healthz says {health.get('status')}: {health.get('warnings', '')}")
        phase = time.perf_counter()
        clients = open_sessions(pages + tp_pages, ports, args.workers)
        print(f"  {len(clients)} sessions opened in {time.perf_counter() - phase:.1f} s")
        measure_started = time.perf_counter()
        recorder = measure(pages, clients, plan, args.rounds, args.requests, (server, floor))
        measure_seconds = time.perf_counter() - measure_started
        throughput = measure_throughput(tp_pages, clients, tp_plan, args.throughput_seconds,
                                        recorder)
    rows = summarise(pages, recorder)
    print()
    print_table(rows)
    if throughput:
        print()
        print_throughput(throughput)
    return {
        "backend": backend, "customers": customers,
        "database": {"url": redact(url), **company, "build_seconds": build_seconds},
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "measure_seconds": round(measure_seconds, 1),
        "pages": rows, "throughput": throughput, "errors": recorder.errors,
    }


def throughput_pages(seconds):
    """The floor, the customer list and the meeting autosave, at each client count;
    each client has more requests planned than it can send in `seconds`."""
    pages = []
    for n in THROUGHPUT_CLIENTS:
        planned = int(seconds * MAX_REQUESTS_A_SECOND / n) + 10
        pages += [
            Page(f"floor @{n}", "GET", "/", "admin", concurrency=n, server="floor",
                 requests=planned),
            Page(f"customer list (bm_sh) @{n}", "GET", "/customers", "bm_sh", concurrency=n,
                 requests=planned),
            Page(f"meeting: autosave @{n}", "POST", lambda ctx: _score_slot(ctx)[0],
                 THROUGHPUT_MEMBERS[n], concurrency=n, headers={"HX-Request": "true"},
                 data=lambda ctx: _score_slot(ctx)[1], requests=planned),
        ]
    return pages


def measure_throughput(pages, clients, plan, seconds, recorder):
    """Requests a second for each page: its clients send back to back for `seconds`."""
    results = {}
    for page in pages:
        counts = [0] * page.concurrency
        barrier = threading.Barrier(page.concurrency + 1)
        deadline = []

        def work(number, page=page, counts=counts, barrier=barrier, deadline=deadline):
            client = clients[(page.server, page.user, number)]
            barrier.wait()
            for path, body in plan[page.name][number]:
                if time.perf_counter() >= deadline[0]:
                    return
                try:
                    status, content, _ = client.request(page.method, path, body, page.headers)
                except OSError as error:
                    recorder.error(page, f"{page.method} {path}: {error!r}")
                    return
                if status not in page.expect:
                    recorder.error(page, f"{page.method} {path}: status {status}")
                    return
                counts[number] += 1
            recorder.error(page, "ran out of planned requests: raise MAX_REQUESTS_A_SECOND")

        threads = [threading.Thread(target=work, args=(n,)) for n in range(page.concurrency)]
        for thread in threads:
            thread.start()
        started = time.perf_counter()
        deadline.append(started + seconds)
        barrier.wait()
        for thread in threads:
            thread.join()
        name, _, clients_at = page.name.rpartition(" @")
        results.setdefault(name, {})[int(clients_at)] = sum(counts) / (
            time.perf_counter() - started)
    return results


def print_throughput(throughput):
    floor = throughput["floor"]
    print("Throughput, requests a second (× the floor's at the same number of clients):")
    header = ["", *(f"{n} client{'s' if n > 1 else ''}" for n in THROUGHPUT_CLIENTS)]
    lines = [[name, *(f"{rps[n]:.0f}" + ("" if name == "floor" else f" ({rps[n] / floor[n]:.2f}×)")
                      for n in THROUGHPUT_CLIENTS)] for name, rps in throughput.items()]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    for cells in [header, *lines]:
        print("  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                        for i, cell in enumerate(cells)))


def print_targets(configs):
    """Each page with a target: its ratio in every configuration, and the verdict."""
    labels = [f"{c['backend']} {c['customers']:,}" for c in configs]
    print("\nTargets, as ratios to the floor in the same run:")
    header = ["page", "target", *labels]
    lines, missed = [], []
    for n, row in enumerate(configs[0]["pages"]):
        if row["target"] is None:
            continue
        cells = [row["page"], _target(row).rsplit(" ", 1)[0]]
        for config, label in zip(configs, labels):
            other = config["pages"][n]
            ratio = other[f"p{other['target_quantile']}_ratio"]
            cells.append("-" if ratio is None else f"{ratio:.2f}" + ("" if other["met"] else " ✗"))
            if other["met"] is False:
                missed.append(f"{row['page']} ({label})")
        lines.append(cells)
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    for cells in [header, *lines]:
        print("  ".join(cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i])
                        for i, cell in enumerate(cells)))
    print("Every target met." if not missed else f"Missed ({len(missed)}): " + "; ".join(missed))


def run(args):
    started = time.perf_counter()
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    pages = select_pages(args.page)
    RESULTS.mkdir(exist_ok=True)
    backends = args.backend or ["sqlite"]
    if not args.backend:
        if postgres_answers(args.postgres_url):
            backends.append("postgresql")
        else:
            print(f"PostgreSQL does not answer at {redact(args.postgres_url)}: "
                  f"measuring on SQLite only")
    configs = []
    for backend in backends:
        for customers in args.customers:
            print(f"\n== {backend}, {customers:,} customers")
            configs.append(run_config(args, pages, backend, customers))
    print_targets(configs)
    errors = [error for config in configs for error in config["errors"]]
    result = {
        "started_at": started_at, "revision": git_revision(),
        "server": {"workers": args.workers, "worker_class": "sync"},
        "floor": "scripts/floor_app.py",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rounds": args.rounds, "requests": args.requests, "warmup_rounds": WARMUP_ROUNDS,
        "total_seconds": round(time.perf_counter() - started, 1),
        "configurations": configs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    print(f"\nRatios are to the floor (scripts/floor_app.py, same run). All took "
          f"{result['total_seconds']:.0f} s. Written to {_shown(args.output)}")
    if errors:
        print(f"\n{len(errors)} error(s):", file=sys.stderr)
        for error in errors[:20]:
            print(f"  {error['page']}: {error['error']}", file=sys.stderr)
        return 1
    return 0


def _shown(path):
    path = Path(path).resolve()
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt  # unwinds through the `with Server`, which stops gunicorn


def run_main(name, parse, run_with, argv=None):
    """A bench script's main: its arguments parsed, run; a BenchError or an interrupt
    (Ctrl+C or SIGTERM, which stop gunicorn on the way out) ends it with a message."""
    args = parse(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        return run_with(args)
    except BenchError as error:
        print(f"\n{name}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted", file=sys.stderr)
        return 130


def main(argv=None):
    return run_main("bench", parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
