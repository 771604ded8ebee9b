"""The database layer: pragmas, connections, transactions, migrations."""
import sqlite3
import threading

import pytest
from peewee import IntegerField

from app import create_app
from models import Branch, db, write_transaction
from models.schema import (
    SchemaVersion,
    available_migrations,
    current_version,
    latest_version,
    upgrade,
)
from tests.conftest import login, make_pg_schema, pg_execute, pg_url


def test_sqlite_pragmas_on_every_connection(sqlite_app):
    """Each SQLite connection runs in WAL with foreign keys and a busy timeout."""
    for _ in range(2):  # a second connection gets them too
        db.connect(reuse_if_open=True)
        assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 5000
        db.close()
        db.obj.close_all()  # the pool's connection closes: the next one is new


def test_closing_a_connection_that_wrote_leaves_the_wal_alone(sqlite_app, tmp_path):
    """A request's connection goes back to the pool, open: its close is not the last
    one, so SQLite neither checkpoints nor deletes the WAL then (it did on every
    request that wrote), and the write is there for a fresh reader."""
    wal = tmp_path / "sqlite-only.db-wal"
    db.connect(reuse_if_open=True)
    Branch.create(code="WA", name="预写日志分公司")
    db.close()
    assert wal.exists() and wal.stat().st_size > 0
    reader = sqlite3.connect(tmp_path / "sqlite-only.db")
    assert reader.execute("SELECT name FROM branch WHERE code = 'WA'").fetchone() == (
        "预写日志分公司",)
    reader.close()
    db.obj.close_all()  # now the last close checkpoints and removes the WAL
    assert not wal.exists()


def test_a_request_reuses_the_pooled_connection(app, client, make):
    """Requests one after another in a process get the same open connection back,
    with the pragmas it was opened with, instead of opening a new one each."""
    make.user("pooled")
    login(client, "pooled")
    seen = []  # the connections themselves: kept alive, no two can share an id
    app.before_request_funcs.setdefault(None, []).append(
        lambda: seen.append(db.connection()))
    for _ in range(3):
        assert client.get("/").status_code == 200
    assert len(seen) == 3 and len({id(c) for c in seen}) == 1 and db.is_closed()


def test_foreign_keys_are_enforced(app, make):
    """A user pointing at a missing branch is refused by the database itself."""
    from peewee import IntegrityError

    from models import User
    with pytest.raises(IntegrityError), db.atomic():
        User.insert(username="ghost", display_name="g", password_hash="x",
                    branch=987654).execute()


def test_connection_closed_after_each_request_even_on_error(app, client, make):
    """The request's connection is closed in teardown, also when the view raised."""
    def boom():
        Branch.select().count()
        raise RuntimeError("boom")

    app.add_url_rule("/boom", "boom", boom)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    make.user("admin1", roles=("admin",))
    login(client, "admin1")
    db.close()
    response = client.get("/boom")
    assert response.status_code == 500
    assert "系统出现错误" in response.get_data(as_text=True)
    assert "RuntimeError" not in response.get_data(as_text=True)
    assert db.is_closed()
    client.get("/")
    assert db.is_closed()


def test_write_transaction_takes_the_lock_up_front(sqlite_app):
    """On SQLite a read-then-write transaction holds the write lock from its start."""
    path = db.database
    started, release = threading.Event(), threading.Event()

    def writer():
        with write_transaction():
            Branch.select().count()  # a read first...
            started.set()
            release.wait(5)
            Branch.create(code="W1", name="写入")  # ...then the write
        db.close()

    thread = threading.Thread(target=writer)
    thread.start()
    started.wait(5)
    other = sqlite3.connect(path, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("BEGIN IMMEDIATE")
    other.close()
    release.set()
    thread.join()
    assert Branch.select().where(Branch.code == "W1").exists()


def _app_on_empty_database(backend, tmp_path):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        url = pg_url(make_pg_schema())
    return create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": url}), url


def test_upgrade_from_the_first_migration(backend, tmp_path):
    """A database created at version 1 upgrades to the latest and keeps its rows."""
    app, url = _app_on_empty_database(backend, tmp_path)
    try:
        with app.app_context():
            assert current_version() == 0
            assert upgrade(target=1) == [1]
            Branch.insert(code="OLD", name="老分公司").execute()
            applied = upgrade()
            # Every migration after the first, in order (numbers may have gaps while
            # branches that each add one are merged).
            versions = [version for version, _, _ in available_migrations()]
            assert current_version() == latest_version()
            versions = [version for version, _name, _module in available_migrations()]
            assert applied == versions[1:]  # numbers may have gaps; the order holds
            assert Branch.get(Branch.code == "OLD").name == "老分公司"
            assert upgrade() == []  # idempotent
            assert [v.version for v in SchemaVersion.select().order_by(
                SchemaVersion.version)] == versions
    finally:
        db.close()
        if backend == "postgresql":
            schema = url.rsplit("%3D", 1)[1]
            pg_execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_failing_migration_leaves_the_previous_version(backend, tmp_path, monkeypatch):
    """A migration that raises is rolled back whole: the version does not move."""
    import models.schema as schema

    app, url = _app_on_empty_database(backend, tmp_path)
    real = schema.available_migrations

    class Broken:
        @staticmethod
        def migrate(database):
            from playhouse.migrate import SchemaMigrator, migrate
            migrator = SchemaMigrator.from_database(database)
            migrate(migrator.add_column("branch", "half_done", IntegerField(default=0)))
            raise RuntimeError("half-way")

    known = real()
    monkeypatch.setattr(schema, "available_migrations",
                        lambda: [*known, (known[-1][0] + 1, "broken", Broken)])
    try:
        with app.app_context():
            with pytest.raises(RuntimeError, match="half-way"):
                upgrade()
            assert current_version() == known[-1][0]
            columns = [c.name for c in db.get_columns("branch")]
            assert "half_done" not in columns
    finally:
        db.close()
        if backend == "postgresql":
            pg_execute(f"DROP SCHEMA {url.rsplit('%3D', 1)[1]} CASCADE")


def test_the_search_migration_stops_on_a_postgresql_without_pg_trgm(monkeypatch):
    """Migration 18 on a PostgreSQL server that lacks pg_trgm fails, saying what to
    install, before it creates anything (the search would otherwise read the book)."""
    import models.base
    from migrations.m0018_customer_search_pieces import migrate

    class ServerWithoutTrigrams:
        def __init__(self):
            self.statements = []

        def execute_sql(self, sql, params=None):
            self.statements.append(sql)
            assert "pg_available_extensions" in sql, sql
            return sqlite3.connect(":memory:").execute("SELECT 1 WHERE 0")

    server = ServerWithoutTrigrams()
    monkeypatch.setattr(models.base, "is_sqlite", lambda: False)
    with pytest.raises(RuntimeError, match="pg_trgm.*contrib"):
        migrate(server)
    assert len(server.statements) == 1


def test_the_url_picks_the_driver(backend, app):
    """DATABASE_URL=postgresql://… gives pooled PostgreSQL; sqlite:///… pooled SQLite."""
    from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

    expected = PooledPostgresqlDatabase if backend == "postgresql" else PooledSqliteDatabase
    assert isinstance(db.obj, expected)


def test_prepared_queries_bind_new_values_and_keep_a_shape_apart(app, make):
    """A prepared query's SQL is written once, yet each call reads its own values; a
    shape argument gives a query of its own; it counts as a query like any other."""
    from models import Contact
    from models.base import prepared

    east, west = make.branch("E", "华东"), make.branch("W", "西南")
    first = make.customer(east, "甲公司")
    second = make.customer(west, "乙公司")
    for customer, names in ((first, ["张三", "李四"]), (second, ["王五"])):
        for name in names:
            Contact.create(customer=customer, name=name)

    @prepared
    def contacts(newest_first, *, customer, limit):
        order = Contact.id.desc() if newest_first else Contact.id
        return (Contact.select().where(Contact.customer == customer).order_by(order)
                .limit(limit))

    assert [c.name for c in contacts(False, customer=first.id, limit=10)] == ["张三", "李四"]
    assert [c.name for c in contacts(False, customer=second.id, limit=10)] == ["王五"]
    assert [c.name for c in contacts(True, customer=first.id, limit=10)] == ["李四", "张三"]
    assert [c.name for c in contacts(True, customer=first.id, limit=1)] == ["李四"]
    seen = []
    db.obj.query_hooks.append(seen.append)
    try:
        assert [c.customer_id for c in contacts(False, customer=second.id, limit=5)] == [
            second.id]
    finally:
        db.obj.query_hooks.remove(seen.append)
    assert len(seen) == 1 and "LIMIT" in seen[0].sql

    @prepared
    def named(count, *, ids):  # a list of values: its length is the shape
        return Contact.select().where(Contact.id.in_(ids.items(count))).order_by(Contact.id)

    ids = [c.id for c in Contact.select().order_by(Contact.id)]
    assert [c.name for c in named(2, ids=ids[:2])] == ["张三", "李四"]
    assert [c.name for c in named(2, ids=ids[1:])] == ["李四", "王五"]
    assert [c.name for c in named(1, ids=ids[2:])] == ["王五"]


def mode(path):
    """The permission bits of `path`, as ls shows them in octal."""
    import stat
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_the_instance_folder_and_the_database_files_are_this_users_alone(backend, app, client,
                                                                         make):
    """The instance folder is 0700; on SQLite the database file and the -wal and -shm a
    write leaves beside it are 0600 (PostgreSQL keeps no file here)."""
    from pathlib import Path
    make.user("admin", roles=("admin",))
    login(client, "admin")
    assert client.post("/admin/branches/new", data={"code": "MD", "name": "权限分公司"}
                       ).status_code == 303
    assert Branch.get(Branch.code == "MD").name == "权限分公司"
    assert mode(Path(app.instance_path)) == "0o700"
    if backend == "sqlite":
        database = Path(db.database)
        files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
        assert {f.name: mode(f) for f in files} == {f.name: "0o600" for f in files}


def test_an_older_readable_database_is_made_private_at_start(tmp_path):
    """A SQLite database and WAL left readable by others (0644) are 0600 once the app
    starts, and an instance folder left open (0755) is 0700."""
    from app import BASE_DIR
    instance = BASE_DIR / "instance"
    instance.mkdir(exist_ok=True)
    instance.chmod(0o755)
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    for name in (path, tmp_path / "old.db-wal", tmp_path / "old.db-shm"):
        name.chmod(0o644)
    try:
        create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": f"sqlite:///{path}"})
        assert [mode(p) for p in (path, tmp_path / "old.db-wal", tmp_path / "old.db-shm")] == \
            ["0o600"] * 3
        assert mode(instance) == "0o700"
    finally:
        conn.close()
        db.close()
