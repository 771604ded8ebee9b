"""Indexes for the customer list at 20,000 rows.

- The branch's code index widens to cover the search columns, so counting a branch's
  matches for search-as-you-type reads the index, not the table; a second one covers
  the same columns for searches across every branch.
- Tier and kind, the list's most used filters, get an index in code order, so "all B
  customers" counts from the index and pages without sorting.
"""


def migrate(db):
    db.execute_sql("DROP INDEX customer_branch_code")
    db.execute_sql("CREATE INDEX customer_branch_search ON customer "
                   "(branch_id, code, name, name_initials)")
    db.execute_sql("CREATE INDEX customer_search ON customer (code, name, name_initials)")
    db.execute_sql("CREATE INDEX customer_tier_kind_code ON customer (tier_id, kind, code)")
