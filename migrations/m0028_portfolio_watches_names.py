"""The portfolio's generation (migration 24) also moves when a customer's code or name
changes: the chart's dots, titled with both, are now kept between requests beside the
counts (models/kept_counts.py), and a renamed customer must not keep its old title.
"""

WATCHED = ("tier_id", "branch_id", "industry", "placed_share", "placed_volume",
           "code", "name")
BUMP = "UPDATE compliance_generation SET generation = generation + 1 WHERE id = 2"


def migrate(db):
    from models.base import is_sqlite
    if is_sqlite():
        changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in WATCHED)
        db.execute_sql("DROP TRIGGER customer_portfolio_generation_update")
        db.execute_sql(f"CREATE TRIGGER customer_portfolio_generation_update AFTER UPDATE"
                       f" ON customer WHEN {changed} BEGIN {BUMP}; END")
    else:
        db.execute_sql("DROP TRIGGER customer_portfolio_generation ON customer")
        db.execute_sql(f"CREATE TRIGGER customer_portfolio_generation AFTER INSERT OR DELETE"
                       f" OR TRUNCATE OR UPDATE OF {', '.join(WATCHED)} ON customer"
                       f" FOR EACH STATEMENT EXECUTE FUNCTION portfolio_generation_bump()")
