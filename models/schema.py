"""Schema versions: numbered migrations applied in order by `db-upgrade`.

Each migration in `migrations/` is a module `mNNNN_name.py` with a
`migrate(db)` function. A migration describes the schema as it was when it
was written (its own snapshot of the tables), never today's models, so an
old database upgrades through every step.
"""
import importlib
import pkgutil

from peewee import CharField, DateTimeField, IntegerField

import migrations

from .base import BaseModel, db, table_exists, utcnow, write_transaction


class SchemaVersion(BaseModel):
    version = IntegerField(primary_key=True)
    name = CharField(max_length=100)
    applied_at = DateTimeField(default=utcnow)


def available_migrations():
    """[(version, name, module)] of every migration, in order."""
    found = []
    for info in pkgutil.iter_modules(migrations.__path__):
        if info.name.startswith("m") and info.name[1:5].isdigit():
            module = importlib.import_module(f"migrations.{info.name}")
            found.append((int(info.name[1:5]), info.name[6:], module))
    return sorted(found, key=lambda m: m[0])


def latest_version():
    return available_migrations()[-1][0]


def current_version():
    """The version the database is at; 0 for an empty database."""
    if not table_exists(SchemaVersion._meta.table_name):
        return 0
    row = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return row.version if row else 0


def upgrade(target=None):
    """Apply every migration above the current version (up to `target`).

    Each migration runs in its own transaction with its version row, so a
    failing step leaves the database at the previous version. Returns the
    list of versions applied.
    """
    db.create_tables([SchemaVersion], safe=True)
    applied = []
    for version, name, module in available_migrations():
        if version <= current_version() or (target is not None and version > target):
            continue
        with write_transaction():
            module.migrate(db)
            SchemaVersion.create(version=version, name=name)
        applied.append(version)
    return applied
