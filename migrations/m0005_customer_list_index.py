"""An index that lets a branch's customer list come out in code order without sorting."""


def migrate(db):
    db.execute_sql("CREATE INDEX customer_branch_code ON customer (branch_id, code)")
