"""Tier service policies, approval rules, tier change requests with their steps,
and each customer's last service dates (with its tier, branch and account manager)
kept by triggers on activity and customer, for the compliance lists."""
import peewee as pw

from models.base import is_sqlite, utcnow

NEVER = pw.SQL("DEFAULT '0001-01-01'")


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

    class Branch(Base):
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
        # Copied from the customer when filed: the branch whose manager decides.
        branch = pw.ForeignKeyField(Branch, on_delete="RESTRICT")
        # The pending step and its role while the request is open (None once closed),
        # so that a queue is one indexed table.
        waiting_step = pw.IntegerField(null=True)
        waiting_role = pw.CharField(max_length=32, null=True)
        step_count = pw.IntegerField(default=1)

        class Meta:
            indexes = ((("status", "created_at"), False),
                       (("waiting_role", "branch", "created_at", "requested_by"), False),
                       (("waiting_role", "created_at", "requested_by"), False))

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
        # Mirrors of the customer's columns, kept by triggers, so that the lists need
        # no join to scope and filter.
        tier = pw.IntegerField(null=True, column_name="tier_id")
        branch = pw.IntegerField(null=True, column_name="branch_id")
        account_manager = pw.IntegerField(null=True, column_name="account_manager_id")
        # 0001-01-01 when none was logged: older than any due date, and indexable.
        last_contact_on = pw.DateField(constraints=[NEVER])
        last_visit_on = pw.DateField(constraints=[NEVER])
        last_analysis_on = pw.DateField(constraints=[NEVER])

        class Meta:
            indexes = (
                (("tier", "last_contact_on", "branch", "account_manager", "last_visit_on",
                  "last_analysis_on"), False),
                (("tier", "last_visit_on", "branch", "account_manager"), False),
                (("tier", "last_analysis_on", "branch", "account_manager"), False),
                (("branch", "tier", "last_contact_on"), False),
                (("branch", "tier", "last_visit_on"), False),
                (("branch", "tier", "last_analysis_on"), False),
                (("account_manager",), False),
            )

    db.create_tables([TierPolicy, ApprovalRule, TierChangeRequest, ApprovalStep, ServiceStatus])
    # One open request per customer, held by the database as well as the model.
    db.execute_sql("CREATE UNIQUE INDEX tier_change_request_one_open "
                   "ON tier_change_request (customer_id) WHERE status = 'open'")
    db.execute_sql("CREATE INDEX activity_customer_kind_date "
                   "ON activity (customer_id, kind, occurred_on)")

    never = "'0001-01-01'"
    recompute = """
        UPDATE service_status SET
          last_contact_on = COALESCE((SELECT MAX(occurred_on) FROM activity
              WHERE customer_id = {c} AND kind IN ('call', 'visit', 'email')), {never}),
          last_visit_on = COALESCE((SELECT MAX(occurred_on) FROM activity
              WHERE customer_id = {c} AND kind = 'visit'), {never}),
          last_analysis_on = COALESCE((SELECT MAX(occurred_on) FROM activity
              WHERE customer_id = {c} AND kind = 'sales_analysis'), {never})
        WHERE customer_id = {c}"""
    mirror = """
        UPDATE service_status SET tier_id = {r}.tier_id, branch_id = {r}.branch_id,
          account_manager_id = {r}.account_manager_id WHERE customer_id = {r}.id"""
    add = """
        INSERT INTO service_status (customer_id, tier_id, branch_id, account_manager_id)
        VALUES ({r}.id, {r}.tier_id, {r}.branch_id, {r}.account_manager_id)"""
    if is_sqlite():
        for event, ref in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            extra = ""
            if event == "UPDATE":  # an activity moved to another customer
                extra = recompute.format(c="OLD.customer_id", never=never) + ";"
            db.execute_sql(f"""
                CREATE TRIGGER activity_service_{event.lower()} AFTER {event} ON activity
                BEGIN
                  {recompute.format(c=f"{ref}.customer_id", never=never)};
                  {extra}
                END""")
        db.execute_sql(f"""
            CREATE TRIGGER customer_service_insert AFTER INSERT ON customer
            BEGIN {add.format(r="NEW")}; END""")
        db.execute_sql(f"""
            CREATE TRIGGER customer_service_update
            AFTER UPDATE OF tier_id, branch_id, account_manager_id ON customer
            BEGIN {mirror.format(r="NEW")}; END""")
    else:
        db.execute_sql(f"""
            CREATE FUNCTION activity_service_status() RETURNS trigger AS $$
            BEGIN
              IF TG_OP IN ('UPDATE', 'DELETE') THEN
                {recompute.format(c="OLD.customer_id", never=never)};
              END IF;
              IF TG_OP IN ('INSERT', 'UPDATE') THEN
                {recompute.format(c="NEW.customer_id", never=never)};
              END IF;
              RETURN NULL;
            END $$ LANGUAGE plpgsql""")
        db.execute_sql("CREATE TRIGGER activity_service_status AFTER INSERT OR UPDATE OR DELETE "
                       "ON activity FOR EACH ROW EXECUTE FUNCTION activity_service_status()")
        db.execute_sql(f"""
            CREATE FUNCTION customer_service_status() RETURNS trigger AS $$
            BEGIN
              IF TG_OP = 'INSERT' THEN
                {add.format(r="NEW")};
              ELSIF NEW.tier_id IS DISTINCT FROM OLD.tier_id
                  OR NEW.branch_id IS DISTINCT FROM OLD.branch_id
                  OR NEW.account_manager_id IS DISTINCT FROM OLD.account_manager_id THEN
                {mirror.format(r="NEW")};
              END IF;
              RETURN NULL;
            END $$ LANGUAGE plpgsql""")
        db.execute_sql("CREATE TRIGGER customer_service_status AFTER INSERT OR UPDATE "
                       "ON customer FOR EACH ROW EXECUTE FUNCTION customer_service_status()")
    # The customers there are now.
    db.execute_sql("""
        INSERT INTO service_status (customer_id, tier_id, branch_id, account_manager_id,
                                    last_contact_on, last_visit_on, last_analysis_on)
        SELECT c.id, c.tier_id, c.branch_id, c.account_manager_id,
          COALESCE((SELECT MAX(occurred_on) FROM activity a WHERE a.customer_id = c.id
             AND a.kind IN ('call', 'visit', 'email')), '0001-01-01'),
          COALESCE((SELECT MAX(occurred_on) FROM activity a WHERE a.customer_id = c.id
             AND a.kind = 'visit'), '0001-01-01'),
          COALESCE((SELECT MAX(occurred_on) FROM activity a WHERE a.customer_id = c.id
             AND a.kind = 'sales_analysis'), '0001-01-01')
        FROM customer c""")
