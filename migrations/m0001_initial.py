"""The first schema: branches, users, audit, tiers, scorecards, customers.

A frozen snapshot of the tables as they were at version 1. Later changes go
in new migrations, never here.
"""
import peewee as pw

from models.base import utcnow


def migrate(db):
    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Branch(Base):
        code = pw.CharField(max_length=32, unique=True)
        name = pw.CharField(max_length=100)
        region = pw.CharField(max_length=100, default="")
        created_at = pw.DateTimeField(default=utcnow)

    class User(Base):
        username = pw.CharField(max_length=64, unique=True)
        display_name = pw.CharField(max_length=100)
        password_hash = pw.CharField(max_length=255)
        roles_text = pw.CharField(max_length=255, default=",")
        branch = pw.ForeignKeyField(Branch, null=True, on_delete="RESTRICT")
        language = pw.CharField(max_length=8, default="zh_CN")
        active = pw.BooleanField(default=True)
        session_version = pw.IntegerField(default=1)
        sales_cycle_days = pw.IntegerField(default=28)
        created_at = pw.DateTimeField(default=utcnow)
        last_login_at = pw.DateTimeField(null=True)

    class AuditEvent(Base):
        at = pw.DateTimeField(default=utcnow, index=True)
        actor = pw.ForeignKeyField(User, null=True, on_delete="RESTRICT")
        actor_name = pw.CharField(max_length=64, default="")
        action = pw.CharField(max_length=64, index=True)
        object_type = pw.CharField(max_length=64, default="", index=True)
        object_id = pw.CharField(max_length=64, default="")
        before = pw.TextField(null=True)
        after = pw.TextField(null=True)
        ip = pw.CharField(max_length=64, default="")

        class Meta:
            indexes = ((("object_type", "object_id"), False),
                       (("action", "object_id", "at"), False))

    class Tier(Base):
        code = pw.CharField(max_length=16, unique=True)
        name_zh = pw.CharField(max_length=50)
        name_en = pw.CharField(max_length=50)
        rank = pw.IntegerField(unique=True)
        colour = pw.CharField(max_length=7, default="#64748b")

    class ScorecardTemplate(Base):
        name = pw.CharField(max_length=100)
        version = pw.IntegerField(default=1)
        kind = pw.CharField(max_length=16, default="existing")
        created_at = pw.DateTimeField(default=utcnow)

        class Meta:
            indexes = ((("name", "version"), True),)

    class Criterion(Base):
        template = pw.ForeignKeyField(ScorecardTemplate, on_delete="CASCADE")
        position = pw.IntegerField()
        name = pw.CharField(max_length=100)
        guidance = pw.TextField(default="")
        max_points = pw.IntegerField()

    class CriterionLevel(Base):
        criterion = pw.ForeignKeyField(Criterion, on_delete="CASCADE")
        position = pw.IntegerField()
        name = pw.CharField(max_length=100)
        min_points = pw.IntegerField()
        max_points = pw.IntegerField()

    class GradeBand(Base):
        template = pw.ForeignKeyField(ScorecardTemplate, on_delete="CASCADE")
        tier = pw.ForeignKeyField(Tier, on_delete="RESTRICT")
        min_total = pw.IntegerField()

    class Customer(Base):
        code = pw.CharField(max_length=32, unique=True)
        name = pw.CharField(max_length=200, index=True)
        name_initials = pw.CharField(max_length=200, default="", index=True)
        kind = pw.CharField(max_length=16, default="existing")
        nature = pw.CharField(max_length=32, default="private")
        industry = pw.CharField(max_length=32, default="manufacturing")
        region = pw.CharField(max_length=100, default="")
        branch = pw.ForeignKeyField(Branch, on_delete="RESTRICT")
        account_manager = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        tier = pw.ForeignKeyField(Tier, null=True, on_delete="RESTRICT")
        provisional = pw.BooleanField(default=False)
        cooperation_since = pw.DateField(null=True)
        created_at = pw.DateTimeField(default=utcnow)
        updated_at = pw.DateTimeField(default=utcnow)

    class CustomerYear(Base):
        customer = pw.ForeignKeyField(Customer, on_delete="CASCADE")
        year = pw.IntegerField()
        sales = pw.DecimalField(max_digits=16, decimal_places=2, default=0)
        profit = pw.DecimalField(max_digits=16, decimal_places=2, default=0)
        collection_rate = pw.DecimalField(max_digits=5, decimal_places=2, default=0)
        credit_days = pw.IntegerField(default=0)

        class Meta:
            indexes = ((("customer", "year"), True),)

    db.create_tables([Branch, User, AuditEvent, Tier, ScorecardTemplate, Criterion,
                      CriterionLevel, GradeBand, Customer, CustomerYear])
