"""Each customer's place in the portfolio kept on the customer: its latest year with both
a share of wallet and an upcoming volume (`placed_year`) and those figures
(`placed_share`, `placed_volume`), filled from the yearly figures. The portfolio page
counts and lists customers from these columns in SQL; it read every customer's years in
Python before (2.8 s for 100,000 customers).

Indexed by volume (the lists show the largest first), within a branch and company-wide,
with the share and the tier, so that counting a book per quadrant and tier reads the
index alone.

Those counts are kept between requests (models/kept_counts.py) under generation 2 of
`compliance_generation`, which triggers here bump on every change to a customer's tier,
branch, industry or place, and on customers added or removed.
"""
import peewee as pw
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run

WATCHED = ("tier_id", "branch_id", "industry", "placed_share", "placed_volume")
BUMP = "UPDATE compliance_generation SET generation = generation + 1 WHERE id = 2"


def migrate(db):
    from models.base import is_sqlite
    migrator = SchemaMigrator.from_database(db)
    run(
        migrator.add_column("customer", "placed_year", pw.IntegerField(null=True)),
        migrator.add_column("customer", "placed_share", pw.DecimalField(
            max_digits=5, decimal_places=2, null=True)),
        migrator.add_column("customer", "placed_volume", pw.DecimalField(
            max_digits=16, decimal_places=2, null=True)),
    )
    db.execute_sql(
        "UPDATE customer SET placed_year = (SELECT MAX(y.year) FROM customer_year y"
        " WHERE y.customer_id = customer.id AND y.share_of_wallet IS NOT NULL"
        " AND y.upcoming_volume IS NOT NULL)")
    db.execute_sql(
        "UPDATE customer SET"
        " placed_share = (SELECT y.share_of_wallet FROM customer_year y"
        " WHERE y.customer_id = customer.id AND y.year = customer.placed_year),"
        " placed_volume = (SELECT y.upcoming_volume FROM customer_year y"
        " WHERE y.customer_id = customer.id AND y.year = customer.placed_year)"
        " WHERE placed_year IS NOT NULL")
    db.execute_sql("CREATE INDEX customer_branch_placed"
                   " ON customer (branch_id, placed_volume, placed_share, tier_id)")
    db.execute_sql("CREATE INDEX customer_placed"
                   " ON customer (placed_volume, placed_share, tier_id)")
    db.execute_sql("INSERT INTO compliance_generation (id, generation) VALUES (2, 1)")
    if is_sqlite():
        changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in WATCHED)
        for event in ("INSERT", "DELETE"):
            db.execute_sql(f"CREATE TRIGGER customer_portfolio_generation_{event.lower()}"
                           f" AFTER {event} ON customer BEGIN {BUMP}; END")
        db.execute_sql(f"CREATE TRIGGER customer_portfolio_generation_update AFTER UPDATE"
                       f" ON customer WHEN {changed} BEGIN {BUMP}; END")
    else:
        # Once per transaction, as migration 17's bump and for its reason.
        db.execute_sql(f"""
            CREATE FUNCTION portfolio_generation_bump() RETURNS trigger AS $$
            BEGIN
              IF current_setting('tierdesk.portfolio_bumped_in', true)
                  IS DISTINCT FROM txid_current()::text THEN
                {BUMP};
                PERFORM set_config('tierdesk.portfolio_bumped_in', txid_current()::text,
                                   true);
              END IF;
              RETURN NULL;
            END $$ LANGUAGE plpgsql""")
        db.execute_sql(f"CREATE TRIGGER customer_portfolio_generation AFTER INSERT OR DELETE"
                       f" OR TRUNCATE OR UPDATE OF {', '.join(WATCHED)} ON customer"
                       f" FOR EACH STATEMENT EXECUTE FUNCTION portfolio_generation_bump()")
