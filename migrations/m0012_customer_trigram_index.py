"""A trigram index of each customer's code, name and pinyin initials (SQLite).

Search as you type matches any part of the name, which no ordinary index can find:
a term that few customers hold (`bjh`, a name nobody has) made SQLite read the whole
book, ~3 ms at 20,000 customers, before it could say so. An FTS5 trigram table finds
the few customers that contain the term, and the search reads only those
(models/customers.py: `narrow_search`). Triggers keep it in step with every write to
the customer table, imports included.

PostgreSQL has no FTS5 and keeps its plain search.
"""

STATEMENTS = [
    "CREATE VIRTUAL TABLE customer_search_fts USING fts5(code, name, name_initials, "
    "content='customer', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER customer_search_fts_insert AFTER INSERT ON customer BEGIN "
    "INSERT INTO customer_search_fts (rowid, code, name, name_initials) "
    "VALUES (new.id, new.code, new.name, new.name_initials); END",
    "CREATE TRIGGER customer_search_fts_delete AFTER DELETE ON customer BEGIN "
    "INSERT INTO customer_search_fts (customer_search_fts, rowid, code, name, name_initials) "
    "VALUES ('delete', old.id, old.code, old.name, old.name_initials); END",
    "CREATE TRIGGER customer_search_fts_update AFTER UPDATE OF code, name, name_initials "
    "ON customer BEGIN "
    "INSERT INTO customer_search_fts (customer_search_fts, rowid, code, name, name_initials) "
    "VALUES ('delete', old.id, old.code, old.name, old.name_initials); "
    "INSERT INTO customer_search_fts (rowid, code, name, name_initials) "
    "VALUES (new.id, new.code, new.name, new.name_initials); END",
    "INSERT INTO customer_search_fts (customer_search_fts) VALUES ('rebuild')",
]


def migrate(db):
    from models.base import is_sqlite
    if is_sqlite():
        for statement in STATEMENTS:
            db.execute_sql(statement)
