"""The committee's signatures on a cycle's results, and report jobs rendered in the
background."""
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

    class ReportJob(Base):
        cycle = pw.ForeignKeyField(GradingCycle, on_delete="CASCADE")
        requested_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        state = pw.CharField(max_length=16, default="queued")
        done = pw.IntegerField(default=0)
        total = pw.IntegerField(default=0)
        error = pw.TextField(default="")
        path = pw.CharField(max_length=500, default="")
        signed = pw.IntegerField(default=0)
        fingerprint = pw.CharField(max_length=64, default="")
        created_at = pw.DateTimeField(default=utcnow)
        finished_at = pw.DateTimeField(null=True)

    db.create_tables([CycleSignature, ReportJob])
