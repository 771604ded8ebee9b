"""Customer files are read in the background: an import batch holds the uploaded
file until the worker has read it, how far the reading has got, and, when the
file could not be read, why."""
import peewee as pw
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run

TABLE = "import_batch"


def migrate(db):
    migrator = SchemaMigrator.from_database(db)
    run(
        migrator.add_column(TABLE, "upload", pw.BlobField(null=True)),
        migrator.add_column(TABLE, "progress", pw.IntegerField(
            constraints=[pw.SQL("DEFAULT 0")]), allow_not_null=True),
        migrator.add_column(TABLE, "error", pw.TextField(
            constraints=[pw.SQL("DEFAULT ''")]), allow_not_null=True),
    )
