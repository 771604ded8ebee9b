"""PostgreSQL: the unique index on the customer code also holds the customer's id.

Search as you type finds a term that many customers hold ("C1", 科技, "bj") by walking
the book in code order and keeping the first SEARCH_COUNT_CAP + 1 holders
(models/customers.py: `search_page`), which needs each customer's id. The index on the
code alone sent that walk to the table for every id; holding the id, the walk reads the
index only. The same one index, so writes pay nothing more.

SQLite: nothing to do; every SQLite index holds the rowid, which is the id.
"""


def migrate(db):
    from models.base import is_sqlite
    if is_sqlite():
        return
    db.execute_sql("DROP INDEX customer_code")
    db.execute_sql("CREATE UNIQUE INDEX customer_code ON customer (code) INCLUDE (id)")
