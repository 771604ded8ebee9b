"""The service requests' clock: each request's branch and open due time kept on the
request itself, and the company's working hours that response times may count in.

`branch_id` mirrors the customer's branch, so a branch's requests are one index range
instead of a join to every request's customer (the list and the compliance page of a
branch manager). `open_due_at` is the due time while the request is open (new or in
progress) and NULL once it is resolved or closed: `status IN (new, in_progress)`
could not use the (status, due_at) index's order, so the compliance page's five most
overdue requests sorted every breached one (about 2.3 ms per request at 100,000
customers); now the count and the first five are one range of one index.

Database triggers keep both, so that every way of writing a request (the bulk demo
build included) or of moving a customer to another branch keeps them right.

`working_hours` holds the company's working days and daily window (one row while set):
a request's due time then counts only those hours.
"""
import peewee as pw
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run

OPEN_DUE = "CASE WHEN {r}.status IN ('new', 'in_progress') THEN {r}.due_at END"
BRANCH = "(SELECT branch_id FROM customer WHERE id = {r}.customer_id)"


def migrate(db):
    from models.base import is_sqlite

    # This step's own snapshot of the new table, never today's models.
    class User(pw.Model):
        class Meta:
            database = db
            table_name = "user"

    class WorkingHours(pw.Model):
        days = pw.CharField(max_length=20)
        starts = pw.IntegerField()
        ends = pw.IntegerField()
        updated_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        updated_at = pw.DateTimeField()

        class Meta:
            database = db
            table_name = "working_hours"

    db.create_tables([WorkingHours])
    migrator = SchemaMigrator.from_database(db)
    run(
        migrator.add_column("service_request", "branch_id", pw.IntegerField(null=True)),
        migrator.add_column("service_request", "open_due_at", pw.DateTimeField(null=True)),
    )
    # Only constants are written into these statements' text.
    db.execute_sql(f"UPDATE service_request SET branch_id = {BRANCH.format(r='service_request')},"  # noqa: S608
                   f" open_due_at = {OPEN_DUE.format(r='service_request')}")
    # Open requests only: the resolved and closed ones, most of them, stay out.
    db.execute_sql("CREATE INDEX service_request_branch_open_due"
                   " ON service_request (branch_id, open_due_at, id)"
                   " WHERE open_due_at IS NOT NULL")
    db.execute_sql("CREATE INDEX service_request_open_due"
                   " ON service_request (open_due_at, id) WHERE open_due_at IS NOT NULL")
    db.execute_sql("CREATE INDEX service_request_branch_received"
                   " ON service_request (branch_id, received_at, id)")
    if is_sqlite():
        kept = (f"UPDATE service_request SET branch_id = {BRANCH.format(r='NEW')},"  # noqa: S608
                f" open_due_at = {OPEN_DUE.format(r='NEW')} WHERE id = NEW.id")
        db.execute_sql(f"CREATE TRIGGER service_request_kept_insert AFTER INSERT"
                       f" ON service_request BEGIN {kept}; END")
        # Whatever the statement wrote into the kept columns, they end up right; the
        # condition ends the recursion (and spares the write when nothing changed).
        db.execute_sql(f"CREATE TRIGGER service_request_kept_update AFTER UPDATE"
                       f" ON service_request WHEN NEW.branch_id IS NOT {BRANCH.format(r='NEW')}"
                       f" OR NEW.open_due_at IS NOT {OPEN_DUE.format(r='NEW')}"
                       f" BEGIN {kept}; END")
        db.execute_sql("CREATE TRIGGER customer_service_request_branch AFTER UPDATE OF branch_id"
                       " ON customer WHEN OLD.branch_id IS NOT NEW.branch_id BEGIN"
                       " UPDATE service_request SET branch_id = NEW.branch_id"
                       " WHERE customer_id = NEW.id; END")
    else:
        db.execute_sql(f"""
            CREATE FUNCTION service_request_kept() RETURNS trigger AS $$
            BEGIN
              NEW.branch_id := {BRANCH.format(r='NEW')};
              NEW.open_due_at := {OPEN_DUE.format(r='NEW')};
              RETURN NEW;
            END $$ LANGUAGE plpgsql""")
        db.execute_sql("CREATE TRIGGER service_request_kept BEFORE INSERT OR UPDATE"
                       " ON service_request FOR EACH ROW EXECUTE FUNCTION service_request_kept()")
        db.execute_sql("""
            CREATE FUNCTION customer_service_request_branch() RETURNS trigger AS $$
            BEGIN
              UPDATE service_request SET branch_id = NEW.branch_id WHERE customer_id = NEW.id;
              RETURN NULL;
            END $$ LANGUAGE plpgsql""")
        db.execute_sql("CREATE TRIGGER customer_service_request_branch AFTER UPDATE OF branch_id"
                       " ON customer FOR EACH ROW WHEN (OLD.branch_id IS DISTINCT FROM"
                       " NEW.branch_id) EXECUTE FUNCTION customer_service_request_branch()")
