"""The one database object and the model base class.

`db` is a proxy bound by `init_database()` from a URL, so the same models
serve SQLite (the embedded default) and PostgreSQL (`DATABASE_URL`).
"""
import datetime
import functools
import inspect
import logging
import os

from peewee import DatabaseProxy, Model, Node, SqliteDatabase
from playhouse.db_url import connect, parse
from playhouse.pool import PooledSqliteDatabase

db = DatabaseProxy()

# Every SQLite connection gets these; a test reads them back.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 10000,
    "synchronous": "normal",
    "cache_size": -16000,
}


# Connections a process keeps open (gunicorn's sync workers use one each; the test
# server's and the worker's threads one per thread), and how long one may sit idle.
POOL_SIZE = 32
POOL_STALE_SECONDS = 300


class DomainError(Exception):
    """A rule of the domain refused a change; the message is for the user."""


class NotFound(DomainError):
    """The record does not exist or is not visible to the user."""


def utcnow():
    """Naive UTC timestamp, the one clock every table uses."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def private_sqlite_file(path):
    """Make the SQLite file at `path` readable and writable by this user alone (0600):
    create it so when it does not exist yet (an empty file is an empty database, and
    SQLite gives its -wal, -shm and -journal files the database's mode), else set the
    mode of the file and of those beside it. A path whose folder is missing is left to
    SQLite to report; a file owned by someone else keeps the mode its owner chose."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except FileNotFoundError:
        return
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        try:
            os.chmod(name, 0o600)
        except FileNotFoundError:
            pass
        except PermissionError:
            logging.getLogger(__name__).warning("%s is not ours; its mode is left as it is",
                                                name)


def init_database(url):
    """Bind `db` to the database at `url` and return it.

    Both SQLite and PostgreSQL URLs get peewee's pooled driver: a request takes an
    open connection and gives it back, so no request pays for opening one (nor, on
    SQLite, for the pragmas above, which each connection gets once, and for the WAL
    checkpoint SQLite makes when the last connection to a database closes). A
    SQLite file is made private to this user (private_sqlite_file).
    """
    if db.obj is not None:  # re-binding (tests): release the old connections
        close_all = getattr(db.obj, "close_all", None)
        close_all() if close_all else db.obj.close()
    if url.startswith(("postgres://", "postgresql://")):
        url = url.replace("postgres://", "postgresql://", 1).replace(
            "postgresql://", "postgresql+pool://", 1)
        database = connect(url, max_connections=POOL_SIZE, stale_timeout=POOL_STALE_SECONDS)
    elif url.startswith("sqlite:"):
        params = parse(url)
        private_sqlite_file(params.get("database", ""))
        # A pooled connection serves one thread at a time, but not always the same one.
        database = PooledSqliteDatabase(**params, pragmas=SQLITE_PRAGMAS,
                                        max_connections=POOL_SIZE,
                                        stale_timeout=POOL_STALE_SECONDS,
                                        check_same_thread=False)
    else:
        database = connect(url)
    db.initialize(database)
    return database


def table_exists(name):
    """Whether `name` exists where this connection looks for tables.

    peewee looks in PostgreSQL's `public` schema unless told otherwise; a
    DATABASE_URL may set another search_path, so ask for the current one.
    """
    if is_sqlite():
        return db.table_exists(name)
    schema = db.execute_sql("SELECT current_schema()").fetchone()[0]
    return db.table_exists(name, schema=schema)


def is_sqlite():
    return isinstance(db.obj, SqliteDatabase)


def as_date(value):
    """A DATE column read by SQL written as text, as a date: SQLite hands back its text,
    PostgreSQL a date."""
    return datetime.date.fromisoformat(value) if isinstance(value, str) else value


def raw_sql(sql, params=()):
    """Run SQL written as text (where the query builder would not do), `{p}` marking
    each parameter: it becomes the driver's placeholder (? on SQLite, %s on
    PostgreSQL). Returns the cursor."""
    return db.execute_sql(sql.replace("{p}", db.param), params)


def marks(count):
    """`count` parameter marks, comma-separated, for an IN (...) list in raw_sql()."""
    return ", ".join(["{p}"] * count)


def write_transaction():
    """A transaction for work that reads, then writes.

    On SQLite a deferred transaction that upgrades from read to write can
    fail with "database is locked" whatever the busy timeout; IMMEDIATE
    takes the write lock up front. PostgreSQL needs no such hint.
    """
    if is_sqlite():
        return db.atomic("IMMEDIATE")
    return db.atomic()


class BaseModel(Model):
    class Meta:
        database = db
        legacy_table_names = False


class Param(Node):
    """A value of a prepared() query, bound each time it runs."""

    def __init__(self, name, index=None):
        super().__init__()
        self.name, self.index = name, index

    def items(self, count):
        """A list-valued parameter as `count` placeholders, for an IN (...); `count`
        must come from a shape argument."""
        return [Param(self.name, i) for i in range(count)]

    def value_in(self, values):
        value = values[self.name]
        return value if self.index is None else value[self.index]

    def __sql__(self, ctx):
        ctx._values.append(self)
        return ctx.literal(ctx.state.param or "?")


def prepared(build):
    """Decorate `build(*shape, **values)`, which returns a peewee SELECT, so that its SQL
    is generated once per process, database kind and `shape`, then run with new values.

    peewee writes the SQL anew on every query, and for a query that selects a few
    tables that costs more than SQLite takes to run it: a detail page spends a third
    of its time there. `build` gets each keyword-only argument as a Param, never its
    value, so what it returns cannot depend on the value; whatever changes the shape
    of the query (a scope, a choice of sort, how many ids a list holds: see
    Param.items) must be a positional argument. Values are
    bound as given (ids, strings): no field converter runs. Calling the decorated
    function runs the query and returns peewee's cursor wrapper (iterate it).
    """
    names = [name for name, parameter in inspect.signature(build).parameters.items()
             if parameter.kind is parameter.KEYWORD_ONLY]
    compiled = {}

    @functools.wraps(build)
    def run(*shape, **values):
        key = (type(db.obj), shape)
        entry = compiled.get(key)
        if entry is None:
            query = build(*shape, **{name: Param(name) for name in names})
            sql, params = db.get_sql_context().sql(query).query()
            entry = compiled[key] = (query, sql, params)
        query, sql, params = entry
        bound = [p.value_in(values) if isinstance(p, Param) else p for p in params]
        return query._get_cursor_wrapper(db.execute_sql(sql, bound))
    return run
