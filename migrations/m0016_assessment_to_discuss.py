"""The chair can mark a customer "to discuss again" at the meeting: the agenda shows
the mark and counts it, and the chair's one-key "settle and next" leaves marked
customers for the end. Settling the customer clears it."""
import peewee as pw
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run


def migrate(db):
    migrator = SchemaMigrator.from_database(db)
    run(migrator.add_column("assessment", "to_discuss", pw.BooleanField(
        constraints=[pw.SQL("DEFAULT FALSE")]), allow_not_null=True))
