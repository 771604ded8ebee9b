"""The one database object and the model base class.

`db` is a proxy bound by `init_database()` from a URL, so the same models
serve SQLite (the embedded default) and PostgreSQL (`DATABASE_URL`).
"""
import datetime

from peewee import DatabaseProxy, Model, SqliteDatabase
from playhouse.db_url import connect

db = DatabaseProxy()

# Every SQLite connection gets these; a test reads them back.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 10000,
    "synchronous": "normal",
    "cache_size": -16000,
}


class DomainError(Exception):
    """A rule of the domain refused a change; the message is for the user."""


class NotFound(DomainError):
    """The record does not exist or is not visible to the user."""


def utcnow():
    """Naive UTC timestamp, the one clock every table uses."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def init_database(url):
    """Bind `db` to the database at `url` and return it.

    SQLite URLs get the pragmas above on every connection; PostgreSQL URLs
    use the pooled driver so gunicorn workers reuse connections.
    """
    if db.obj is not None:  # re-binding (tests): release the old connections
        close_all = getattr(db.obj, "close_all", None)
        close_all() if close_all else db.obj.close()
    if url.startswith(("postgres://", "postgresql://")):
        url = url.replace("postgres://", "postgresql://", 1).replace(
            "postgresql://", "postgresql+pool://", 1)
        database = connect(url, max_connections=32, stale_timeout=300)
    elif url.startswith("sqlite"):
        database = connect(url, pragmas=SQLITE_PRAGMAS, timeout=10,
                           autoconnect=True)
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
