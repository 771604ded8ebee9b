"""Notice benchmark (issue 20): what writing notices adds to the changes that write
them, and how fast the worker delivers them, measured in one run.

    .venv/bin/python scripts/notice_bench.py            # called by `make bench`
    .venv/bin/python scripts/notice_bench.py --quick    # small sizes

It builds the demo company (SQLite file, in a temporary directory) with a group robot
per branch posting to a local HTTP receiver that answers as WeCom does, and a local
SMTP server (aiosmtpd), and prints:

- approving a tier change request with notices and without them (every recipient's
  channels off, so notify() returns before writing): a first step of three, which
  tells the next decider, and a last step, which moves the tier and tells the
  requester and the account manager; medians of rounds interleaved so machine noise
  hits both alike (goal: at most 1.2×);
- moving a cycle of 1,000 customers into preliminary grading (初评), which creates its
  sheets and tells the branch managers, with and without notices, the same way
  (goal: at most 1.2×);
- delivery: N notices in the outbox, one deliver_notice job each, run by a real huey
  consumer (worker.py) with 2 worker threads, to the robots' receiver and to the SMTP
  server: notices per second from the first arrival to the last, and whether each
  arrived exactly once.

A report, not a test: it exits non-zero only when something breaks (a notice lost or
delivered twice, notices written with the channels off). Results also go to
bench-results/notices.json.
"""
import argparse
import collections
import email
import email.policy
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
PUBLIC_URL = "https://tierdesk.example"
MARKER = re.compile(r"bench-(\w+)-(\d+)")


class Broken(Exception):
    """Something broke: the figures are not worth reading."""


# --- Receivers ---------------------------------------------------------------------

class Arrivals:
    """The bench markers the receivers saw, with the time each arrived."""

    def __init__(self):
        self.lock, self.seen = threading.Lock(), []

    def record(self, text):
        now = time.perf_counter()
        with self.lock:
            self.seen += [(m.group(0), now) for m in MARKER.finditer(text)][:1]

    def of(self, tag):
        with self.lock:
            return [(marker, at) for marker, at in self.seen if f"-{tag}-" in marker]


class Robot(BaseHTTPRequestHandler):
    """A robot platform's webhook: answers as WeCom does."""

    def do_POST(self):  # noqa: N802 — http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.arrivals.record(body.decode(errors="replace"))
        data = b'{"errcode":0,"errmsg":"ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Mailbox:
    def __init__(self, arrivals):
        self.arrivals = arrivals

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 — aiosmtpd's name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.arrivals.record(str(message["Subject"]))
        return "250 Message accepted"


# --- The company ---------------------------------------------------------------------

def build(app, customers, robot_url):
    """The demo company, and a WeCom robot per branch posting to the local receiver."""
    from models import Branch, User
    from models.notices import save_robot
    from models.schema import upgrade
    from services.demo import build_demo

    with app.test_request_context():
        upgrade()
        build_demo(customers=customers, funnel=False)
        admin = User.get(User.username == "admin")
        for branch in Branch.select():
            save_robot(branch, admin, "wecom", f"{robot_url}/wecom?key=branch{branch.id}")


def set_notices(on, kinds):
    """Notices on (everyone's defaults) or off (everyone's channels for `kinds` off)."""
    from models import NoticePreference, User
    NoticePreference.delete().execute()
    if not on:
        NoticePreference.insert_many([dict(user=u, kind=k, channels="off")
                                      for (u,) in User.select(User.id).tuples()
                                      for k in kinds]).execute()


def _timed(fn):
    """(wall, CPU) seconds of fn()."""
    started, cpu_started = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - started, time.process_time() - cpu_started


def _check_written(label, on, written):
    if on and not written:
        raise Broken(f"{label}: no notice written with notices on")
    if not on and written:
        raise Broken(f"{label}: {written} notices written with every channel off")


def interleaved(label, rounds, tasks, kinds):
    """Run `tasks[on]` (callables, one per round and a warm-up) alternately with notices
    on and off, the first condition swapping each round; returns the median seconds
    of each and their ratio (and the ratio of CPU times, which another process's load
    moves less)."""
    from models import Notice
    times, cpu = {True: [], False: []}, {True: [], False: []}
    for n in range(rounds + 1):
        for on in ((True, False) if n % 2 else (False, True)):
            set_notices(on, kinds)
            before = Notice.select().count()
            seconds, cpu_seconds = _timed(tasks[on].pop())
            _check_written(label, on, Notice.select().count() - before)
            if n:  # the first round warms up
                times[on].append(seconds)
                cpu[on].append(cpu_seconds)
    on, off = statistics.median(times[True]), statistics.median(times[False])
    return {"with_ms": on * 1000, "without_ms": off * 1000, "ratio": on / off,
            "cpu_ratio": statistics.median(cpu[True]) / statistics.median(cpu[False]),
            "rounds": rounds}


# --- 1. Approving --------------------------------------------------------------------

APPROVAL_KINDS = ("approval_waiting", "request_decided", "tier_changed")


def measure_approvals(rounds):
    """A first step of three (a promotion to the top tier filed by the account manager:
    the branch manager approves and the sales director hears it waits), and a last
    step (a change filed by the branch manager, whose own step goes to the sales
    director: approving it moves the tier and tells the branch manager and the account
    manager). One fresh request per round and condition, all filed first."""
    from models import Customer, Tier, TierChangeRequest, User
    from models.approvals import decide, file_request

    tiers = list(Tier.ordered())
    top, bottom = tiers[0], tiers[-1]
    director = User.get(User.username == "director")
    managers = {u.branch_id: u for u in User.with_role("branch_manager")}
    busy = TierChangeRequest.select(TierChangeRequest.customer).where(
        TierChangeRequest.status == "open")
    customers = iter(Customer.select().where(
        Customer.tier.is_null(False), Customer.tier != top.id,
        Customer.account_manager.is_null(False), Customer.id.not_in(busy))
        .order_by(Customer.id).limit(4 * (rounds + 1)))
    first, last = {True: [], False: []}, {True: [], False: []}

    def approve(step_id, user):
        return lambda: decide(step_id, user, "approve")

    for _ in range(rounds + 1):
        for on in (True, False):
            customer = next(customers)
            request = file_request(customer, customer.account_manager, top, "基准测试：提升")
            first[on].append(approve(request.waiting_step, managers[customer.branch_id]))
            customer = next(customers)
            target = bottom if customer.tier_id != bottom.id else tiers[-2]
            request = file_request(customer, managers[customer.branch_id], target,
                                   "基准测试：调整")
            last[on].append(approve(request.waiting_step, director))
    return {"first_step": interleaved("approving a first step", rounds, first,
                                      APPROVAL_KINDS),
            "last_step": interleaved("approving a last step", rounds, last,
                                     APPROVAL_KINDS)}


# --- 2. Moving a cycle into 初评 ---------------------------------------------------------

def measure_cycle_start(rounds, size):
    """advance() from draft to preliminary on cycles of `size` customers, one fresh
    cycle per round and condition, all set up first."""
    from models import Assessment, Customer, ScorecardTemplate, User
    from models.cycles import save_cycle
    from models.phases import advance

    admin, chair = User.get(User.username == "admin"), User.get(User.username == "chair")
    members = list(User.with_role("committee_member").order_by(User.id))
    template = ScorecardTemplate.get(ScorecardTemplate.kind == "existing")
    picked = [c for (c,) in Customer.select(Customer.id).where(Customer.kind == "existing")
              .order_by(Customer.code).limit(size).tuples()]
    if len(picked) < size:
        raise Broken(f"the demo has {len(picked)} existing customers, not {size}")
    tasks = {True: [], False: []}

    def start(cycle):
        def run():
            advance(cycle, chair)
            if Assessment.select().where(Assessment.cycle == cycle).count() != size:
                raise Broken(f"{cycle.name}: not {size} sheets")
        return run

    for n in range(rounds + 1):
        for on in (True, False):
            cycle = save_cycle(None, admin, name=f"基准周期 {n} {'on' if on else 'off'}",
                               year=2030 + n, template_existing=template,
                               template_prospect=None, scope={"customers": picked},
                               chair=chair, members=members)
            tasks[on].append(start(cycle))
    return {**interleaved("moving a cycle into 初评", rounds, tasks, ("cycle",)),
            "sheets": size}


# --- 3. Delivery -----------------------------------------------------------------------

def measure_delivery(app, channel, count, arrivals, env):
    """`count` notices by `channel` in the outbox, a deliver_notice job each, then a
    real huey consumer with 2 worker threads; notices per second from the first
    arrival to the last. Raises Broken unless each arrived exactly once."""
    from models import Notice, NoticePreference, User, write_transaction
    from models.notices import notify
    from services.jobs import deliver_notice

    with app.test_request_context():
        people = list(User.with_role("branch_manager").order_by(User.id))
        NoticePreference.delete().execute()
        NoticePreference.insert_many([dict(user=p.id, kind="test", channels=channel)
                                      for p in people]).execute()
        cache, ids = {}, []
        with write_transaction():
            for n in range(count):
                ids += notify("test", people[n % len(people)], f"基准通知 bench-{channel}-{n}",
                              "基准测试：投递速度。", f"/bench/{n}", cache=cache)
        if len(ids) != count:
            raise Broken(f"{channel}: {len(ids)} notices written, not {count}")
    for notice_id in ids:
        deliver_notice(notice_id)  # queued: nothing runs jobs in this process
    consumer = subprocess.Popen(
        [str(Path(sys.executable).parent / "huey_consumer"), "worker.huey", "--workers", "2",
         "--quiet"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    started = time.perf_counter()
    try:
        deadline = started + 60 + count * 0.5
        while len(arrivals.of(channel)) < count and time.perf_counter() < deadline:
            if consumer.poll() is not None:
                raise Broken(f"the huey consumer stopped (exit {consumer.returncode})")
            time.sleep(0.1)
        time.sleep(1)  # a duplicate would arrive by now
    finally:
        consumer.terminate()
        consumer.wait(30)
    seen = arrivals.of(channel)
    counts = collections.Counter(marker for marker, _at in seen)
    missing = count - len(counts)
    twice = sum(1 for n in counts.values() if n > 1)
    with app.app_context():
        states = collections.Counter(n.state for n in Notice.select(Notice.state).where(
            Notice.id.in_(ids)))
    if missing or twice or states != {"sent": count}:
        raise Broken(f"{channel}: {missing} notices missing, {twice} delivered more than "
                     f"once; in the outbox: {dict(states)}")
    times = sorted(at for _marker, at in seen)
    return {"notices": count, "per_second": (count - 1) / (times[-1] - times[0]),
            "first_after_s": times[0] - started, "workers": 2,
            "by": "huey consumer (worker.py), one deliver_notice job per notice"}


# --- Main ------------------------------------------------------------------------------

def _ratio_line(label, figures):
    return (f"{label}: {figures['with_ms']:7.1f} ms with notices, "
            f"{figures['without_ms']:7.1f} ms without = {figures['ratio']:.2f}× (goal ≤ 1.2×; "
            f"CPU time {figures['cpu_ratio']:.2f}×)")


def run(args, workdir):
    arrivals = Arrivals()
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Robot)
    receiver.arrivals, receiver.daemon_threads = arrivals, True
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    with socket.socket() as probe:  # aiosmtpd wants a port it can connect to
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(Mailbox(arrivals), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        env = {**os.environ, "HUEY_DB": f"{workdir}/huey.db", "SECRET_KEY": "bench",
               "DATABASE_URL": f"sqlite:///{workdir}/bench.db", "PUBLIC_URL": PUBLIC_URL,
               "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1", "SMTP_HOST": "127.0.0.1",
               "SMTP_PORT": str(smtp_port), "SMTP_SECURITY": "none",
               "MAIL_FROM": "Tierdesk <tierdesk@example.com>"}
        os.environ.update(env)  # before services.jobs makes its queue from HUEY_DB
        from app import create_app
        app = create_app()
        size = 100 if args.quick else 1000
        started = time.perf_counter()
        build(app, customers=size + size // 3, robot_url=f"http://127.0.0.1:"
              f"{receiver.server_address[1]}")
        print(f"Database: the demo company, {size + size // 3} customers, "
              f"in {time.perf_counter() - started:.0f} s")
        results = {}
        with app.test_request_context():
            results["approve"] = measure_approvals(args.rounds)
            print(_ratio_line("approving a first step ", results["approve"]["first_step"]))
            print(_ratio_line("approving a last step  ", results["approve"]["last_step"]))
            cycle_rounds = max(3, args.rounds // 4)
            results["start_cycle"] = measure_cycle_start(cycle_rounds, size)
            print(_ratio_line(f"{size} sheets into 初评   ", results["start_cycle"]))
        count = 50 if args.quick else 500
        results["delivery"] = {}
        for channel, label in (("robot", "robot webhook"), ("email", "SMTP")):
            figures = measure_delivery(app, channel, count, arrivals, env)
            results["delivery"][channel] = figures
            print(f"delivery by {label:13}: {figures['per_second']:6.1f} notices/s, "
                  f"{count} each once (huey consumer, 2 worker threads, one deliver_notice "
                  f"job each; first after {figures['first_after_s']:.1f} s)")
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "notices.json").write_text(json.dumps(results, indent=2))
    finally:
        smtp.stop()
        receiver.shutdown()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="100 sheets, 50 notices to deliver")
    parser.add_argument("--rounds", type=int, default=30,
                        help="rounds of approvals per condition (cycles: a quarter, ≥ 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tierdesk-notice-bench-") as workdir:
        try:
            run(args, workdir)
        except Broken as error:
            print(f"notice_bench: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
