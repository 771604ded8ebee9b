"""Issue 18's "done when", walked as a new committee would in March: a branch manager,
a chair and three members, each in a browser session of their own, from the last
preliminary sheet to the published, signed report; then Back and Forward on a list.

The report renders as a background job: `services.jobs.render_report` is replaced by a
queue the test holds, so the page shows the job waiting with its progress bar, and the
test then does what the worker does (services.jobs: run_report_job in the app, at
PUBLIC_URL).
"""
import io
import math
import os
import re
import subprocess
from pathlib import Path

import pytest
import segno
from PIL import Image
from playwright.sync_api import expect

from models import (
    Assessment,
    CriterionLevel,
    Customer,
    CycleSignature,
    GradingCycle,
    ReportJob,
    Score,
    Tier,
    User,
)
from models.cycles import save_cycle, submit_preliminary
from models.phases import advance
from models.signing import results_fingerprint
from services.jobs import run_report_job
from tests.conftest import PASSWORD
from tests.live import screenshot
from tests.pdf_helpers import pdf_pages
from tests.test_cycles import _criteria, _fill, make_setup
from tests.test_cycles_meeting_browser import (
    NOTICE,
    _band,
    _expect_board,
    _Keys,
    _log_in_together,
    _row,
    _saved,
)
from tests.test_history_browser import _travel, _whole_page

PUBLIC_URL = "https://tierdesk.example.com"
MEMBERS = ("m1", "m2", "m3")
# In agenda order (branch, then code): the customer, and the tier it holds before the
# cycle. The branch manager fills the first sheet in the browser; the last one is left
# unsettled until the draft report has been read.
EAST = [("上海浦江精密机械有限公司", "B"), ("上海华信物流有限公司", "B"),
        ("杭州远扬贸易有限公司", "C"), ("上海申通机电有限公司", "B"),
        ("南京金陵化工有限公司", "C"), ("上海东方航运有限公司", "A"),
        ("宁波海天电器有限公司", None)]
WEST = [("成都天府软件有限公司", "B"), ("重庆山城建设集团有限公司", "C"),
        ("昆明滇池茶业有限公司", None), ("贵阳黔南矿业有限公司", "C")]
SETTLED_FIRST = 10  # settled before the draft report; the eleventh after it
OVERALL = "老客户，回款稳定，建议维持B级以上。"
DRAFT_ON_EVERY_PAGE = "草稿（评级委员会尚未全体签字）"


@pytest.fixture
def app(app, tmp_path):
    """The app with its signing key and reports in this test's directory, and the public
    address a signed report prints."""
    app.config.update(SIGNING_DIR=str(tmp_path / "signing"), REPORTS_DIR=str(tmp_path / "out"),
                      PUBLIC_URL=PUBLIC_URL)
    return app


def _march_setup(app, make):
    """A cycle in preliminary grading over eleven customers (seven in the east, four in
    the west), a chair and three members; every preliminary sheet is submitted but the
    first, which the east's branch manager still has to fill."""
    setup = make_setup(app, make)  # three east and two west customers, chair, m1, m2
    with app.test_request_context():
        tiers = {tier.code: tier for tier in Tier.select()}
        customers = setup["customers"][:3] + [make.customer(setup["east"]) for _ in range(4)] \
            + setup["customers"][3:] + [make.customer(setup["west"]) for _ in range(2)]
        for customer, (name, tier) in zip(customers, EAST + WEST):
            Customer.update(name=name, tier=tiers[tier].id if tier else None).where(
                Customer.id == customer.id).execute()
        members = [*setup["members"], make.user("m3", roles=("committee_member",))]
        for user, name in zip([setup["chair"], *members, setup["bm_east"]],
                              ("周主任", "委员甲", "委员乙", "委员丙", "王经理")):
            User.update(display_name=name).where(User.id == user.id).execute()
        cycle = save_cycle(None, setup["admin"], name="2027年度客户分级评定", year=2027,
                           template_existing=setup["template"], template_prospect=None,
                           scope={}, chair=setup["chair"], members=members)
        cycle = advance(cycle, setup["chair"])
        sheets = list(Assessment.select().where(Assessment.cycle == cycle)
                      .order_by(Assessment.agenda_position))
        assert [sheet.customer.name for sheet in sheets] == [n for n, _ in EAST + WEST]
        for n, sheet in enumerate(sheets[1:], 1):
            manager = setup["bm_east"] if sheet.branch_id == setup["east"].id else \
                setup["bm_west"]
            _fill(sheet, manager, setup["template"], points=(10, 15, 5)[n % 3])
            submit_preliminary(sheet, manager)
    return cycle, sheets, setup


# --- The keyboard on a sheet -------------------------------------------------------

def _state(page, criterion):
    return _row(page, criterion).locator(".save-state")


def _focused(page, criterion, control="select[name=level]"):
    expect(_row(page, criterion).locator(control)).to_be_focused()


def _plan(n, k):
    """The levels (1 = the first) member k picks on the n-th customer: the customer's
    own level for every criterion but one (each member another one), the next level there."""
    base = n % 3
    return [str(1 + (base + (i == (n + k) % 6)) % 3) for i in range(6)]


def _taken(level, preliminary):
    """The points Enter takes for a level (see proposed_points): a fixed level's; the
    preliminary points where they fit the range; else the midpoint, half up."""
    if level.min_points == level.max_points:
        return level.min_points
    if preliminary is not None and level.min_points <= preliminary <= level.max_points:
        return preliminary
    return math.floor((level.min_points + level.max_points) / 2 + 0.5)


# --- The report: jobs and PDFs -----------------------------------------------------

def _render_queued(app, queued):
    """The worker's part: run the one job queued since last time, as services.jobs does
    (the app, a stand-in request at PUBLIC_URL), and return it finished."""
    assert len(queued) == 1, queued
    job_id = queued.pop()
    assert ReportJob.get_by_id(job_id).state == "queued"
    with app.test_request_context(base_url=PUBLIC_URL):
        run_report_job(job_id)
    job = ReportJob.get_by_id(job_id)
    assert job.state == "done", job.error
    return job


def _report_from_the_page(app, page, queued, name):
    """Render the report as a user does: the report page's button, the job waiting
    with its progress bar, then (the worker having run it) the download link. Returns
    the PDF and what the job panel said about it."""
    page.get_by_test_id("report-link").click()
    expect(page.locator("h1")).to_have_text("评级委员会报告")
    page.get_by_role("button", name="生成报告").click()
    panel = page.locator("#current-job [data-testid=job]")
    expect(panel).to_have_attribute("data-state", "queued")
    expect(panel.locator("progress")).to_be_visible()
    _shot(page, f"{name}-queued")
    _render_queued(app, queued)
    link = page.get_by_test_id("job-file")  # the panel's poll finds the job done
    expect(link).to_be_visible()
    expect(panel).to_have_attribute("data-state", "done")
    _shot(page, f"{name}-done")
    response = page.request.get(link.get_attribute("href"))
    assert response.headers["content-type"] == "application/pdf"
    return response.body(), panel.inner_text()


def _page_texts(data):
    """The text of each page of a PDF, as pdftotext reads it."""
    return [subprocess.run(["pdftotext", "-layout", "-f", str(n), "-l", str(n), "-", "-"],
                           input=data, capture_output=True, check=True).stdout.decode()
            for n in range(1, pdf_pages(data) + 1)]


def _cover_image(data, dpi=200):
    png = subprocess.run(["pdftoppm", "-r", str(dpi), "-f", "1", "-l", "1", "-png", "-gray",
                          "-"], input=data, capture_output=True, check=True).stdout
    return Image.open(io.BytesIO(png)).convert("L")


def _cover_qr(data, modules):
    """The square of `modules` × `modules` dark and light cells drawn on the cover, read
    off its tallest block of ink, or None when that block is no square (lines of text)."""
    image = _cover_image(data)
    ink = image.point(lambda v: 255 if v < 128 else 0)
    width, height = image.size
    rows = [ink.crop((0, y, width, y + 1)).getbbox() is not None for y in range(height)]
    blocks, start = [], None
    for y, inked in enumerate([*rows, False]):
        if inked and start is None:
            start = y
        elif not inked and start is not None:
            blocks.append((start, y))
            start = None
    top, bottom = max(blocks, key=lambda b: b[1] - b[0])
    left, _, right, _ = ink.crop((0, top, width, bottom)).getbbox()
    side = bottom - top
    if side < 100 or abs((right - left) - side) > 3:
        return None
    cell = side / modules
    return [[image.getpixel((int(left + (i + 0.5) * cell), int(top + (j + 0.5) * cell))) < 128
             for i in range(modules)] for j in range(modules)]


def _shot(page, name):
    """The page as SCREENSHOT_DIR/march-<name>.png, when that is set."""
    screenshot(page, f"march-{name}")


def _save_cover(data, name):
    """The PDF and its cover as SCREENSHOT_DIR/march-<name>.pdf and .png, to look at,
    when that is set."""
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"march-{name}.pdf").write_bytes(data)
        _cover_image(data, dpi=60).save(Path(folder) / f"march-{name}-cover.png")


def _flash(page):
    return page.locator(".flashes")


def _move_on(page, cycle, phase):
    """The chair moves the cycle on from its page, and reads the new phase."""
    page.goto(f"/cycles/{cycle.id}")
    expect(page.locator("main")).to_contain_text("已满足进入下一阶段的全部条件。")
    with page.expect_navigation():
        page.get_by_role("button", name="进入下一阶段").click()
    expect(_flash(page)).to_contain_text(f"评级周期已进入“{phase}”阶段。")
    expect(page.locator("ol.phases li[aria-current=step]")).to_have_text(phase)


# --- The walk ----------------------------------------------------------------------

def test_a_committee_grades_signs_and_publishes_in_separate_browsers(
        app, make, live_server, new_page, monkeypatch, tmp_path):
    """The issue's walk: the branch manager fills and submits a sheet by keyboard (no
    false "saved", the comment kept through a refused submit); the members score
    eleven customers by keyboard in at most 12 keys a sheet while the chair settles each
    with one key; the cycle page and the draft report count only what is settled and
    the draft says 草稿 on every page; signed, the published report carries its
    fingerprint and a QR code of the verification address; Back and Forward on the
    customer list show whole pages."""
    cycle, sheets, setup = _march_setup(app, make)
    live_server.app.config.update(MEETING_POLL_SECONDS=1, BOARD_POLL_SECONDS=1)
    queued = []
    monkeypatch.setattr("services.jobs.render_report", queued.append)
    criteria = _criteria(setup["template"])
    nature, strength, growth, profit, relation, strategy = criteria
    levels = {c.id: list(CriterionLevel.select().where(CriterionLevel.criterion == c)
                         .order_by(CriterionLevel.position)) for c in criteria}
    tiers = {tier.code: tier for tier in Tier.select()}

    pages = [new_page() for _ in range(5)]
    for page in pages:
        page.set_viewport_size({"width": 1366, "height": 900})
    chair, members, manager = pages[0], pages[1:4], pages[4]
    _log_in_together(pages, ("chair", *MEMBERS, "bm_e"))

    # 1. The chair cannot move on while the east has a sheet open.
    chair.goto(f"/cycles/{cycle.id}")
    expect(chair.locator("ol.phases li[aria-current=step]")).to_have_text("初评")
    expect(chair.locator("ul.missing")).to_have_text("华东分公司：1 份初评表尚未提交。")
    expect(chair.get_by_role("button", name="进入下一阶段")).to_be_disabled()

    # The branch manager fills it by keyboard alone, from the first criterion's level.
    first = sheets[0]
    manager.goto(f"/assessments/{first.id}")
    expect(manager.locator("main")).to_contain_text(first.customer.name)
    _row(manager, nature).locator("select[name=level]").focus()
    keys = manager.keyboard
    keys.press("1")  # 政府/国有企业: fixed at 15, saved at once
    _focused(manager, nature, "input[name=points]")
    expect(_state(manager, nature)).to_have_text("✓ 已保存")
    keys.press("Enter")
    _focused(manager, strength)
    keys.press("1")  # 强大 (10–15), then 14 typed over the proposal
    keys.type("14")
    keys.press("Enter")
    _focused(manager, growth)
    _saved(manager, strength, 14)
    keys.press("2")  # 中成长 (5–10): Enter takes the proposed midpoint, 8
    keys.press("Enter")
    _focused(manager, profit)
    _saved(manager, growth, 8)
    keys.press("1")  # 贡献大 (10–15): 12, saved
    keys.type("12")
    keys.press("Enter")
    _saved(manager, profit, 12)
    _focused(manager, relation)
    # Back to the profit's points: 99 is typed over the saved 12. The old mark goes as
    # soon as typing starts, and the refusal stands beside the field, with no "saved".
    keys.press("Shift+Tab")
    keys.press("Shift+Tab")
    _focused(manager, profit, "input[name=points]")
    keys.press("ControlOrMeta+a")
    keys.type("99")
    expect(_state(manager, profit)).to_have_text("")
    keys.press("Enter")
    expect(_state(manager, profit)).to_have_text("该档次分值为 10–15 分。")
    expect(_row(manager, profit).locator("input[name=points]")).to_have_value("99")
    expect(_row(manager, profit).locator("input[name=points]")).to_have_attribute(
        "aria-invalid", "true")
    expect(_row(manager, profit).locator(".points")).to_have_text("—")
    _focused(manager, relation)
    keys.press("1")  # 与最高层关系默契 (15–20): the midpoint, 18
    keys.press("Enter")
    _saved(manager, relation, 18)
    _focused(manager, strategy)
    for _ in range(3):  # past the strategy's points and comment, to the overall comment
        keys.press("Tab")
    expect(manager.locator("#comment")).to_be_focused()
    keys.type(OVERALL)
    keys.press("Tab")
    expect(manager.get_by_role("button", name="提交评级委员会")).to_be_focused()
    keys.press("Enter")
    message = manager.locator("#submit-message")
    expect(message).to_contain_text(f"尚未打分：{strategy.name}。")
    expect(message).to_contain_text(f"修改尚未保存：{profit.name}。")
    expect(_row(manager, strategy).locator(".need-mark")).to_have_text("尚未打分")
    expect(_row(manager, profit).locator(".need-mark")).to_have_text("修改未保存")
    expect(manager.locator("#comment")).to_have_value(OVERALL)
    expect(_state(manager, profit)).not_to_contain_text("已保存")
    _focused(manager, profit)  # the first row the refusal names
    _shot(manager, "sheet-refused")
    assert Assessment.get_by_id(first.id).preliminary_submitted_at is None
    # The profit's level is chosen already: its digit goes on to the points, 13 replaces
    # the 99; then on to the strategy, and the submit.
    keys.press("1")
    _focused(manager, profit, "input[name=points]")
    keys.type("13")
    keys.press("Enter")
    _saved(manager, profit, 13)
    _focused(manager, relation)
    for _ in range(3):
        keys.press("Tab")
    _focused(manager, strategy)
    keys.press("1")  # 非常重要 (15–20): the midpoint, 18
    keys.press("Enter")
    _saved(manager, strategy, 18)
    expect(manager.locator("#sheet-total")).to_contain_text("86 / 100")
    for _ in range(2):
        keys.press("Tab")
    expect(manager.locator("#comment")).to_be_focused()
    expect(manager.locator("#comment")).to_have_value(OVERALL)
    keys.press("Tab")
    with manager.expect_navigation():
        keys.press("Enter")
    expect(_flash(manager)).to_contain_text(f"“{first.customer.name}”的初评表已提交。")
    _shot(manager, "sheet-submitted")
    first = Assessment.get_by_id(first.id)
    assert first.preliminary_submitted_at is not None and first.preliminary_comment == OVERALL
    preliminary = {(s.assessment_id, s.criterion): s.points for s in Score.select().where(
        Score.stage == "preliminary")}
    assert [preliminary[first.id, c.id] for c in criteria] == [15, 14, 8, 13, 18, 18]

    # The chair moves the cycle on to the committee.
    _move_on(chair, cycle, "委员会复评")

    # 2. The meeting: the chair opens the first customer; members follow by themselves.
    for page in (chair, *members):
        page.goto(f"/cycles/{cycle.id}/meeting")
    expect(members[0].locator(".current-sheet")).to_contain_text("主任尚未打开任何客户")
    chair.locator(".agenda-list li").filter(has_text=first.customer.name).get_by_role(
        "button", name="现在讨论").click()
    expect(chair.locator("h1")).to_have_text(first.customer.name)
    means = {}

    def grade(n, sheet):
        """Members score the n-th customer by keyboard; the chair settles it with one key."""
        name = sheet.customer.name
        for page in members:
            page.locator(f"h1:text-is('{name}')").wait_for()
            page.wait_for_load_state()
        totals, expected = [], []
        for k, page in enumerate(members):
            _focused(page, nature)  # the page puts the focus on the first criterion
            counter = _Keys(page)
            points = []
            for criterion, digit in zip(criteria, _plan(n, k)):
                counter.press(digit)
                counter.press("Enter")
                points.append(_taken(levels[criterion.id][int(digit) - 1],
                                     preliminary.get((sheet.id, criterion.id))))
            assert counter.count <= 12, counter.count
            totals.append(sum(points))
            expected.append(points)
        for page, points, total in zip(members, expected, totals):
            for criterion, p in zip(criteria, points):
                _saved(page, criterion, p)
            expect(page.locator("#sheet-total")).to_contain_text(f"{total} / 100")
        _expect_board(chair, totals)
        mean = round(sum(totals) / 3, 2)
        means[sheet.id] = mean
        expect(chair.locator("#final-tier-choice select")).to_have_value(
            str(tiers[_band(mean)].id))
        if n == 0:
            _shot(members[0], "meeting-member")
            _shot(chair, "meeting-chair")
        # One key: Ctrl+Enter, or N outside a text field (nothing has the focus here).
        with chair.expect_navigation():
            chair.keyboard.press("Control+Enter" if n % 2 == 0 else "n")
        return name

    for n, sheet in enumerate(sheets[:SETTLED_FIRST]):
        name = grade(n, sheet)
        following = sheets[n + 1].customer.name
        expect(_flash(chair)).to_contain_text(f"{name} 已定级，委员会转到 {following}。")
        expect(chair.locator("h1")).to_have_text(following)
    expect(chair.get_by_test_id("agenda-counts")).to_have_text(
        "已定级 10 · 待再议 0 · 未评分 1 · 共 11")
    for sheet in sheets[:SETTLED_FIRST]:
        final = Assessment.get_by_id(sheet.id)
        assert (final.final_tier_id, float(final.final_total)) == (
            tiers[_band(means[sheet.id])].id, means[sheet.id])

    # 3. The cycle page counts the ten settled, not the eleventh's computed grade.
    chair.goto(f"/cycles/{cycle.id}")
    expect(chair.get_by_test_id("settled")).to_have_text("10 / 11")
    expect(chair.get_by_test_id("computed")).to_have_text(
        "其中 1 位的结果只是按总分推算的等级，尚未定级。")
    expect(chair.locator("ul.missing")).to_have_text("1 份评估表尚未确定最终等级。")
    expect(chair.get_by_role("button", name="进入下一阶段")).to_be_disabled()
    by_branch = chair.locator("table.table", has=chair.locator("th", has_text="最终等级"))
    expect(by_branch.locator("tbody tr td:first-child")).to_have_text(["华东分公司", "西南分公司"])
    expect(by_branch.locator("tbody tr td:last-child")).to_have_text(["7", "3"])
    # The eleventh's grade is marked as only computed, in the lists too; and the mark
    # leaves the names room (it once squeezed them to two characters a line).
    expect(chair.locator(".list-card tr", has_text=sheets[-1].customer.name).first).to_contain_text(
        "（推算）")
    narrowest = chair.locator(".list-card td:first-child a").evaluate_all(
        "links => Math.min(...links.map(a => a.getBoundingClientRect().width"
        " / parseFloat(getComputedStyle(a).fontSize)))")
    assert narrowest >= 4, f"a customer's name gets {narrowest:.1f} characters a line"
    _shot(chair, "cycle-ten-of-eleven")

    # The draft report, rendered from its page: 草稿 on every page, ten of eleven graded,
    # and neither a fingerprint nor a verification address or QR code on the cover.
    draft, said = _report_from_the_page(app, chair, queued, "report-draft")
    assert "草稿" in said, said
    _save_cover(draft, "report-draft")
    texts = _page_texts(draft)
    assert len(texts) >= len(sheets) + 2, len(texts)
    assert [n for n, text in enumerate(texts, 1) if DRAFT_ON_EVERY_PAGE not in text] == []
    cover = texts[0]
    assert "草稿：评级委员会尚未全体签字确认本评定结果。" in cover
    assert "指纹" not in cover and "核验本文件" not in cover and "/verify" not in cover
    unsigned = results_fingerprint(GradingCycle.get_by_id(cycle.id))
    assert unsigned not in re.sub(r"\s", "", cover)
    modules = len(segno.make(f"{PUBLIC_URL}/verify", error="m").matrix)
    assert _cover_qr(draft, modules) is None
    assert "共 11 位客户，已评定 10 位" in texts[1]
    assert "其中 1 位的结果只是按总分推算的等级，尚未定级。" in texts[1]

    # 4. The eleventh customer, settled with N; the members' screens show it locked.
    chair.goto(f"/cycles/{cycle.id}/meeting")
    last = sheets[SETTLED_FIRST]
    expect(chair.locator("h1")).to_have_text(last.customer.name)
    name = grade(SETTLED_FIRST, last)
    expect(_flash(chair)).to_contain_text(f"{name} 已定级。议程上的客户已全部定级。")
    for page in members:
        expect(page.locator(".final-grade")).to_contain_text(NOTICE)
    expect(chair.get_by_test_id("agenda-counts")).to_have_text(
        "已定级 11 · 待再议 0 · 未评分 0 · 共 11")
    chair.goto(f"/cycles/{cycle.id}")
    expect(chair.get_by_test_id("settled")).to_have_text("11 / 11")
    expect(chair.get_by_test_id("computed")).to_have_count(0)
    _move_on(chair, cycle, "签署")

    # Signing: the chair's signature first is refused; each member signs with their
    # password in their own session, then the chair.
    signing = f"/cycles/{cycle.id}/signing"
    chair.goto(signing)
    fingerprint = results_fingerprint(GradingCycle.get_by_id(cycle.id))
    expect(chair.get_by_test_id("fingerprint")).to_have_text(fingerprint)
    chair.fill("#password", PASSWORD)
    with chair.expect_navigation():
        chair.locator("#password").press("Enter")
    expect(_flash(chair)).to_contain_text("主任须在全部委员签字后最后签字。")
    assert CycleSignature.select().count() == 0
    for page in members:
        page.goto(signing)
        page.fill("#password", PASSWORD)
        with page.expect_navigation():
            page.locator("#password").press("Enter")
        expect(_flash(page)).to_contain_text("您已签字确认“2027年度客户分级评定”的评定结果。")
    chair.goto(signing)
    expect(chair.locator("main")).to_contain_text("尚未签字：周主任")
    chair.fill("#password", PASSWORD)
    with chair.expect_navigation():
        chair.locator("#password").press("Enter")
    expect(_flash(chair)).to_contain_text("您已签字确认“2027年度客户分级评定”的评定结果。")
    expect(chair.locator("[data-testid=signatures] tbody tr")).to_have_count(4)
    _shot(chair, "signed")
    signatures = list(CycleSignature.select().order_by(CycleSignature.id))
    assert [(s.user.username, s.role, s.fingerprint) for s in signatures] == [
        *((m, "member", fingerprint) for m in MEMBERS), ("chair", "chair", fingerprint)]
    _move_on(chair, cycle, "已发布")

    # The published report: no 草稿 anywhere; its cover has the fingerprint the committee
    # signed, the verification address and a QR code of that address; /verify accepts it.
    signed, said = _report_from_the_page(app, chair, queued, "report-signed")
    assert "已用本单位的密钥签名。" in said and "草稿" not in said, said
    _save_cover(signed, "report-signed")
    texts = _page_texts(signed)
    assert [n for n, text in enumerate(texts, 1) if "草稿" in text] == []
    cover = texts[0]
    assert "评定结果指纹（SHA-256）：" in cover
    assert fingerprint in re.sub(r"\s", "", cover)
    assert f"核验本文件： {PUBLIC_URL}/verify" in cover
    expected = [[bool(cell) for cell in row]
                for row in segno.make(f"{PUBLIC_URL}/verify", error="m").matrix]
    assert _cover_qr(signed, modules) == expected
    assert "共 11 位客户，已评定 11 位" in texts[1]
    for who in ("委员甲", "委员乙", "委员丙", "周主任"):
        assert who in texts[-1]
    (tmp_path / "report.pdf").write_bytes(signed)
    chair.goto("/verify")
    chair.set_input_files("#file", str(tmp_path / "report.pdf"))
    with chair.expect_navigation():
        chair.click("main form button[type=submit]")
    verdict = chair.get_by_test_id("verdict")
    expect(verdict).to_have_attribute("data-valid", "yes")
    expect(verdict).to_contain_text("2027年度客户分级评定")
    _shot(chair, "verify")

    # 5. The branch manager's customer list: a search, then a tier; Back and Forward
    # each show the whole page with the URL's filters.
    manager.goto("/customers")
    form = "form[role=search]"
    search, tier = manager.locator("#q"), manager.locator(f"{form} select[name=tier]")
    total = manager.get_by_test_id("total")
    expect(total).to_have_text("共 7 位客户")
    manager.fill("#q", "上海")
    expect(manager).to_have_url(re.compile(r"/customers\?q=%E4%B8%8A%E6%B5%B7$"))
    expect(total).to_have_text("共 4 位客户")
    tier.select_option(str(tiers["B"].id))
    expect(manager).to_have_url(re.compile(rf"/customers\?q=[^&]+&tier={tiers['B'].id}$"))
    expect(total).to_have_text("共 3 位客户")
    for move, value, chosen, count in ((manager.go_back, "上海", "", 4),
                                       (manager.go_back, "", "", 7),
                                       (manager.go_forward, "上海", "", 4),
                                       (manager.go_forward, "上海", str(tiers["B"].id), 3)):
        _travel(manager, move)
        _whole_page(manager, form)
        expect(search).to_have_value(value)
        expect(tier).to_have_value(chosen)
        expect(total).to_have_text(f"共 {count} 位客户")
    _shot(manager, "customers-forward")
