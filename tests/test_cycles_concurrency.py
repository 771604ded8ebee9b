"""Committee scores under load: many members saving at once through gunicorn, on each backend.

The data is built in the test process on the `app` fixture's database (SQLite, and PostgreSQL
when TEST_DATABASE_URL is set); gunicorn then serves that database with several worker
processes, and each member's browser (a session of its own, CSRF token included) posts
committee saves from threads, the way htmx autosaves do. The database is checked afterwards.
"""
import http.client
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest

from models import Assessment, Criterion, Score, Tier, db
from models.cycles import finalise, save_cycle, save_score, submit_preliminary
from models.phases import advance
from services.demo import ensure_reference_data
from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 3
MEMBERS = 9
SHEETS = 3
ROUNDS = 4
TIMEOUT_S = 30

FORM_TOKEN = re.compile(r'<input\b[^>]*\bname="csrf_token"[^>]*\bvalue="([^"]*)"')
HX_TOKEN = re.compile(r'"X-CSRFToken":\s*"([^"]+)"')
# A save answers with the row's changed parts (or the whole row when refused).
ROW_STATE = re.compile(r'class="save-state state-(\w+)"')
ROW_REVISION = re.compile(r'<input type="hidden" name="revision" id="revision-\d+" value="(\d+)"')
ROW_POINTS = re.compile(r'<td class="num points" id="points-\d+"[^>]*>(\d*)')
# What gunicorn's log must never show: a traceback, a worker killed, SQLite's lock error.
LOG_TROUBLE = re.compile(r"Traceback|database is locked|WORKER TIMEOUT|\[ERROR\]|\[CRITICAL\]")

FINAL_MESSAGE = "该客户的最终等级已确定，分数不能再修改。"
STALE_MESSAGE = "该分数已在别处（另一个标签页？）被修改"


# --- The data -----------------------------------------------------------------------

@pytest.fixture
def committee(app, make):
    """A cycle in committee review: MEMBERS members, a chair, SHEETS submitted sheets."""
    with app.test_request_context():
        template = ensure_reference_data()
        branch = make.branch("E", "华东分公司")
        customers = [make.customer(branch, f"并发客户{n}") for n in range(SHEETS)]
        chair = make.user("chair", roles=("committee_chair",))
        members = [make.user(f"m{n}", roles=("committee_member",)) for n in range(MEMBERS)]
        manager = make.user("bm_e", roles=("branch_manager",), branch=branch)
        admin = make.user("admin", roles=("admin",))
        cycle = save_cycle(None, admin, name="2027年度客户分级评定", year=2027,
                           template_existing=template, template_prospect=None, scope={},
                           chair=chair, members=members)
        cycle = advance(cycle, chair)
        criteria = list(Criterion.select().where(Criterion.template == template)
                        .order_by(Criterion.position))
        sheets = list(Assessment.select().where(Assessment.cycle == cycle)
                      .order_by(Assessment.id))
        for sheet in sheets:
            for criterion in criteria:
                save_score(sheet, manager, "preliminary", criterion.id, None,
                           criterion.max_points // 2, "初评", 0)
            submit_preliminary(sheet, manager)
        assert advance(cycle, chair).phase == "committee"
    assert [c.id for c in customers] == [s.customer_id for s in sheets]
    built = dict(chair=chair, members=members, sheets=[s.id for s in sheets],
                 criteria=[(c.id, c.max_points) for c in criteria],
                 preliminary=_scores("preliminary"))
    db.close()  # gunicorn's workers open their own connections
    return built


def _scores(stage, sheet_id=None):
    """{(member, sheet, criterion): (points, comment, revision)} as the database holds them."""
    query = Score.select().where(Score.stage == stage)
    if sheet_id is not None:
        query = query.where(Score.assessment == sheet_id)
    return {(s.member_id, s.assessment_id, s.criterion): (s.points, s.comment, s.revision)
            for s in query}


# --- The server -----------------------------------------------------------------------

@dataclass
class Server:
    port: int
    log_path: Path

    def log(self):
        return self.log_path.read_text(errors="replace")


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(committee, database_url, tmp_path):
    """gunicorn with WORKERS processes serving the test's database on 127.0.0.1."""
    port, log_path = _free_port(), tmp_path / "gunicorn.log"
    env = dict(os.environ, DATABASE_URL=database_url, SECRET_KEY="concurrency-test-secret")
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", str(WORKERS),
             "--bind", f"127.0.0.1:{port}", "--timeout", str(TIMEOUT_S),
             "--graceful-timeout", "5", "app:create_app()"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    served = Server(port, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"gunicorn exited:\n{served.log()[-3000:]}"
            assert time.monotonic() < deadline, f"no /healthz:\n{served.log()[-3000:]}"
            try:
                status, _ = Browser(port).request("GET", "/healthz")
            except OSError:
                time.sleep(0.1)
                continue
            assert status == 200, f"/healthz answered {status}"
            break
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Browser:
    """One browser session: its cookies and CSRF token, shared by all its tabs (threads).

    Every request goes on a fresh connection and is never retried: a retried POST
    could be a save sent twice.
    """

    def __init__(self, port):
        self.port = port
        self.username = None
        self.cookies = {}
        self.csrf_token = None
        self.lock = threading.Lock()

    def request(self, method, path, form=None, headers=None):
        """Send one request; returns (status, body text)."""
        headers = dict(headers or {})
        with self.lock:
            if self.cookies:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            if self.csrf_token:
                headers["X-CSRFToken"] = self.csrf_token
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode(errors="replace")
        finally:
            connection.close()
        with self.lock:
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    if morsel.value:
                        self.cookies[name] = morsel.value
                    else:
                        self.cookies.pop(name, None)
        return response.status, text

    def login(self, username):
        """Log in through the form, then take the new session's token from a page."""
        self.username = username
        status, page = self.request("GET", "/login")
        assert status == 200
        form = {"username": username, "password": PASSWORD,
                "csrf_token": FORM_TOKEN.search(page)[1]}
        status, _ = self.request("POST", "/login", form)
        assert status == 302, f"login as {username} answered {status}"
        status, page = self.request("GET", "/")
        assert status == 200
        self.csrf_token = HX_TOKEN.search(page)[1]  # login starts a session, hence a token
        return self

    def save(self, sheet_id, criterion_id, points, comment, revision):
        """One committee autosave as htmx sends it; returns the answer and its row."""
        status, text = self.request(
            "POST", f"/assessments/{sheet_id}/scores",
            {"criterion": criterion_id, "level": "", "points": points, "comment": comment,
             "revision": revision, "stage": "committee"},
            {"HX-Request": "true"})
        return Answer.of(status, text)


@dataclass
class Answer:
    """A save's answer: status, the row's state class, and the points and revision the
    row now shows (None where the row has no form: a read-only row)."""
    status: int
    state: str | None
    points: int | None
    revision: int | None
    body: str

    @classmethod
    def of(cls, status, text):
        state, points = ROW_STATE.search(text), ROW_POINTS.search(text)
        revision = ROW_REVISION.search(text)
        return cls(status, state[1] if state else None,
                   int(points[1]) if points and points[1] else None,
                   int(revision[1]) if revision else None, text)

    @property
    def saved(self):
        return self.status == 200 and self.state == "saved"


def _logged_in(server, usernames):
    """A logged-in Browser per username, logging in a few at a time (hashing is slow)."""
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(lambda name: Browser(server.port).login(name), usernames))


@dataclass
class Sent:
    """One save and its answer."""
    member: int
    sheet: int
    criterion: int
    points: int
    comment: str
    revision: int  # the revision the tab sent
    started: float
    answer: Answer


def _points(member_index, round_, criterion_index, maximum):
    """A value that differs from round to round, member to member."""
    return (7 * member_index + 3 * round_ + criterion_index) % (maximum + 1)


def _tab(browser, member, member_index, sheet_id, criteria, rounds, sent, barrier):
    """One tab of one member: ROUNDS passes over every criterion of one sheet.

    Like a browser, the tab sends back the revision the field's row last showed.
    """
    revisions = dict.fromkeys((c for c, _ in criteria), 0)
    barrier.wait()
    for round_ in range(rounds):
        for index, (criterion, maximum) in enumerate(criteria):
            points = _points(member_index, round_, index, maximum)
            comment = f"{browser.username} 第{round_ + 1}轮"
            started = time.monotonic()
            answer = browser.save(sheet_id, criterion, points, comment, revisions[criterion])
            sent.append(Sent(member.id, sheet_id, criterion, points, comment,
                             revisions[criterion], started, answer))
            if answer.revision is not None:
                revisions[criterion] = answer.revision


def _last_saved(sent):
    """{(member, sheet, criterion): (points, comment, revision)} from the "saved" answers,
    counting one revision per save; asserts each saved row showed that value and revision."""
    last, count, wrong_rows = {}, Counter(), []
    for save in sent:  # appended in each tab's order; a field belongs to one tab
        if save.answer.saved:
            key = (save.member, save.sheet, save.criterion)
            count[key] += 1
            last[key] = (save.points, save.comment, count[key])
            if (save.answer.points, save.answer.revision) != (save.points, count[key]):
                wrong_rows.append((key, save.points, count[key], save.answer))
    assert wrong_rows == [], "a saved row does not show what was saved"
    return last


def _run_tabs(server, committee, rounds, on_the_way=None):
    """Every member saves every sheet at once, a tab (thread) per member and sheet."""
    members = committee["members"]
    browsers = _logged_in(server, [m.username for m in members])
    sent, crashed = [], []
    barrier = threading.Barrier(len(members) * len(committee["sheets"]) + 1)

    def tab(*args):
        try:
            _tab(*args, sent, barrier)
        except Exception as error:  # noqa: BLE001 - a dead tab must fail the test
            crashed.append(repr(error))

    threads = [threading.Thread(target=tab, args=(
        browser, member, index, sheet_id, committee["criteria"], rounds))
        for index, (browser, member) in enumerate(zip(browsers, members))
        for sheet_id in committee["sheets"]]
    for thread in threads:
        thread.start()
    barrier.wait()
    result = on_the_way(sent) if on_the_way else None
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a tab hung"
    assert crashed == []
    return browsers, sent, result


def _assert_clean_log(server):
    trouble = [line for line in server.log().splitlines() if LOG_TROUBLE.search(line)]
    assert trouble == [], "\n".join(trouble[:20])


# --- The rules --------------------------------------------------------------------------

def test_members_saving_at_once_lose_no_score(committee, server):
    """Members saving the same sheets at once keep every last value they sent, without errors."""
    _, sent, _ = _run_tabs(server, committee, ROUNDS)
    fields = MEMBERS * SHEETS * len(committee["criteria"])
    assert len(sent) == fields * ROUNDS
    failed = [(s.answer.status, s.answer.state, s.answer.body[:300]) for s in sent
              if not s.answer.saved]
    assert failed == []
    expected = {(s.member, s.sheet, s.criterion): (s.points, s.comment, ROUNDS) for s in sent}
    held = _scores("committee")
    assert len(held) == Score.select().where(Score.stage == "committee").count() == fields
    assert held == expected == _last_saved(sent)
    assert _scores("preliminary") == committee["preliminary"]
    _assert_clean_log(server)


def test_two_tabs_of_one_member_never_overwrite_silently(committee, server):
    """Two tabs saving one field from the same revision: one saves, the other is told it is
    stale, and the database holds the value that was saved."""
    member = committee["members"][0]
    tabs = _logged_in(server, [member.username, member.username])  # two sessions
    fields = [(sheet, criterion, maximum) for sheet in committee["sheets"]
              for criterion, maximum in committee["criteria"]]
    revision = 0
    for race in range(3):
        def save(job, race=race, revision=revision):
            (sheet, criterion, maximum), tab_index, barrier = job
            points = (race * 5 + tab_index * 7 + criterion) % (maximum + 1)
            comment = f"标签页{tab_index + 1} 第{race + 1}次"
            barrier.wait()
            answer = tabs[tab_index].save(sheet, criterion, points, comment, revision)
            return (sheet, criterion), (answer, points, comment)

        barriers = {field: threading.Barrier(2) for field in fields}
        jobs = [(field, tab, barriers[field]) for field in fields for tab in (0, 1)]
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            answers = list(pool.map(save, jobs))
        held = _scores("committee")
        for field in fields:
            sheet, criterion, _ = field
            pair = [answer for key, answer in answers if key == (sheet, criterion)]
            assert {a.status for a, *_ in pair} == {200}
            assert sorted(a.state for a, *_ in pair) == ["saved", "stale"], pair
            (winner,) = [sent for sent in pair if sent[0].state == "saved"]
            (loser,) = [sent for sent in pair if sent[0].state == "stale"]
            assert held[(member.id, sheet, criterion)] == (winner[1], winner[2], revision + 1)
            # Both rows now show the value that was kept, and the stale one says why.
            for answer, *_ in pair:
                assert (answer.points, answer.revision) == (winner[1], revision + 1)
            assert STALE_MESSAGE in loser[0].body, "the stale tab is not told why"
        revision += 1
    assert len(_scores("committee")) == len(fields)
    _assert_clean_log(server)


def test_a_finalised_sheet_refuses_late_saves(app, committee, server):
    """Saves reaching a sheet after its final grade is set are refused with a message, and
    its scores stay as they were when it was finalised; the other sheets save on."""
    final_sheet = committee["sheets"][0]
    first_round = MEMBERS * len(committee["criteria"])

    def finalise_midway(sent):
        deadline = time.monotonic() + 60
        while sum(s.sheet == final_sheet and s.answer.saved for s in list(sent)) \
                < first_round and time.monotonic() < deadline:
            time.sleep(0.005)
        with app.test_request_context():
            finalise(Assessment.get_by_id(final_sheet), committee["chair"],
                     Tier.get(Tier.code == "B"), rationale="并发测试：评审中途定级")
        done = time.monotonic()
        snapshot = _scores("committee", final_sheet)
        db.close()
        return done, snapshot

    browsers, sent, (finalised_at, snapshot) = _run_tabs(
        server, committee, ROUNDS, finalise_midway)
    assert [s for s in sent if s.answer.status != 200] == []
    on_final = [s for s in sent if s.sheet == final_sheet]
    elsewhere = [s for s in sent if s.sheet != final_sheet]
    assert {s.answer.state for s in elsewhere} == {"saved"}
    assert {s.answer.state for s in on_final} == {"saved", "error"}
    assert all(s.answer.state == "error" for s in on_final if s.started > finalised_at)
    # A late save after everything settled, by each member: refused.
    criterion = committee["criteria"][0][0]
    late = []
    for browser, member in zip(browsers, committee["members"]):
        revision = snapshot.get((member.id, final_sheet, criterion), (0, "", 0))[2]
        late.append(browser.save(final_sheet, criterion, 1, "太迟了", revision))
    assert {(answer.status, answer.state) for answer in late} == {(200, "error")}
    assert _scores("committee", final_sheet) == snapshot
    assert _scores("committee") == _last_saved(sent)
    assert Assessment.get_by_id(final_sheet).is_final
    _assert_clean_log(server)
    refusals = late + [s.answer for s in on_final if s.answer.state == "error"]
    assert all(FINAL_MESSAGE in answer.body for answer in refusals), \
        "a refused save does not say why"
