"""What lets search as you type find the few holders of any term without reading the book.

- `customer_search_piece`: every one- and two-character piece of each customer's name,
  and the first one and two characters of its code and pinyin initials, lower-case.
  Migration 12's trigram table needs three characters, so a one- or two-character
  Chinese term that few customers hold (or none) read the whole search index, more of
  it the larger the book; these pieces answer such a term from one index range
  (models/customers.py: `few_holding`). Triggers keep them in step with every write to
  the customer table, imports included, on both databases.
- PostgreSQL: a trigram index (pg_trgm) on the code, name and initials, which the
  planner uses for the search's own ILIKEs when the term has three characters or more:
  without it the search was a sequential scan for a term that few customers hold.
  The extension goes into `public`, where it serves every schema of the database (the
  index names its operator class there); a server without it stops the upgrade here.
"""

# The pieces of the rows of `rows` (a table, or one row as a subquery: columns id, code,
# name, name_initials), once each, as (piece, id). The same text on both databases.
PIECES = """
    SELECT DISTINCT piece, id FROM (
      WITH RECURSIVE n(i) AS (
        SELECT 1 UNION ALL
        SELECT i + 1 FROM n WHERE i < (SELECT MAX(length(name)) FROM {rows} AS r))
      SELECT lower(substr(r.name, n.i, width.w)) AS piece, r.id AS id
        FROM {rows} AS r
        JOIN n ON n.i <= length(r.name)
        CROSS JOIN (SELECT 1 AS w UNION ALL SELECT 2) AS width
       WHERE n.i + width.w - 1 <= length(r.name)
      UNION ALL
      SELECT lower(substr(r.code, 1, width.w)), r.id
        FROM {rows} AS r CROSS JOIN (SELECT 1 AS w UNION ALL SELECT 2) AS width
      UNION ALL
      SELECT lower(substr(r.name_initials, 1, width.w)), r.id
        FROM {rows} AS r CROSS JOIN (SELECT 1 AS w UNION ALL SELECT 2) AS width
    ) AS pieces WHERE piece <> ''"""


def _row(prefix):
    """One row of a trigger (`new` or `old`) as a subquery PIECES can read."""
    return (f"(SELECT {prefix}.id AS id, {prefix}.code AS code, {prefix}.name AS name, "
            f"{prefix}.name_initials AS name_initials)")


def _add(rows):
    return (f"INSERT INTO customer_search_piece (piece, customer_id) "
            f"{PIECES.format(rows=rows)}")


def _remove(row):
    # By the primary key, piece by piece: no second index on customer_id to keep up.
    return (f"DELETE FROM customer_search_piece WHERE customer_id = {row}.id "  # noqa: S608
            f"AND piece IN "
            f"(SELECT piece FROM ({PIECES.format(rows=_row(row))}) AS gone)")


SEARCHED = ("code", "name", "name_initials")


def migrate(db):
    from models.base import is_sqlite
    if is_sqlite():
        db.execute_sql("CREATE TABLE customer_search_piece (piece TEXT NOT NULL, "
                       "customer_id INTEGER NOT NULL, PRIMARY KEY (piece, customer_id)) "
                       "WITHOUT ROWID")
        changed = " OR ".join(f"old.{c} IS NOT new.{c}" for c in SEARCHED)
        db.execute_sql(f"CREATE TRIGGER customer_search_piece_insert AFTER INSERT ON customer "
                       f"BEGIN {_add(_row('new'))}; END")
        db.execute_sql(f"CREATE TRIGGER customer_search_piece_delete AFTER DELETE ON customer "
                       f"BEGIN {_remove('old')}; END")
        db.execute_sql(f"CREATE TRIGGER customer_search_piece_update AFTER UPDATE OF "
                       f"{', '.join(SEARCHED)} ON customer WHEN {changed} "
                       f"BEGIN {_remove('old')}; {_add(_row('new'))}; END")
    else:
        available = db.execute_sql("SELECT 1 FROM pg_available_extensions "
                                   "WHERE name = 'pg_trgm'").fetchone()
        if not available:
            raise RuntimeError("This PostgreSQL server lacks the pg_trgm extension, which "
                               "customer search needs: install the server's contrib "
                               "package (Debian: postgresql-contrib), then upgrade again.")
        db.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
        db.execute_sql("CREATE INDEX customer_search_trigram ON customer USING gin "
                       "(code public.gin_trgm_ops, name public.gin_trgm_ops, "
                       "name_initials public.gin_trgm_ops)")
        db.execute_sql("CREATE TABLE customer_search_piece (piece TEXT NOT NULL, "
                       "customer_id INTEGER NOT NULL, PRIMARY KEY (piece, customer_id))")
        changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in SEARCHED)
        # Inserts once per statement, over all its rows: an import writes thousands of
        # customers in a few statements.
        db.execute_sql(f"""
            CREATE FUNCTION customer_search_pieces_added() RETURNS trigger AS $$
            BEGIN
              {_add('added')};
              RETURN NULL;
            END $$ LANGUAGE plpgsql""")
        db.execute_sql("CREATE TRIGGER customer_search_piece_insert AFTER INSERT ON customer "
                       "REFERENCING NEW TABLE AS added FOR EACH STATEMENT "
                       "EXECUTE FUNCTION customer_search_pieces_added()")
        db.execute_sql(f"""
            CREATE FUNCTION customer_search_pieces_changed() RETURNS trigger AS $$
            BEGIN
              {_remove('OLD')};
              IF TG_OP = 'UPDATE' THEN
                {_add(_row('NEW'))};
              END IF;
              RETURN NULL;
            END $$ LANGUAGE plpgsql""")
        db.execute_sql(f"CREATE TRIGGER customer_search_piece_update AFTER UPDATE OF "
                       f"{', '.join(SEARCHED)} ON customer FOR EACH ROW WHEN ({changed}) "
                       f"EXECUTE FUNCTION customer_search_pieces_changed()")
        db.execute_sql("CREATE TRIGGER customer_search_piece_delete AFTER DELETE ON customer "
                       "FOR EACH ROW EXECUTE FUNCTION customer_search_pieces_changed()")
        # A TRUNCATE runs no row triggers (the tests empty the book so).
        db.execute_sql("""
            CREATE FUNCTION customer_search_pieces_emptied() RETURNS trigger AS $$
            BEGIN
              TRUNCATE customer_search_piece;
              RETURN NULL;
            END $$ LANGUAGE plpgsql""")
        db.execute_sql("CREATE TRIGGER customer_search_piece_truncate AFTER TRUNCATE ON "
                       "customer FOR EACH STATEMENT "
                       "EXECUTE FUNCTION customer_search_pieces_emptied()")
    db.execute_sql(_add("customer"))
