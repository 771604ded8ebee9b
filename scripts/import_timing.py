"""How long the customer import and export take at 20,000 customers.

Builds a 20,000-row .xlsx of believable customers (a title row, Chinese headers,
three years of figures, amounts partly as text in 万元 with thousands
separators, dates partly as Excel serials and partly as 2026年3月25日), then on a
fresh database (SQLite, and PostgreSQL when a URL is given) times:

  1. preview_import + apply_import of the file into an empty customer book
     (20,000 creates, 60,000 yearly figures);
  2. the same file again (20,000 unchanged rows);
  3. a file that changes every customer (this year's figures, one name in ten);
  4. export_customers of all 20,000 as .xlsx and as .csv.

It prints wall-clock and CPU seconds per step and the process's peak resident
memory so far. With --memory it traces Python's allocations instead and prints
each step's own peak (tracing slows everything down: take the times from a run
without it). It is a report, not a test: it fails only when something breaks.
The machine may be busy: CPU seconds are the steadier figure.

    .venv/bin/python scripts/import_timing.py
    .venv/bin/python scripts/import_timing.py --memory
    .venv/bin/python scripts/import_timing.py --postgres postgresql://postgres@127.0.0.1:5432/test
"""
from __future__ import annotations

import argparse
import datetime
import random
import resource
import sys
import tempfile
import time
import tracemalloc
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BRANCHES = 12
REPS_PER_BRANCH = 24  # as `make bench`: 7 + 12 * 25 = 307 users
YEARS = (2024, 2025, 2026)


def peak_mb():
    """The process's peak resident memory so far, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    def __init__(self, label):
        self.label = label

    def __enter__(self):
        if tracemalloc.is_tracing():
            tracemalloc.reset_peak()
            self.base = tracemalloc.get_traced_memory()[0]
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        if exc[0] is not None:
            return
        if tracemalloc.is_tracing():
            memory = f"step's peak {(tracemalloc.get_traced_memory()[1] - self.base) / 1e6:6.0f} MB"
        else:
            memory = f"peak RSS {peak_mb():6.0f} MB"
        print(f"  {self.label:<44} {self.wall:7.2f} s wall {self.cpu:7.2f} s CPU   {memory}",
              flush=True)


def build_file(rows, seed=2027, change=False):
    """An .xlsx (bytes) of `rows` customers of the demo company's branches and reps."""
    from models import Branch, User
    from services.demo import NATURE_WEIGHTS, TRADES, WORDS
    from services.spreadsheets import write_xlsx

    rng = random.Random(seed)
    branches = list(Branch.select().order_by(Branch.code))
    reps = {}
    for user in User.with_role("sales_rep"):
        reps.setdefault(user.branch_id, []).append(user)
    nature_zh = {"state_owned": "国有企业", "joint_stock": "股份公司", "private": "民营企业",
                 "foreign": "外资企业", "government": "政府机关", "individual": "个人"}
    industry_zh = {"manufacturing": "制造业", "construction": "建筑业", "energy": "能源",
                   "transport": "交通物流", "retail": "批发零售", "finance": "金融",
                   "it": "信息技术", "healthcare": "医疗卫生", "education": "教育",
                   "agriculture": "农业", "real_estate": "房地产", "public": "公共管理"}
    header = ["客户编号", "客户名称", "客户类型", "企业性质", "所属行业", "区域", "所属分公司",
              "客户经理", "合作开始日期", "暂定等级"]
    header += [f"{year}年{figure}" for year in YEARS
               for figure in ("销售额", "利润", "回款率", "信用天数")]
    table = [header]
    for n in range(1, rows + 1):
        branch = branches[n % len(branches)]
        nature = rng.choices([w[0] for w in NATURE_WEIGHTS], [w[1] for w in NATURE_WEIGHTS])[0]
        industry = rng.choice(list(TRADES))
        name = f"{branch.name[:2]}{rng.choice(WORDS)}{rng.choice(TRADES[industry])}有限公司{n}"
        if change and n % 10 == 0:
            name += "（新）"
        since = datetime.date(2012, 1, 1) + datetime.timedelta(days=rng.randint(0, 5000))
        # Half the dates as Excel serials (date cells), half as Chinese text.
        since_cell = since if n % 2 else f"{since.year}年{since.month}月{since.day}日"
        rep = rng.choice(reps[branch.id])
        # Mostly the rep's name, as people write it; their username when the name is taken.
        names = [r.display_name for r in reps[branch.id]]
        manager = rep.display_name if names.count(rep.display_name) == 1 else rep.username
        row = [f"C{n:06d}", name, "已成交", nature_zh[nature], industry_zh[industry],
               branch.region, branch.name, manager, since_cell, "否" if n % 7 else "是"]
        base = rng.lognormvariate(15.2, 1.1)
        for offset, year in enumerate(YEARS):
            sales = Decimal(base * (1.1 ** offset) * (1.1 if change and year == 2026 else 1))
            sales = sales.quantize(Decimal("0.01"))
            profit = (sales * Decimal("0.12")).quantize(Decimal("0.01"))
            # A third of the amounts as text: "1,234,567.89" or "123.4568万元".
            if n % 3 == 0:
                sales_cell = f"{sales:,}"
            elif n % 3 == 1:
                sales_cell = f"{(sales / 10000).quantize(Decimal('0.000001'))}万元"
            else:
                sales_cell = sales
            row += [sales_cell, profit, f"{rng.randint(60, 100)}%", rng.choice([0, 30, 60, 90])]
        table.append(row)
    # The first row becomes the title above the header, as branches' lists have.
    return write_xlsx(["2026年客户名单"], table, "客户")


def run(database_url, rows):
    from flask_babel import force_locale

    from app import create_app
    from models import Customer, CustomerYear, db
    from models.schema import upgrade
    from services.customer_io import apply_import, export_customers, preview_import, save_preview
    from services.demo import build_demo

    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "timing"})
    with app.test_request_context(), force_locale("zh_CN"):
        upgrade()
        build_demo(customers=0, branches=BRANCHES, reps_per_branch=REPS_PER_BRANCH)
        from models import User
        admin = User.get(User.username == "admin")
        with Timer("build the test files (not the app's work)"):
            first = build_file(rows)
            changed = build_file(rows, change=True)
        print(f"  file: {len(first) / 1e6:.1f} MB .xlsx, {rows:,} rows")
        for label, data in (("new customers", first), ("same file again", first),
                            ("every customer changed", changed)):
            with Timer(f"preview: {label}"):
                preview = preview_import("客户名单.xlsx", data, admin)
            counts = preview.counts
            assert not counts.error, [r.errors for r in preview.rows if r.errors][:3]
            with Timer("  save the preview"):
                batch = save_preview(preview, admin)
            print(f"    {counts.as_dict()}  payload {len(batch.payload) / 1e6:.1f} MB")
            with Timer("  confirm (apply_import)"):
                result = apply_import(batch, admin)
            print(f"    applied {result}")
        assert Customer.select().count() == rows
        assert CustomerYear.select().count() == rows * len(YEARS)
        query = Customer.select().order_by(Customer.code)
        for fmt in ("xlsx", "csv"):
            with Timer(f"export {fmt}"):
                data, _mimetype, _name = export_customers(query, fmt)
            print(f"    {len(data) / 1e6:.1f} MB")
        with Timer("preview of the exported .csv"):
            preview = preview_import("export.csv", data, admin)
        assert preview.counts.unchanged == rows, preview.counts
    db.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--postgres", metavar="URL",
                        help="also time on this PostgreSQL database (in a schema of its own)")
    parser.add_argument("--memory", action="store_true",
                        help="trace allocations: each step's peak (slows every step down)")
    args = parser.parse_args()
    if args.memory:
        tracemalloc.start()
    print(f"Peak RSS at start: {peak_mb():.0f} MB")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"SQLite ({args.rows:,} rows):")
        run(f"sqlite:///{tmp}/timing.db", args.rows)
    if args.postgres:
        import psycopg2

        schema = f"import_timing_{uuid.uuid4().hex[:8]}"
        conn = psycopg2.connect(args.postgres)
        conn.autocommit = True
        conn.cursor().execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in args.postgres else "?"
        try:
            print(f"PostgreSQL ({args.rows:,} rows):")
            run(f"{args.postgres}{sep}options=-csearch_path%3D{schema}", args.rows)
        finally:
            conn.cursor().execute(f"DROP SCHEMA {schema} CASCADE")
            conn.close()


if __name__ == "__main__":
    main()
