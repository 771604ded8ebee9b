"""The weekly sales funnel: opportunities and their stage history."""
import datetime

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

    class Branch(Base):
        pass

    class Customer(Base):
        pass

    class Opportunity(Base):
        customer = pw.ForeignKeyField(Customer, on_delete="RESTRICT")
        branch = pw.ForeignKeyField(Branch, on_delete="RESTRICT")
        owner = pw.ForeignKeyField(User, on_delete="RESTRICT")
        stage = pw.CharField(max_length=16, default="opportunity")
        stage_entered_on = pw.DateField()
        premium_received = pw.DecimalField(max_digits=14, decimal_places=2, default=0)
        standard_premium = pw.DecimalField(max_digits=14, decimal_places=2, default=0)
        expected_amount = pw.DecimalField(max_digits=14, decimal_places=2, null=True)
        signing_date = pw.DateField(null=True)
        decision_maker_met = pw.BooleanField(default=False)
        plan_fits_need = pw.BooleanField(default=False)
        budget_discussed = pw.BooleanField(default=False)
        next_step_agreed = pw.BooleanField(default=False)
        contract_signed = pw.BooleanField(default=False)
        payment_received = pw.BooleanField(default=False)
        lost_reason = pw.TextField(default="")
        closed_on = pw.DateField(null=True)
        created_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        created_at = pw.DateTimeField(default=utcnow)
        updated_at = pw.DateTimeField(default=utcnow)

        class Meta:
            indexes = ((("branch", "stage"), False), (("owner", "stage"), False),
                       (("customer", "stage"), False))

    class StageMove(Base):
        opportunity = pw.ForeignKeyField(Opportunity, on_delete="CASCADE")
        branch = pw.ForeignKeyField(Branch, on_delete="RESTRICT")
        owner = pw.ForeignKeyField(User, on_delete="RESTRICT")
        from_stage = pw.CharField(max_length=16, null=True)
        to_stage = pw.CharField(max_length=16)
        moved_on = pw.DateField()
        left_on = pw.DateField(default=datetime.date(9999, 12, 31))
        kind = pw.CharField(max_length=16, default="move")
        premium_received = pw.DecimalField(max_digits=14, decimal_places=2, default=0)
        standard_premium = pw.DecimalField(max_digits=14, decimal_places=2, default=0)
        moved_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        moved_at = pw.DateTimeField(default=utcnow)

        class Meta:
            indexes = ((("branch", "left_on", "moved_on"), False),
                       (("owner", "left_on", "moved_on"), False),
                       (("opportunity", "left_on"), False))

    db.create_tables([Opportunity, StageMove])
