"""The committee's signatures on a cycle's results."""
import peewee as pw

from models.base import utcnow


def migrate(db):
    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class User(Base):
        pass

    class GradingCycle(Base):
        pass

    class CycleSignature(Base):
        cycle = pw.ForeignKeyField(GradingCycle, on_delete="CASCADE")
        user = pw.ForeignKeyField(User, on_delete="RESTRICT")
        role = pw.CharField(max_length=16)
        signed_at = pw.DateTimeField(default=utcnow)
        fingerprint = pw.CharField(max_length=64)

        class Meta:
            indexes = ((("cycle", "user"), True),)

    db.create_tables([CycleSignature])
