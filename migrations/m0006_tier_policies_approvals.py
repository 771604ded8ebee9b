"""Tier service policies, approval rules, tier change requests with their steps,
and each customer's last service dates kept by triggers for the compliance lists."""
import peewee as pw

from models.base import is_sqlite, utcnow


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

    class GradingCycle(Base):
        pass

    class Assessment(Base):
        pass

    class TierPolicy(Base):
        tier = pw.ForeignKeyField(Tier, on_delete="CASCADE")
        version = pw.IntegerField()
        effective_on = pw.DateField()
        contact_days = pw.IntegerField(null=True)
        visit_days = pw.IntegerField(null=True)
        analysis_days = pw.IntegerField(null=True)
        response_hours = pw.IntegerField(null=True)
        holiday_greetings = pw.BooleanField(default=False)
        dedicated_manager = pw.BooleanField(default=False)
        production_priority = pw.CharField(max_length=16, default="normal")
        credit_terms = pw.CharField(max_length=200, default="")
        notes = pw.TextField(default="")
        created_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        created_at = pw.DateTimeField(default=utcnow)

        class Meta:
            indexes = ((("tier", "version"), True), (("tier", "effective_on"), False))

    class ApprovalRule(Base):
        key = pw.CharField(max_length=32, unique=True)
        target_tier = pw.ForeignKeyField(Tier, null=True, on_delete="CASCADE")
        direction = pw.CharField(max_length=8, default="")
        roles_text = pw.CharField(max_length=255)
        updated_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        updated_at = pw.DateTimeField(default=utcnow)

    class TierChangeRequest(Base):
        customer = pw.ForeignKeyField(Customer, on_delete="CASCADE")
        from_tier = pw.ForeignKeyField(Tier, null=True, on_delete="RESTRICT")
        to_tier = pw.ForeignKeyField(Tier, on_delete="RESTRICT")
        source = pw.CharField(max_length=16)
        reason = pw.TextField(default="")
        cycle = pw.ForeignKeyField(GradingCycle, null=True, on_delete="SET NULL")
        assessment = pw.ForeignKeyField(Assessment, null=True, on_delete="SET NULL")
        effective_on = pw.DateField()
        status = pw.CharField(max_length=16, default="open")
        requested_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        created_at = pw.DateTimeField(default=utcnow)
        closed_at = pw.DateTimeField(null=True)
        closing_comment = pw.TextField(default="")

        class Meta:
            indexes = ((("status", "created_at"), False),)

    class ApprovalStep(Base):
        request = pw.ForeignKeyField(TierChangeRequest, on_delete="CASCADE")
        position = pw.IntegerField()
        role = pw.CharField(max_length=32)
        # waiting (an earlier step is open), pending (this one is up), approved,
        # rejected, cancelled (the request ended before it came up).
        status = pw.CharField(max_length=16)
        decided_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        decided_at = pw.DateTimeField(null=True)
        comment = pw.TextField(default="")

        class Meta:
            indexes = ((("request", "position"), True), (("status", "role"), False))

    class ServiceStatus(Base):
        customer = pw.ForeignKeyField(Customer, primary_key=True, on_delete="CASCADE")
        last_contact_on = pw.DateField(null=True)
        last_visit_on = pw.DateField(null=True)
        last_analysis_on = pw.DateField(null=True)

    db.create_tables([TierPolicy, ApprovalRule, TierChangeRequest, ApprovalStep, ServiceStatus])
    # One open request per customer, held by the database as well as the model.
    db.execute_sql("CREATE UNIQUE INDEX tier_change_request_one_open "
                   "ON tier_change_request (customer_id) WHERE status = 'open'")
    db.execute_sql("CREATE INDEX activity_customer_kind_date "
                   "ON activity (customer_id, kind, occurred_on)")

    recompute = """
        UPDATE service_status SET
          last_contact_on = (SELECT MAX(occurred_on) FROM activity
                             WHERE customer_id = {c} AND kind IN ('call', 'visit', 'email')),
          last_visit_on = (SELECT MAX(occurred_on) FROM activity
                           WHERE customer_id = {c} AND kind = 'visit'),
          last_analysis_on = (SELECT MAX(occurred_on) FROM activity
                              WHERE customer_id = {c} AND kind = 'sales_analysis')
        WHERE customer_id = {c}"""
    upsert = ("INSERT INTO service_status (customer_id) VALUES ({c}) "
              "ON CONFLICT (customer_id) DO NOTHING")
    if is_sqlite():
        upsert = "INSERT OR IGNORE INTO service_status (customer_id) VALUES ({c})"
        for event, ref in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            extra = ""
            if event == "UPDATE":  # an activity moved to another customer
                extra = recompute.format(c="OLD.customer_id") + ";"
            db.execute_sql(f"""
                CREATE TRIGGER activity_service_{event.lower()} AFTER {event} ON activity
                BEGIN
                  {upsert.format(c=f"{ref}.customer_id")};
                  {recompute.format(c=f"{ref}.customer_id")};
                  {extra}
                END""")
    else:
        db.execute_sql(f"""
            CREATE FUNCTION activity_service_status() RETURNS trigger AS $$
            BEGIN
              IF TG_OP IN ('UPDATE', 'DELETE') THEN
                {upsert.format(c="OLD.customer_id")};
                {recompute.format(c="OLD.customer_id")};
              END IF;
              IF TG_OP IN ('INSERT', 'UPDATE') THEN
                {upsert.format(c="NEW.customer_id")};
                {recompute.format(c="NEW.customer_id")};
              END IF;
              RETURN NULL;
            END $$ LANGUAGE plpgsql""")
        db.execute_sql("CREATE TRIGGER activity_service_status AFTER INSERT OR UPDATE OR DELETE "
                       "ON activity FOR EACH ROW EXECUTE FUNCTION activity_service_status()")
    # The customers there are now.
    db.execute_sql("""
        INSERT INTO service_status (customer_id, last_contact_on, last_visit_on, last_analysis_on)
        SELECT c.id,
          (SELECT MAX(occurred_on) FROM activity a WHERE a.customer_id = c.id
             AND a.kind IN ('call', 'visit', 'email')),
          (SELECT MAX(occurred_on) FROM activity a WHERE a.customer_id = c.id
             AND a.kind = 'visit'),
          (SELECT MAX(occurred_on) FROM activity a WHERE a.customer_id = c.id
             AND a.kind = 'sales_analysis')
        FROM customer c""")
