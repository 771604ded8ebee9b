"""Service requests (服务请求): a customer's complaint, enquiry or after-sales request,
its owner and status, the due time its tier's policy promised when it came in, its
resolution, the breach notice's mark, and the follow-up call of a resolved complaint
with the customer's satisfaction (1–5)."""
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

    class Customer(Base):
        class Meta:
            table_name = "customer"

    class Tier(Base):
        class Meta:
            table_name = "tier"

    class ServiceRequest(Base):
        customer = pw.ForeignKeyField(Customer, on_delete="CASCADE")
        kind = pw.CharField(max_length=16)
        channel = pw.CharField(max_length=16)
        description = pw.TextField()
        received_at = pw.DateTimeField()
        owner = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        status = pw.CharField(max_length=16, default="new")
        resolution = pw.TextField(default="")
        tier = pw.ForeignKeyField(Tier, null=True, on_delete="SET NULL")
        response_hours = pw.IntegerField(null=True)
        warn_at = pw.DateTimeField(null=True)
        due_at = pw.DateTimeField(null=True)
        resolved_at = pw.DateTimeField(null=True)
        closed_at = pw.DateTimeField(null=True)
        breach_notified_at = pw.DateTimeField(null=True)
        follow_up_due_at = pw.DateTimeField(null=True)
        followed_up_at = pw.DateTimeField(null=True)
        followed_up_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL",
                                            backref="follow_ups")
        satisfaction = pw.IntegerField(null=True)
        follow_up_note = pw.TextField(default="")
        created_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL",
                                        backref="service_requests_logged")
        created_at = pw.DateTimeField()
        updated_at = pw.DateTimeField()

        class Meta:
            indexes = ((("status", "due_at"), False), (("customer", "received_at"), False),
                       (("followed_up_at",), False), (("received_at",), False))

    db.create_tables([ServiceRequest])
