"""Versioned scorecard templates: a family key shared by all versions of one
template, who made each version, a description, and the freeze mark a
grading cycle sets.

Existing templates become version-1 families of their own (family = id),
unfrozen. Unique (family, version) replaces unique (name, version), so a
renamed version cannot collide with another template's numbering.
"""
import peewee as pw
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run

TABLE = "scorecard_template"


def migrate(db):
    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    # Stub of the existing table, only for the foreign key.
    class User(Base):
        pass

    migrator = SchemaMigrator.from_database(db)
    # NOT NULL columns get a database default and are added in one statement:
    # on SQLite the migrator's other route rebuilds the table, which would
    # cascade-delete the criteria that reference it.
    run(
        migrator.add_column(TABLE, "family", pw.CharField(
            max_length=32, constraints=[pw.SQL("DEFAULT ''")]), allow_not_null=True),
        migrator.add_column(TABLE, "description", pw.TextField(
            constraints=[pw.SQL("DEFAULT ''")]), allow_not_null=True),
        migrator.add_column(TABLE, "created_by_id", pw.ForeignKeyField(
            User, field=User.id, null=True, on_delete="SET NULL")),
        migrator.add_column(TABLE, "frozen_at", pw.DateTimeField(null=True)),
    )
    db.execute_sql("UPDATE scorecard_template SET family = CAST(id AS VARCHAR(32))")
    run(
        migrator.drop_index(TABLE, f"{TABLE}_name_version"),
        migrator.add_index(TABLE, ("family", "version"), unique=True),
    )
