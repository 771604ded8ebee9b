"""Contacts, activities, tier history and import batches for the customer book."""
import peewee as pw

from models.base import utcnow


def migrate(db):
    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    # Stubs of the existing tables, only for the foreign keys.
    class User(Base):
        pass

    class Tier(Base):
        pass

    class Customer(Base):
        pass

    class Contact(Base):
        customer = pw.ForeignKeyField(Customer, on_delete="CASCADE")
        name = pw.CharField(max_length=50)
        title = pw.CharField(max_length=50, default="")
        phone = pw.CharField(max_length=50, default="")
        email = pw.CharField(max_length=100, default="")
        created_at = pw.DateTimeField(default=utcnow)

    class Activity(Base):
        customer = pw.ForeignKeyField(Customer, on_delete="CASCADE")
        kind = pw.CharField(max_length=32)
        occurred_on = pw.DateField()
        user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        notes = pw.TextField(default="")
        created_at = pw.DateTimeField(default=utcnow)

        class Meta:
            indexes = ((("customer", "occurred_on"), False), (("kind", "occurred_on"), False))

    class TierHistory(Base):
        customer = pw.ForeignKeyField(Customer, on_delete="CASCADE")
        tier = pw.ForeignKeyField(Tier, on_delete="RESTRICT")
        effective_on = pw.DateField()
        source = pw.CharField(max_length=16, default="initial")
        reference = pw.CharField(max_length=200, default="")
        created_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        created_at = pw.DateTimeField(default=utcnow)

        class Meta:
            indexes = ((("customer", "effective_on"), False),)

    class ImportBatch(Base):
        user = pw.ForeignKeyField(User, on_delete="CASCADE")
        filename = pw.CharField(max_length=255)
        payload = pw.TextField()
        status = pw.CharField(max_length=16, default="preview")
        created_at = pw.DateTimeField(default=utcnow)
        applied_at = pw.DateTimeField(null=True)

    db.create_tables([Contact, Activity, TierHistory, ImportBatch])
    # Listing and filtering customers at 20,000 rows.
    db.execute_sql("CREATE INDEX customer_branch_tier ON customer (branch_id, tier_id)")
