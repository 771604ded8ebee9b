"""How long a bulk approval of 500 tier change requests takes, at the benchmark's size.

Serves from a fresh copy of the benchmark's cached database (20,000 customers and 5,000
open tier change requests; `make bench` builds it) and times, through the app's own
POST /approvals/decide (form, CSRF off, one comment, the redirect):

  1. the sales director approving 500 second steps (each request moves on to the
     general manager);
  2. the general manager approving those 500 last steps (each moves the customer's
     tier and writes its history).

Each is one transaction with a savepoint per request and an audit row per decision.
It prints wall-clock and CPU seconds and the rate. A report, not a test.

    .venv/bin/python scripts/approval_timing.py
    .venv/bin/python scripts/approval_timing.py --size 200
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts import bench  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=500, help="requests per bulk action")
    args = parser.parse_args(argv)
    url, _seconds = bench.prepare_sqlite(20000, bench.REPS_PER_BRANCH, rebuild=False)
    from app import create_app
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "timing", "WTF_CSRF_ENABLED": False})
    from models import ApprovalStep, Customer, TierChangeRequest, TierHistory, User, db

    with app.app_context():
        director = User.get(User.username == "director")
        waiting = [r.waiting_step for r in TierChangeRequest.select(
            TierChangeRequest.waiting_step).where(
            TierChangeRequest.waiting_role == "sales_director",
            TierChangeRequest.requested_by != director.id).order_by(
            TierChangeRequest.created_at).limit(args.size)]
        requests = [s.request_id for s in ApprovalStep.select(ApprovalStep.request).where(
            ApprovalStep.id.in_(waiting))]
        history_before = TierHistory.select().count()
    db.close()
    if len(waiting) < args.size:
        raise SystemExit(f"only {len(waiting)} requests wait for the sales director")
    print(f"{len(waiting)} requests at the sales director's step, database {url}")
    for username, label in (("director", "sales director: 500 middle steps"),
                            ("gm", "general manager: 500 last steps")):
        client = app.test_client()
        client.post("/login", data={"username": username, "password": "demo2027"})
        with app.app_context():
            steps = [r.waiting_step for r in TierChangeRequest.select(
                TierChangeRequest.waiting_step).where(TierChangeRequest.id.in_(requests))]
        db.close()
        wall, cpu = time.perf_counter(), time.process_time()
        response = client.post("/approvals/decide", data={
            "steps": steps, "decision": "approve", "comment": "批量审批"})
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        page = client.get("/approvals").get_data(as_text=True)
        flashes = re.findall(r'class="flash flash-(\w+)">([^<]*)<', page)
        assert response.status_code == 303, response.status_code
        print(f"  {label.replace('500', str(len(steps)))}: {wall:.2f} s wall, {cpu:.2f} s CPU, "
              f"{len(steps) / wall:.0f} per second; {flashes[:2]}")
        db.close()
    with app.app_context():
        moved = TierHistory.select().count() - history_before
        approved = TierChangeRequest.select().where(TierChangeRequest.id.in_(requests),
                                                    TierChangeRequest.status == "approved")
        print(f"  approved {approved.count()} requests, {moved} tier history rows written, "
              f"{Customer.select().count()} customers")


if __name__ == "__main__":
    main()
