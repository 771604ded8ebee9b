"""Customer allocation (客户分配): each branch's ordered rules that propose an account
manager (or a pool of them) for a customer, and every change of a customer's account
manager (who held it when, and what moved it: the form, an import, a bulk
reassignment)."""
import peewee as pw


def migrate(db):
    # This step's own snapshot of the tables, never today's models.
    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class User(Base):
        class Meta:
            table_name = "user"

    class Branch(Base):
        class Meta:
            table_name = "branch"

    class Tier(Base):
        class Meta:
            table_name = "tier"

    class Customer(Base):
        class Meta:
            table_name = "customer"

    class AllocationRule(Base):
        branch = pw.ForeignKeyField(Branch, on_delete="CASCADE")
        position = pw.IntegerField()
        region = pw.CharField(max_length=100, default="")
        industry = pw.CharField(max_length=32, default="")
        nature = pw.CharField(max_length=32, default="")
        tier = pw.ForeignKeyField(Tier, null=True, on_delete="CASCADE")
        value_class = pw.CharField(max_length=16, default="")
        created_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        created_at = pw.DateTimeField()

        class Meta:
            indexes = ((("branch", "position"), False),)

    class AllocationRuleManager(Base):
        rule = pw.ForeignKeyField(AllocationRule, on_delete="CASCADE")
        manager = pw.ForeignKeyField(User, on_delete="CASCADE")

        class Meta:
            indexes = ((("rule", "manager"), True),)

    class OwnershipChange(Base):
        customer = pw.ForeignKeyField(Customer, on_delete="CASCADE")
        from_manager = pw.ForeignKeyField(User, null=True, on_delete="SET NULL",
                                          backref="customers_handed_over")
        to_manager = pw.ForeignKeyField(User, null=True, on_delete="SET NULL",
                                        backref="customers_taken_over")
        changed_at = pw.DateTimeField()
        changed_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL",
                                        backref="ownership_changes_made")
        source = pw.CharField(max_length=16)
        # The audit event of a bulk reassignment, which names all its customers.
        reference = pw.CharField(max_length=64, default="")

        class Meta:
            indexes = ((("customer", "changed_at"), False),)

    db.create_tables([AllocationRule, AllocationRuleManager, OwnershipChange])
