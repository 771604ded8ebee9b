"""How long a bulk reassignment of 5,000 customers takes (target: 5 s), and whether the
audit holds every change.

A branch of 25,000 customers: a rep who leaves holds 5,000 of them, five others hold
the rest; the branch's rules give its A customers to one rep and everyone else to a
pool of four. Through the app's own pages (test client, CSRF off), a branch manager:

  1. previews "the leaving rep's customers, by the allocation rules"
     (GET /allocation/reassign?...&preview=1);
  2. confirms it (POST /allocation/reassign): the plan read again under lock, 5,000
     customers updated, 5,000 ownership records, one audit event naming every move.

Each step is timed `--rounds` times (each round a different leaving rep) and the
median reported, on SQLite (a file) and, with --postgres, on PostgreSQL in a schema of
its own. Then it checks that the audit event and the ownership records name each
customer's move exactly. A report, not a test.

    .venv/bin/python scripts/allocation_bench.py
    .venv/bin/python scripts/allocation_bench.py --postgres postgresql://postgres@127.0.0.1:5432/test
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_SECONDS = 5.0


def build(app, leaving, size, others=5, rest=10000):
    """The branch, its people and customers, and its rules. Returns the leaving reps."""
    from models import Branch, Customer, Tier, User
    from models.allocation import save_rule
    from services.demo import ensure_reference_data

    with app.test_request_context():
        ensure_reference_data()
        tiers = Tier.in_order()
        branch = Branch.create(code="SH", name="上海分公司", region="上海")
        probe = User(display_name="")
        probe.set_password("demo2027")

        def person(username, roles, name):
            user = User(username=username, display_name=name, branch=branch,
                        password_hash=probe.password_hash)
            user.roles = roles
            user.save()
            return user

        person("bm_sh", ["branch_manager"], "陈经理")
        staying = [person(f"rep_{n}", ["sales_rep"], f"客户经理{n}") for n in range(others)]
        leavers = [person(f"leaver_{n}", ["sales_rep"], f"离职经理{n}") for n in range(leaving)]
        holders = [(rep, size) for rep in leavers] + [(rep, rest // others) for rep in staying]
        rows, n = [], 0
        for rep, count in holders:
            for _ in range(count):
                n += 1
                rows.append(dict(code=f"C{n:06d}", name=f"测试客户{n}有限公司",
                                 name_initials="csk", branch=branch.id, account_manager=rep.id,
                                 tier=tiers[n % len(tiers)].id, industry="manufacturing",
                                 nature="private", region="上海浦东新区"))
        for start in range(0, len(rows), 1000):
            Customer.insert_many(rows[start:start + 1000]).execute()
        save_rule(None, None, branch.id, [staying[0].id], tier=tiers[0].id)
        save_rule(None, None, branch.id, [rep.id for rep in staying[1:]])
        return branch.id, [rep.id for rep in leavers]


def run(url, rounds, size):
    from app import create_app
    from models import AuditEvent, Customer, OwnershipChange, db
    from models.schema import upgrade

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "timing", "WTF_CSRF_ENABLED": False})
    with app.app_context():
        upgrade()
    branch_id, leavers = build(app, rounds, size)
    db.close()
    client = app.test_client()
    client.post("/login", data={"username": "bm_sh", "password": "demo2027"})
    previews, confirms = [], []
    for leaver in leavers:
        choice = {"branch": branch_id, "from_manager": leaver, "tier": "", "industry": "",
                  "value_class": "", "to_manager": ""}
        started = time.perf_counter()
        page = client.get("/allocation/reassign", query_string={**choice, "preview": 1})
        previews.append(time.perf_counter() - started)
        fingerprint = re.search(r'name="fingerprint"[^>]*value="(\w+)"|'
                                r'value="(\w+)"[^>]*name="fingerprint"',
                                page.get_data(as_text=True))
        fingerprint = next(g for g in fingerprint.groups() if g)
        with app.app_context():
            before = dict(Customer.select(Customer.id, Customer.account_manager)
                          .where(Customer.account_manager == leaver).tuples())
        db.close()
        started = time.perf_counter()
        response = client.post("/allocation/reassign", data={**choice, "fingerprint": fingerprint})
        confirms.append(time.perf_counter() - started)
        assert response.status_code == 303, response.status_code
        with app.app_context():
            event = (AuditEvent.select().where(AuditEvent.action == "customers_reassigned")
                     .order_by(AuditEvent.id.desc()).first())
            moves = json.loads(event.after)["moves"]
            after = dict(Customer.select(Customer.id, Customer.account_manager)
                         .where(Customer.id.in_(list(before))).tuples())
            audited = {customer: (old, new) for customer, old, new in moves}
            recorded = {c.customer_id: (c.from_manager_id, c.to_manager_id) for c in
                        OwnershipChange.select().where(OwnershipChange.reference == str(event.id))}
            expected = {customer: (leaver, after[customer]) for customer in before}
            assert len(before) == size and audited == expected and recorded == expected, \
                "the audit does not hold each change"
            assert leaver not in set(after.values())
        db.close()
    preview, confirm = statistics.median(previews), statistics.median(confirms)
    print(f"  preview {preview:.2f} s, confirm {confirm:.2f} s (medians of {rounds}; "
          f"{size:,} customers each; target {TARGET_SECONDS:.0f} s: "
          f"{'met' if preview + confirm <= TARGET_SECONDS else 'MISSED'}); "
          f"audit and ownership records hold all {size:,} moves")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5000, help="customers reassigned")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", metavar="URL",
                        help="also time on this PostgreSQL database (in a schema of its own)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("Bulk reassignment, SQLite:")
        run(f"sqlite:///{tmp}/allocation.db", args.rounds, args.size)
    if args.postgres:
        import psycopg2

        schema = f"allocation_bench_{uuid.uuid4().hex[:8]}"
        conn = psycopg2.connect(args.postgres)
        conn.autocommit = True
        conn.cursor().execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in args.postgres else "?"
        try:
            print("Bulk reassignment, PostgreSQL:")
            run(f"{args.postgres}{sep}options=-csearch_path%3D{schema}", args.rounds, args.size)
        finally:
            conn.cursor().execute(f"DROP SCHEMA {schema} CASCADE")
            conn.close()


if __name__ == "__main__":
    main()
