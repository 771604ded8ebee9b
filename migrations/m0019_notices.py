"""Notices (通知): an outbox row per person and channel, written in the same transaction
as the change that caused it and delivered by the worker; each person's choice of
channel per kind of notice; the group robots (企业微信, 钉钉, 飞书) per branch and one
company-wide; an e-mail address and a mobile number per user.
"""
import peewee as pw
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run


def migrate(db):
    # This step's own snapshot of the tables, never today's models.
    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Branch(Base):
        class Meta:
            table_name = "branch"

    class User(Base):
        class Meta:
            table_name = "user"

    class Robot(Base):
        branch = pw.ForeignKeyField(Branch, null=True, unique=True, on_delete="CASCADE")
        platform = pw.CharField(max_length=16)
        url_encrypted = pw.TextField()
        secret_encrypted = pw.TextField(default="")
        url_hint = pw.CharField(max_length=200, default="")
        active = pw.BooleanField(default=True)
        updated_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        updated_at = pw.DateTimeField()

    class NoticePreference(Base):
        user = pw.ForeignKeyField(User, on_delete="CASCADE")
        kind = pw.CharField(max_length=32)
        channels = pw.CharField(max_length=8)

        class Meta:
            indexes = ((("user", "kind"), True),)

    class Notice(Base):
        kind = pw.CharField(max_length=32)
        recipient = pw.ForeignKeyField(User, on_delete="CASCADE")
        channel = pw.CharField(max_length=8)
        robot = pw.ForeignKeyField(Robot, null=True, on_delete="SET NULL")
        subject = pw.CharField(max_length=255)
        body = pw.TextField()
        link = pw.CharField(max_length=500, default="")
        state = pw.CharField(max_length=8, default="pending")
        tries = pw.IntegerField(default=0)
        next_attempt_at = pw.DateTimeField()
        claimed_at = pw.DateTimeField(null=True)
        last_error = pw.TextField(default="")
        answer = pw.TextField(default="")
        sent_at = pw.DateTimeField(null=True)
        delivery_key = pw.CharField(max_length=64)
        about_type = pw.CharField(max_length=64, default="")
        about_id = pw.CharField(max_length=64, default="")
        created_at = pw.DateTimeField()

        class Meta:
            indexes = ((("state", "next_attempt_at"), False),
                       (("about_type", "about_id"), False),
                       (("recipient", "created_at"), False))

    db.create_tables([Robot, NoticePreference, Notice])
    migrator = SchemaMigrator.from_database(db)
    run(
        migrator.add_column("user", "email", pw.CharField(
            max_length=254, constraints=[pw.SQL("DEFAULT ''")]), allow_not_null=True),
        migrator.add_column("user", "mobile", pw.CharField(
            max_length=32, constraints=[pw.SQL("DEFAULT ''")]), allow_not_null=True),
    )
