"""Overdue counts kept between requests, and the generation that tells when they went stale.

Counting who is overdue reads one index entry per overdue customer: the company-wide
compliance page read every overdue customer of the company on each request (~18x the
bench floor at 100,000 customers on PostgreSQL). `overdue_count_cache` keeps each count
under a key of everything the count depends on besides the table (the cut-off date per
kind and tier, the scope, the grouping: models/compliance.py), with the generation of
`service_status` it was counted at. `service_status` is the only table the counts read,
and triggers here bump `compliance_generation` on every change to it; service_status
itself follows activities and customers (migration 6). A new policy or a new day moves
the cut-offs, hence the key.
"""

WATCHED = ("tier_id", "branch_id", "account_manager_id", "last_contact_on", "last_visit_on",
           "last_analysis_on")
BUMP = "UPDATE compliance_generation SET generation = generation + 1 WHERE id = 1"


def migrate(db):
    from models.base import is_sqlite
    db.execute_sql("CREATE TABLE compliance_generation (id INTEGER PRIMARY KEY, "
                   "generation BIGINT NOT NULL)")
    db.execute_sql("INSERT INTO compliance_generation (id, generation) VALUES (1, 1)")
    db.execute_sql("CREATE TABLE overdue_count_cache (key VARCHAR(64) PRIMARY KEY, "
                   "generation BIGINT NOT NULL, counts TEXT NOT NULL)")
    if is_sqlite():
        changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in WATCHED)
        db.execute_sql(f"CREATE TRIGGER service_status_generation_insert AFTER INSERT ON "
                       f"service_status BEGIN {BUMP}; END")
        db.execute_sql(f"CREATE TRIGGER service_status_generation_delete AFTER DELETE ON "
                       f"service_status BEGIN {BUMP}; END")
        db.execute_sql(f"CREATE TRIGGER service_status_generation_update AFTER UPDATE ON "
                       f"service_status WHEN {changed} BEGIN {BUMP}; END")
    else:
        # Once per transaction: every row a bulk write touches runs its own statement on
        # service_status (migration 6's row triggers), and updating the one generation
        # row once per customer in one transaction grew a chain of row versions that
        # each update walked (a 100,000-customer demo build went from 3 to 10+ minutes).
        # The generation is read before counting and the bump shows at commit, so one
        # bump per transaction is enough.
        db.execute_sql(f"""
            CREATE FUNCTION compliance_generation_bump() RETURNS trigger AS $$
            BEGIN
              IF current_setting('tierdesk.generation_bumped_in', true)
                  IS DISTINCT FROM txid_current()::text THEN
                {BUMP};
                PERFORM set_config('tierdesk.generation_bumped_in', txid_current()::text,
                                   true);
              END IF;
              RETURN NULL;
            END $$ LANGUAGE plpgsql""")
        db.execute_sql("CREATE TRIGGER service_status_generation AFTER INSERT OR UPDATE "
                       "OR DELETE OR TRUNCATE ON service_status FOR EACH STATEMENT "
                       "EXECUTE FUNCTION compliance_generation_bump()")
