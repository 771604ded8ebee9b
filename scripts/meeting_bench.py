"""A simulated committee meeting in real browsers (issue 18): what members and the chair wait for.

A fresh SQLite database holds a cycle in committee review: a chair, `--members`
members and `--customers` customers with submitted preliminary sheets, on the default
scorecard (six criteria; one with fixed-points levels, five with ranges). gunicorn
serves it with 2 workers, the polls at the product's intervals. Debian's Chromium
opens one browser context for the chair and one per member, each logged in through
the login form. For each customer, every member scores the sheet on the meeting page
by keyboard only, as a member would (a digit picks the level, Enter takes the
proposed points or typed digits replace them, and the focus moves on), all members at
once, each with levels of their own; the chair's page then waits until its board shows
that member's new total. The chair settles with N and everyone moves on.

It prints the median and p95 time from a member's last keystroke to the chair's board
showing the total, the median time from the chair's N to a member's page showing the
next customer, and the scores lost (typed but not stored) or stale (stored, but not
what was typed last), which must be 0: the run exits non-zero when any is not, or
when the board never shows a member's total. Results go to
bench-results/meeting-latest.json.

    make bench                                      # with the page benchmark
    .venv/bin/python scripts/meeting_bench.py       # 9 members, 30 customers
    .venv/bin/python scripts/meeting_bench.py --quick   # 3 members, 3 customers
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.bench import (  # noqa: E402 - the repository root must be importable first
    RESULTS,
    BenchError,
    Server,
    _load_app,
    _remove_sqlite,
    _shown,
    free_port,
    git_revision,
    percentile,
    run_main,
)

SEED = 2027
WORKERS = 2
CHROMIUM = "/usr/bin/chromium"
# As tests/live.py: without them Chromium reaches for Google's servers.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PASSWORD = "demo2027"  # noqa: S105 - services.demo.DEMO_PASSWORD, every demo user's
CHAIR = "chair"
WAIT_S = 30  # the longest a member's total or the next customer may take to show
QUICK = {"members": 3, "customers": 3}


# ---------------------------------------------------------------- database

@dataclass
class Row:
    """One criterion as a member scores it: the level's digit, the digits typed over the
    proposed points ("" to accept them with Enter), and what must be stored then."""
    criterion: int
    digit: str
    typed: str
    level: int
    points: int


@dataclass
class Sheet:
    assessment: int
    customer: str
    plans: dict = field(default_factory=dict)  # username: [Row]

    def total(self, username):
        return sum(row.points for row in self.plans[username])


def build(app, members, customers):
    """The company, the committee and the cycle in committee review, written through the
    models' own rules (save_cycle, advance, save_score, submit_preliminary, set_current).
    Returns (cycle id, [Sheet]) with each member's keyboard plan per sheet."""
    from models import Assessment, Customer, User
    from models.cycles import (
        proposed_points,
        save_cycle,
        save_score,
        set_current,
        submit_preliminary,
    )
    from models.phases import advance
    from models.schema import upgrade
    from models.scorecards import ScorecardTemplate
    from services.demo import build_demo

    rng = random.Random(SEED)
    with app.test_request_context():
        upgrade()
        build_demo(seed=SEED, customers=max(60, customers * 2), reps_per_branch=1,
                   branches=3, funnel=False)
        admin = User.get(User.username == "admin")
        chair = User.get(User.username == CHAIR)
        probe = User(display_name="")
        probe.set_password(PASSWORD)
        committee = []
        for n in range(1, members + 1):
            member = User(username=f"meet{n}", display_name=f"委员{n:02d}",
                          password_hash=probe.password_hash)
            member.roles = ["committee_member"]
            member.save()
            committee.append(member)
        template = ScorecardTemplate.get(ScorecardTemplate.kind == "existing")
        picked = [c.id for c in Customer.select(Customer.id)
                  .where(Customer.kind == "existing").order_by(Customer.code).limit(customers)]
        if len(picked) < customers:
            raise BenchError(f"the demo company has only {len(picked)} existing customers")
        cycle = save_cycle(None, admin, name="评审会（会议模拟）", year=2027,
                           template_existing=template, template_prospect=None,
                           scope={"customers": picked}, chair=chair, members=committee)
        cycle = advance(cycle, chair)
        criteria = template.criteria_with_levels()
        managers = {u.branch_id: u for u in User.with_role("branch_manager")}
        assessments = list(Assessment.select().where(Assessment.cycle == cycle)
                           .order_by(Assessment.agenda_position))
        preliminary = {}
        for sheet in assessments:
            manager = managers[sheet.branch_id]
            for criterion in criteria:
                level = rng.choice(criterion.levels)
                points = rng.randint(level.min_points, level.max_points)
                save_score(sheet, manager, "preliminary", criterion.id, level.id, points, "", 0)
                preliminary[sheet.id, criterion.id] = points
            submit_preliminary(sheet, manager)
        cycle = advance(cycle, chair)
        set_current(cycle, chair, assessments[0])
        sheets = []
        for sheet in assessments:
            planned = Sheet(sheet.id, sheet.customer.name)
            for member in committee:
                # Each member leans to better or worse levels, so totals differ.
                lean = rng.random()
                rows = []
                for criterion in criteria:
                    levels = criterion.levels
                    index = min(len(levels) - 1, int(lean * len(levels) + rng.random()))
                    level = levels[index]
                    proposal = proposed_points(level, preliminary[sheet.id, criterion.id])
                    typed = ""
                    points = level.min_points if proposal is None else proposal
                    if proposal is not None and rng.random() < 0.5:
                        others = [p for p in range(level.min_points, level.max_points + 1)
                                  if p != proposal]
                        points = rng.choice(others)
                        typed = str(points)
                    rows.append(Row(criterion.id, str(index + 1), typed, level.id, points))
                planned.plans[member.username] = rows
            sheets.append(planned)
    return cycle.id, sheets


def check_scores(app, sheets, usernames):
    """Every planned score against the database: (lost, stale, details)."""
    from models import Score, User

    lost, stale, details = 0, 0, []
    with app.app_context():
        ids = {u.username: u.id for u in User.select().where(User.username.in_(usernames))}
        for sheet in sheets:
            stored = {(s.member_id, s.criterion): s for s in Score.select().where(
                Score.assessment == sheet.assessment, Score.stage == "committee")}
            for username in usernames:
                for row in sheet.plans[username]:
                    score = stored.get((ids[username], row.criterion))
                    if score is None or score.points is None:
                        lost += 1
                        details.append(f"lost: {username} {sheet.customer} criterion "
                                       f"{row.criterion} (typed {row.points})")
                    elif (score.level, score.points) != (row.level, row.points):
                        stale += 1
                        details.append(f"stale: {username} {sheet.customer} criterion "
                                       f"{row.criterion}: stored level {score.level} "
                                       f"points {score.points}, typed level {row.level} "
                                       f"points {row.points}")
    return lost, stale, details


# ---------------------------------------------------------------- browsers

async def log_in(context, base, username):
    """The login form, as a person fills it: Enter in the password field."""
    page = await context.new_page()
    page.set_default_timeout(WAIT_S * 1000)
    await page.goto(f"{base}/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.press("input[name=password]", "Enter")
    await page.wait_for_url(f"{base}/")
    return page


def _heading(page, name):
    return page.get_by_role("heading", level=1, name=name, exact=True)


async def member_turn(page, sheet, username, rng, record):
    """Score `sheet` by keyboard from the first criterion's level; returns the time of
    the last keystroke and the number of keys pressed."""
    await _heading(page, sheet.customer).wait_for()
    first = sheet.plans[username][0].criterion
    await page.wait_for_function(
        "id => document.activeElement && document.activeElement.id === id",
        arg=f"level-input-{first}")
    await asyncio.sleep(rng.uniform(0, 0.5))  # members do not all start on the same beat
    keys, last = 0, None
    for row in sheet.plans[username]:
        await page.keyboard.press(row.digit)
        for digit in row.typed:
            await page.keyboard.press(digit)
        last = time.monotonic()
        await page.keyboard.press("Enter")
        keys += 2 + len(row.typed)
    record["keys"].append(keys)
    return last


async def board_shows(chair, column, total):
    """When the chair's board shows `total` as the member's complete total."""
    await chair.wait_for_function(
        "([column, total]) => { const b = document.querySelector("
        "`#board tfoot tr > :nth-child(${column}) > b`); "
        "return b !== null && b.textContent.trim() === total; }",
        arg=[column, str(total)], polling=20, timeout=WAIT_S * 1000)
    return time.monotonic()


async def rows_shown(page):
    """What a member's sheet shows, row by row: level, points, the save mark's class and
    text (for the record of a total the board never showed)."""
    return await page.eval_on_selector_all("form.score-form", """forms => forms.map(f => {
        const level = f.querySelector("select[name=level]");
        const points = f.querySelector("input[name=points]");
        const state = f.querySelector(".save-state");
        return [level && level.value, points && points.value,
                state && state.className, state && state.textContent.trim()].join(" ");
    }).join(" | ")""")


async def columns(chair):
    """{display name: nth-child of the member's column} on the chair's board."""
    names = await chair.eval_on_selector_all(
        "#board thead th", "ths => ths.map(th => th.firstChild.textContent.trim())")
    return {name: n for n, name in enumerate(names, 1)}


async def meeting(base, cycle_id, sheets, usernames, names, record):
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                   args=CHROMIUM_ARGS)
        try:
            contexts = [await browser.new_context(locale="zh-CN")
                        for _ in range(len(usernames) + 1)]
            pages = await asyncio.gather(*(log_in(c, base, u)
                                           for c, u in zip(contexts, [CHAIR, *usernames])))
            chair, members = pages[0], dict(zip(usernames, pages[1:]))
            url = f"{base}/cycles/{cycle_id}/meeting"
            await asyncio.gather(*(p.goto(url) for p in pages))
            problems = []
            for page in pages:
                page.on("pageerror", lambda error: problems.append(str(error)))
                page.on("console", lambda message: message.type == "error" and record[
                    "console_errors"].append(message.text))
            rngs = {u: random.Random(f"{SEED}-{u}") for u in usernames}
            settled_at = None
            for number, sheet in enumerate(sheets):
                await _heading(chair, sheet.customer).wait_for()
                column = await columns(chair)

                async def one_member(username, sheet=sheet, settled_at=settled_at,
                                     column=column):
                    page = members[username]
                    if settled_at is not None:
                        await _heading(page, sheet.customer).wait_for()
                        record["next_customer_s"].append(time.monotonic() - settled_at)
                    shown = asyncio.create_task(board_shows(
                        chair, column[names[username]], sheet.total(username)))
                    last = await member_turn(page, sheet, username, rngs[username], record)
                    try:
                        seen = await shown
                    except Exception as error:  # noqa: BLE001 - the board never showed the typed total
                        record["board_misses"].append(
                            f"{username} {sheet.customer}: total {sheet.total(username)} "
                            f"not shown in {WAIT_S} s ({type(error).__name__}); "
                            f"the member's rows: {await rows_shown(page)}")
                        return
                    record["board_s"].append(seen - last)

                await asyncio.gather(*(one_member(u) for u in usernames))
                print(f"  customer {number + 1}/{len(sheets)} settled", flush=True)
                settled_at = time.monotonic()
                await chair.keyboard.press("n")
                if number + 1 == len(sheets):
                    await chair.wait_for_url(f"**/cycles/{cycle_id}/meeting*")
            record["page_errors"] = problems
        finally:
            await browser.close()


# ---------------------------------------------------------------- main

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=9,
                        help="committee members besides the chair (default 9)")
    parser.add_argument("--customers", type=int, default=30,
                        help="customers on the agenda (default 30)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run: {QUICK['members']} members, "
                             f"{QUICK['customers']} customers")
    parser.add_argument("--output", type=Path, default=RESULTS / "meeting-latest.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.members, args.customers = QUICK["members"], QUICK["customers"]
    return args


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000)


def run(args):
    started = time.perf_counter()
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    RESULTS.mkdir(exist_ok=True)
    database = RESULTS / f"meeting-{os.getpid()}.sqlite3"
    _remove_sqlite(database)
    database_url = f"sqlite:///{database}"
    record = {"keys": [], "board_s": [], "next_customer_s": [], "board_misses": [],
              "console_errors": []}
    load_before = os.getloadavg()
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        os.environ["PUBLIC_URL"] = base  # before the build: its notices link here
        app = _load_app(database_url)
        cycle_id, sheets = build(app, args.members, args.customers)
        usernames = [f"meet{n}" for n in range(1, args.members + 1)]
        names = {u: f"委员{n:02d}" for n, u in enumerate(usernames, 1)}
        config = {key: app.config[key] for key in ("MEETING_POLL_SECONDS", "BOARD_POLL_SECONDS")}
        print(f"Meeting: {args.members} members and the chair, {args.customers} customers, "
              f"gunicorn {WORKERS} workers, SQLite; polls at the product's intervals: the "
              f"page every {config['MEETING_POLL_SECONDS']} s, the chair's board every "
              f"{config['BOARD_POLL_SECONDS']} s", flush=True)
        # Every request in the log: a lost score is traced by its requests' answers.
        with Server(database_url, port, WORKERS, access_log=True) as server:
            server.wait_ready()
            asyncio.run(meeting(base, cycle_id, sheets, usernames, names, record))
        lost, stale, details = check_scores(app, sheets, usernames)
    finally:
        from models.base import db
        if not db.is_closed():
            db.close()
        _remove_sqlite(database)
    load_after = os.getloadavg()
    board = sorted(record["board_s"])
    moves = sorted(record["next_customer_s"])
    result = {
        "started_at": started_at, "revision": git_revision(),
        "members": args.members, "customers": args.customers,
        "server": {"workers": WORKERS, "database": "sqlite"}, "polls_s": config,
        "keystrokes_per_sheet_median": statistics.median(record["keys"]),
        "keystroke_to_board_ms": {"n": len(board), "p50": _ms(percentile(board, 50)),
                                  "p95": _ms(percentile(board, 95)),
                                  "max": _ms(board[-1] if board else None)},
        "settle_to_next_customer_ms": {"n": len(moves), "p50": _ms(percentile(moves, 50)),
                                       "p95": _ms(percentile(moves, 95))},
        "lost": lost, "stale": stale, "board_misses": record["board_misses"],
        "page_errors": record.get("page_errors", []), "problems": details[:50],
        "console_errors": record["console_errors"][:50],
        "load_average": {"before": load_before, "after": load_after},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    print_result(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    print(f"Written to {_shown(args.output)}")
    failures = lost + stale + len(record["board_misses"]) + len(result["page_errors"])
    for line in [*details[:20], *record["board_misses"][:20], *result["page_errors"][:20]]:
        print(f"  {line}", file=sys.stderr)
    return 1 if failures else 0


def print_result(result):
    board, moves = result["keystroke_to_board_ms"], result["settle_to_next_customer_ms"]
    load = result["load_average"]
    print(f"\n== Simulated meeting ({result['revision']})")
    print(f"members                                  {result['members']}")
    print(f"customers                                {result['customers']}")
    print(f"keystrokes per sheet (median)            {result['keystrokes_per_sheet_median']:g}")
    print(f"last keystroke -> chair's board (n={board['n']})  "
          f"median {board['p50']} ms, p95 {board['p95']} ms, max {board['max']} ms")
    print(f"chair's N -> member sees next (n={moves['n']})   "
          f"median {moves['p50']} ms, p95 {moves['p95']} ms")
    print(f"polls: page every {result['polls_s']['MEETING_POLL_SECONDS']} s, chair's board "
          f"every {result['polls_s']['BOARD_POLL_SECONDS']} s (product defaults)")
    print(f"lost scores                              {result['lost']}  (must be 0)")
    print(f"stale scores                             {result['stale']}  (must be 0)")
    print(f"totals the board never showed            {len(result['board_misses'])}")
    print(f"page errors                              {len(result['page_errors'])}")
    print(f"load average (1, 5, 15 min)              before "
          f"{' '.join(f'{x:.2f}' for x in load['before'])}, after "
          f"{' '.join(f'{x:.2f}' for x in load['after'])}  ({result['machine']['cpus']} cpus)")
    print(f"took {result['total_seconds']:.0f} s")


def main(argv=None):
    return run_main("meeting bench", parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
