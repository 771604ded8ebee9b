"""A customer's sheets, as a branch manager sees them on the customer's page, found by
the customer and its branch in one index.

With an index on each column alone and no statistics, SQLite read the branch's index,
every sheet of the branch over the years (7,000 at 100,000 customers: 0.5 ms), to keep
the few of one customer; with both columns in one index it reads those few.
"""


def migrate(db):
    db.execute_sql("CREATE INDEX assessment_customer_branch ON assessment (customer_id, branch_id)")
