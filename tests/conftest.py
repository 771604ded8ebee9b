"""Fixtures every test module uses.

`app` runs each test on a fresh SQLite file and, when TEST_DATABASE_URL is
set, once more on PostgreSQL: the same tests, not a subset.
"""
import os
import re
import uuid

import psycopg2
import pytest

from app import create_app
from models import ALL_MODELS, Branch, Customer, User, db
from models.base import table_exists
from models.schema import SchemaVersion, upgrade

# Browser fixtures (live_server, browser, page, new_page) for every test module.
pytest.register_assert_rewrite("tests.live")
pytest_plugins = ["tests.live"]

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if TEST_DATABASE_URL else [])
PG_SCHEMA = f"tierdesk_test_{os.getpid()}"  # two runs at once must not collide
PASSWORD = "correct-horse-1"

_password_hash = None


def _hash():
    """One argon2 hash for every test user: hashing is slow on purpose."""
    global _password_hash
    if _password_hash is None:
        probe = User()
        probe.set_password(PASSWORD)
        _password_hash = probe.password_hash
    return _password_hash


def pg_url(schema=PG_SCHEMA):
    """TEST_DATABASE_URL with its search_path set to our own schema."""
    sep = "&" if "?" in TEST_DATABASE_URL else "?"
    return f"{TEST_DATABASE_URL}{sep}options=-csearch_path%3D{schema}"


def pg_execute(sql):
    conn = psycopg2.connect(TEST_DATABASE_URL)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture(scope="session")
def pg_schema():
    """A private schema on the test PostgreSQL, made afresh for this run."""
    pg_execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE; CREATE SCHEMA {PG_SCHEMA}")
    yield PG_SCHEMA
    pg_execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")


def make_pg_schema():
    """A fresh, empty schema of its own (for tests that need an empty database)."""
    name = f"tierdesk_t_{uuid.uuid4().hex[:10]}"
    pg_execute(f"CREATE SCHEMA {name}")
    return name


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def database_url(backend, tmp_path, request):
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    request.getfixturevalue("pg_schema")
    return pg_url()


@pytest.fixture
def app(database_url, backend, tmp_path):
    app = create_app({
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": database_url,
        "WTF_CSRF_ENABLED": False,
        "REPORTS_DIR": str(tmp_path / "reports"),
    })
    with app.app_context():
        if backend == "postgresql":
            # Empty every table but the schema's own record of its migrations.
            tables = ", ".join(f'"{m._meta.table_name}"' for m in ALL_MODELS
                               if m is not SchemaVersion)
            if table_exists("schema_version"):
                # A transaction some earlier test left open would make this wait for
                # ever: fail this test instead, naming the cause.
                with db.atomic():
                    db.execute_sql("SET LOCAL lock_timeout = '60s'")
                    db.execute_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        upgrade()
        db.close()
    yield app
    if not db.is_closed():
        db.close()


@pytest.fixture
def sqlite_app(tmp_path):
    """The app on a SQLite file, for what only SQLite has (pragmas, backups)."""
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "WTF_CSRF_ENABLED": False,
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'sqlite-only.db'}"})
    with app.app_context():
        upgrade()
    db.close()
    yield app
    if not db.is_closed():
        db.close()


@pytest.fixture
def csrf_app(app):
    """The same app with CSRF protection on, as in production."""
    app.config["WTF_CSRF_ENABLED"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def immediate_jobs():
    """Background jobs run at once, inside the request, as huey's immediate mode does:
    there is no worker in a test."""
    from services import jobs
    before = jobs.huey.immediate
    jobs.huey.immediate = True
    yield
    jobs.huey.immediate = before


def run_in_huey_worker(app, tmp_path, call, queued, finished, **env):
    """Queue a job as the web server does, then let a real huey consumer (SQLite
    storage) run it, until `finished()` or for a minute at most.

    `call` (Python source, such as "from services.jobs import read_import;
    read_import(3)") runs in a process of its own with no app around it, so it only
    queues the job; `queued()` must hold before the consumer starts."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, HUEY_DB=str(tmp_path / "huey.db"),
               DATABASE_URL=app.config["DATABASE_URL"], SECRET_KEY="test-secret", **env)
    subprocess.run([sys.executable, "-c", call], cwd=root, env=env, check=True)
    assert queued(), "the job ran before a worker picked it up"
    consumer = subprocess.Popen([str(Path(sys.executable).parent / "huey_consumer"),
                                 "worker.huey", "--workers", "1"],
                                cwd=root, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not finished():
            time.sleep(0.3)
    finally:
        consumer.terminate()
        consumer.wait(10)


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class Factory:
    """Makes records with sensible defaults; every argument can be overridden."""

    def __init__(self):
        self.n = 0

    def _next(self):
        self.n += 1
        return self.n

    def branch(self, code=None, name=None, **kw):
        n = self._next()
        return Branch.create(code=code or f"BR{n}", name=name or f"测试{n}分公司", **kw)

    def user(self, username=None, roles=("sales_rep",), branch=None, **kw):
        n = self._next()
        if branch is None and set(roles) & {"branch_manager", "sales_rep"}:
            branch = self.branch()
        user = User(username=username or f"user{n}",
                    display_name=kw.pop("display_name", f"用户{n}"),
                    password_hash=_hash(), branch=branch, **kw)
        user.roles = roles
        user.save()
        return user

    def customer(self, branch=None, name=None, **kw):
        n = self._next()
        return Customer.create(code=kw.pop("code", f"T{n:05d}"),
                               name=name or f"测试客户{n}有限公司",
                               branch=branch or self.branch(), **kw)


@pytest.fixture
def make(app):
    """Factories: make.user(...), make.branch(...), make.customer(...).

    No app context is held open here: a pushed context would be shared by
    the test client's requests and leak `g` (the logged-in user) between them.
    """
    yield Factory()
    if not db.is_closed():
        db.close()


def login(client, username, password=PASSWORD):
    """Log in through the real form; returns the response."""
    return client.post("/login", data={"username": username, "password": password})


def csrf_token_from(html):
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'"X-CSRFToken": "([^"]+)"', html)
    assert match, "page carries no CSRF token"
    return match.group(1)


@pytest.fixture
def login_as(client, make):
    """login_as("admin") makes a user with that role (and branch) and logs in."""
    def _login(*roles, branch=None, **kw):
        user = make.user(roles=roles, branch=branch, **kw)
        response = login(client, user.username)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return user
    return _login
