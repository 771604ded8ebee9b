"""The grading committee's meeting in real browsers: a chair and three members, each in a
session of their own, grade ten customers from the first one to the last final grade."""
from playwright.sync_api import expect

from models import Assessment, CriterionLevel, CustomerYear, Score, Tier, User
from models.cycles import save_cycle, save_score, set_current, submit_preliminary
from models.phases import advance
from services.formatting import points
from tests.conftest import PASSWORD
from tests.live import log_in, screenshot
from tests.test_cycles import _criteria, _fill, _in_committee, make_setup

MEMBERS = ("m1", "m2", "m3")
# Each member's total (m1, m2, m3) per customer, in agenda order: within one band and at
# most 10 points apart, except on DISAGREE, where m1 and m2 lie 50 points apart.
TOTALS = [(86, 90, 84), (70, 72, 66), (50, 55, 48), (90, 40, 65), (62, 64, 60),
          (76, 80, 78), (40, 44, 38), (74, 70, 68), (58, 55, 52), (95, 98, 92)]
DISAGREE = 3
OVERRIDE, OVERRIDE_TIER = 3, "C"  # the mean of 65.0 is a B; the chair settles on C
LATE = 0  # a member tries to change this customer's scores after its grade is set
MAXIMA = (15, 15, 15, 15, 20, 20)  # the default scorecard's criteria, in order
NOTICE = "主任已确定最终等级，评分已锁定。"


def _band(total):
    """The default scorecard's bands (DESIGN.md): A from 75, B from 60, C below."""
    return "A" if total >= 75 else "B" if total >= 60 else "C"


def _split(total):
    """Points per criterion adding up to `total`; 客户性质 has fixed levels of 15, 10 or 5."""
    nature = 15 if total >= 75 else 10 if total >= 45 else 5
    rest = total - nature
    points = [rest * top // sum(MAXIMA[1:]) for top in MAXIMA[1:]]
    for i in range(rest - sum(points)):
        points[i] += 1
    return [nature, *points]


def _meeting_setup(app, make):
    """A cycle in committee review: ten customers with yearly figures and submitted
    preliminary sheets, a chair and three members."""
    setup = make_setup(app, make)
    with app.test_request_context():
        setup["customers"] += [make.customer(setup["east"], f"华东客户{n}") for n in (3, 4, 5)]
        setup["customers"] += [make.customer(setup["west"], f"西南客户{n}") for n in (2, 3)]
        members = [*setup["members"], make.user("m3", roles=("committee_member",))]
        for user, name in zip([setup["chair"], *members], ("周主任", "委员甲", "委员乙", "委员丙")):
            User.update(display_name=name).where(User.id == user.id).execute()
        cycle = save_cycle(None, setup["admin"], name="2027年度客户分级评定", year=2027,
                           template_existing=setup["template"], template_prospect=None,
                           scope={}, chair=setup["chair"], members=members)
        cycle = advance(cycle, setup["chair"])
        sheets = list(Assessment.select().where(Assessment.cycle == cycle)
                      .order_by(Assessment.agenda_position))
        for n, sheet in enumerate(sheets):
            CustomerYear.create(customer=sheet.customer_id, year=2026, sales=1_000_000 * (n + 1),
                                profit=100_000 * (n + 1), collection_rate=90 + n, credit_days=30)
            manager = setup["bm_east"] if sheet.branch_id == setup["east"].id else \
                setup["bm_west"]
            _fill(sheet, manager, setup["template"], points=(10, 15, 5)[n % 3])
            submit_preliminary(sheet, manager)
        cycle = advance(cycle, setup["chair"])
    return cycle, sheets, setup


def _log_in_together(pages, usernames):
    """Each user logs in through the login form; all at once, since checking a password
    is slow on purpose."""
    for page, username in zip(pages, usernames):
        page.goto("/login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
    for page in pages:
        page.click("main form button[type=submit]", no_wait_after=True)
    for page in pages:
        page.wait_for_url("/")


def _row(page, criterion):
    return page.locator(f"#criterion-{criterion.id}")


def _type_row(page, criterion, points):
    """Keyboard only, from the row's level: Tab to the points, type them, Tab to save."""
    page.keyboard.press("Tab")
    expect(_row(page, criterion).locator("input[name=points]")).to_be_focused()
    page.keyboard.type(str(points))
    page.keyboard.press("Tab")


def _choose_level(page, criterion, level):
    _row(page, criterion).locator("select[name=level]").select_option(str(level.id))


def _fill_points(page, criterion, level, points):
    """After the level has saved (the row came back at revision 1), fill in the points."""
    if level.is_fixed:
        return
    row = _row(page, criterion)
    row.locator("input[name=revision][value='1']").wait_for(state="attached")
    row.locator("input[name=points]").fill(str(points))
    row.locator("input[name=points]").press("Tab")


def _saved(page, criterion, points):
    """Wait until the row has come back saved, with these points."""
    page.locator(f"#criterion-{criterion.id}:has(.points:text-is('{points}'))"
                 ":has(.save-state:text('已保存'))").wait_for()


def _expect_board(chair, totals):
    """The chair's board shows each member's total and grade, the mean and the spread."""
    board = chair.locator("#board")
    board.locator("[data-testid=scored]:text-is('3 位委员中已有 3 位打分。')").wait_for()
    mean = round(sum(totals) / 3, 2)
    cells = {"周主任": "—", "平均分": f"{points(mean)} {_band(mean)}级",
             "分差": str(max(totals) - min(totals))}
    for who, total in zip(("委员甲", "委员乙", "委员丙"), totals):
        cells[who] = f"{total} {_band(total)}级"
    # The members' columns come in the database's order of names.
    headings = [h.split()[0] for h in board.locator("thead th").all_inner_texts()[1:]]
    expect(board.locator("tfoot td")).to_have_text([cells[h] for h in headings],
                                                    use_inner_text=True)
    # Laid out as a table: each member's total sits under the member's name. (The
    # funnel's kanban `.board` grid once captured this table and scattered its cells.)
    # Measured in one step: the board is polled, and a swap between two measurements
    # would leave the second one measuring an element no longer on the page.
    names, sums = board.evaluate("""board => [
        [...board.querySelectorAll('thead th')].slice(1).map(e => e.getBoundingClientRect().x),
        [...board.querySelectorAll('tfoot td')].map(e => e.getBoundingClientRect().x)]""")
    assert len(names) == len(sums) == len(cells)
    for name, total in zip(names, sums):
        assert abs(name - total) < 1


def test_committee_grades_ten_customers_in_a_meeting(app, make, live_server, new_page):
    """Members follow the chair, autosave their scores, the chair sees them and sets grades."""
    cycle, sheets, setup = _meeting_setup(app, make)
    live_server.app.config.update(MEETING_POLL_SECONDS=1, BOARD_POLL_SECONDS=1)
    criteria = _criteria(setup["template"])
    tiers = {tier.code: tier for tier in Tier.select()}
    levels = {c.id: list(CriterionLevel.select().where(CriterionLevel.criterion == c)
                         .order_by(CriterionLevel.position)) for c in criteria}

    def level_for(criterion, points):
        return next(lv for lv in levels[criterion.id] if lv.min_points <= points <= lv.max_points)

    pages = [new_page() for _ in range(4)]
    chair, members = pages[0], pages[1:]
    _log_in_together(pages, ("chair", *MEMBERS))
    for page in pages:
        page.goto(f"/cycles/{cycle.id}/meeting")
    expect(members[0].locator(".current-sheet")).to_contain_text("自动跟随主任")

    for n, sheet in enumerate(sheets):
        name, totals = sheet.customer.name, TOTALS[n]
        points = [_split(total) for total in totals]
        # (No wait for this navigation: the chair's own poll may see the move first and
        # reload the page, which lands on the same customer.)
        chair.locator(".agenda-list li").filter(has_text=name).get_by_role(
            "button", name="现在讨论").click()
        expect(chair.locator("h1")).to_have_text(name)
        # Every member's screen follows by itself, with the figures and preliminary scores.
        for page in members:
            page.locator(f"h1:text-is('{name}')").wait_for()
            page.wait_for_load_state()
        expect(members[0].locator(".current-sheet")).to_contain_text(f"{100 * (n + 1):,}.00 万元")
        expect(members[0].locator(".current-sheet")).to_contain_text(f"{90 + n}.0%")
        expect(_row(members[1], criteria[1]).locator("td.muted")).to_have_text(
            str((10, 15, 5)[n % 3]))

        # m2 and m3 choose each level, then type the points where the level is a range;
        # meanwhile m1 scores the whole sheet without the mouse. Every change saves itself.
        keyboard, *choosers = members
        chosen = [[level_for(c, p[i]) for i, c in enumerate(criteria)] for p in points[1:]]
        for page, page_levels in zip(choosers, chosen):
            for criterion, level in zip(criteria, page_levels):
                _choose_level(page, criterion, level)
        keyboard.locator(f"#criterion-{criteria[0].id} select[name=level]").focus()
        for criterion, p in zip(criteria, points[0]):
            _type_row(keyboard, criterion, p)
            _saved(keyboard, criterion, p)
            keyboard.keyboard.press("Tab")  # on to the next criterion's level
        for page, page_levels, page_points in zip(choosers, chosen, points[1:]):
            for criterion, level, p in zip(criteria, page_levels, page_points):
                _fill_points(page, criterion, level, p)
        for page, page_points in zip(choosers, points[1:]):
            for criterion, p in zip(criteria, page_points):
                _saved(page, criterion, p)
        for page, total in zip(members, totals):
            expect(page.locator("#sheet-total")).to_contain_text(f"{total} / 100")

        # The chair's board fills in by itself.
        _expect_board(chair, totals)
        board, mean = chair.locator("#board"), round(sum(totals) / 3, 2)
        expect(board.get_by_test_id("disagree")).to_have_count(1 if n == DISAGREE else 0)
        choice = chair.locator("#final-tier-choice select")
        expect(choice).to_have_value(str(tiers[_band(mean)].id))  # the mean's band, preselected
        if n == DISAGREE:
            screenshot(keyboard, "meeting-member")
            screenshot(chair, "meeting-chair")

        if n == OVERRIDE:
            choice.select_option(str(tiers[OVERRIDE_TIER].id))
            with chair.expect_navigation():
                chair.get_by_role("button", name="确定最终等级").click()
            expect(chair.locator(".flash-error")).to_contain_text("必须填写理由")
            choice.select_option(str(tiers[OVERRIDE_TIER].id))
            chair.locator("textarea[name=rationale]").fill("两位委员分歧大，回款风险未消除，按C级服务。")
        with chair.expect_navigation():
            chair.get_by_role("button", name="确定最终等级").click()
        grade = OVERRIDE_TIER if n == OVERRIDE else _band(mean)
        expect(chair.locator(".final-grade")).to_contain_text(f"{grade}级")

        if n == LATE:  # m2 still has the sheet open: the next poll shows the grade, locked
            expect(members[1].locator(".final-grade")).to_contain_text(NOTICE)
            expect(_row(members[1], criteria[0]).locator("input")).to_have_count(0)

    expect(chair.locator(".agenda-list li.final")).to_have_count(len(sheets))
    finals = {a.id: a for a in Assessment.select().where(Assessment.cycle == cycle)}
    for n, sheet in enumerate(sheets):
        final, mean = finals[sheet.id], round(sum(TOTALS[n]) / 3, 2)
        grade = OVERRIDE_TIER if n == OVERRIDE else _band(mean)
        assert (final.final_tier_id, float(final.final_total)) == (tiers[grade].id, mean)
        assert bool(final.rationale) == (n == OVERRIDE), final.rationale
    assert "回款风险" in finals[sheets[OVERRIDE].id].rationale
    committee = Score.select().where(Score.stage == "committee")
    assert committee.count() == len(MEMBERS) * len(sheets) * len(criteria)
    for n, sheet in enumerate(sheets):
        for username, total in zip(MEMBERS, TOTALS[n]):
            assert sum(s.points for s in committee.join(User, on=(Score.member == User.id))
                       .where(Score.assessment == sheet.id, User.username == username)) == total
    assert not committee.where(Score.comment != "").exists()  # the late comment was refused


def _first_customer_open(app, make, page):
    """The chair has opened the first customer (preliminary 10 each), m1 is logged in:
    (the cycle, the sheet, its criteria)."""
    setup = make_setup(app, make)
    cycle = _in_committee(app, setup)
    sheet = Assessment.select().where(Assessment.cycle == cycle).order_by(
        Assessment.agenda_position).first()
    with app.test_request_context():
        set_current(cycle, setup["chair"], sheet)
    log_in(page, "m1")
    return cycle, sheet, _criteria(setup["template"])


def _member_on_first_customer(app, make, page):
    """m1's meeting screen on the first customer (see _first_customer_open)."""
    cycle, sheet, criteria = _first_customer_open(app, make, page)
    page.goto(f"/cycles/{cycle.id}/meeting")
    return sheet, criteria


def test_a_member_scores_a_row_with_level_points_and_comment_by_keyboard(
        app, make, live_server, page):
    """Level, points and comment go in by keyboard alone: autosave keeps the focus in place."""
    sheet, criteria = _member_on_first_customer(app, make, page)
    strength, row = criteria[1], _row(page, criteria[1])
    row.locator("select[name=level]").focus()
    for key in ("Alt+ArrowDown", "ArrowDown", "Enter"):  # the list's first level: 强大（10–15）
        page.keyboard.press(key)
    row.locator("input[name=revision][value='1']").wait_for(state="attached")
    expect(row.locator("select[name=level]")).to_be_focused(timeout=1000)
    page.keyboard.press("Tab")
    page.keyboard.type("13")
    page.keyboard.press("Tab")
    _saved(page, strength, 13)
    expect(row.locator("input[name=comment]")).to_be_focused(timeout=1000)
    page.keyboard.type("规模大，回款及时")
    page.keyboard.press("Tab")
    row.locator("input[name=revision][value='3']").wait_for(state="attached")
    score = Score.get(Score.assessment == sheet.id, Score.criterion == strength.id,
                      Score.stage == "committee")
    assert (CriterionLevel.get_by_id(score.level).name, score.points, score.comment) == (
        "强大", 13, "规模大，回款及时")


def test_a_saved_row_still_shows_the_preliminary_score(app, make, live_server, page):
    """After autosave a member's row still shows the preliminary points beside their own."""
    _, criteria = _member_on_first_customer(app, make, page)
    row = _row(page, criteria[1])
    expect(row.locator("td.muted")).to_have_text("10")
    row.locator("input[name=points]").fill("12")
    row.locator("input[name=points]").press("Tab")
    _saved(page, criteria[1], 12)
    expect(row.locator("td.muted")).to_have_text("10", timeout=1000)


def test_the_chair_settles_and_moves_on_with_one_key(app, make, live_server, new_page):
    """One key settles the customer with the board's grade (N) or the chair's own with a
    rationale (Ctrl+Enter) and moves everyone on: a member's screen follows by itself."""
    cycle, sheets, setup = _meeting_setup(app, make)
    live_server.app.config.update(MEETING_POLL_SECONDS=1, BOARD_POLL_SECONDS=1)
    criteria = _criteria(setup["template"])
    members = [User.get(User.username == name) for name in MEMBERS]
    with app.test_request_context():
        set_current(cycle, setup["chair"], sheets[0])
        for sheet, totals in zip(sheets[:2], TOTALS[:2]):
            for member, total in zip(members, totals):
                for criterion, p in zip(criteria, _split(total)):
                    save_score(sheet, member, "committee", criterion.id, None, p, "", 0)
        # A member halfway through the third customer: the board says so, with no grade.
        for criterion in criteria[:4]:
            save_score(sheets[2], members[0], "committee", criterion.id, None, 12, "", 0)
    chair, member = new_page(), new_page()
    _log_in_together([chair, member], ("chair", "m1"))
    for page in (chair, member):
        page.goto(f"/cycles/{cycle.id}/meeting")
    expect(chair.get_by_test_id("keys")).to_contain_text("Ctrl+Enter")
    expect(chair.get_by_test_id("agenda-counts")).to_have_text(
        "已定级 0 · 待再议 0 · 未评分 7 · 共 10")
    for width, height in ((1366, 900), (390, 844)):
        chair.set_viewport_size({"width": width, "height": height})
        screenshot(chair, f"meeting-chair-keys-{width}")
    chair.set_viewport_size({"width": 1366, "height": 900})

    # N, outside any text field: the mean's band (86.67: an A), then the next customer.
    chair.evaluate("document.activeElement && document.activeElement.blur()")
    with chair.expect_navigation():
        chair.keyboard.press("n")
    expect(chair.locator("h1")).to_have_text(sheets[1].customer.name)
    expect(chair.locator(".flashes")).to_contain_text(
        f"{sheets[0].customer.name} 已定级，委员会转到 {sheets[1].customer.name}。")
    member.locator(f"h1:text-is('{sheets[1].customer.name}')").wait_for()
    assert Assessment.get_by_id(sheets[0].id).final_tier.code == "A"

    # Typing "n" in the rationale is just a letter; Ctrl+Enter there settles on C with it.
    chair.locator("#final-tier-choice select").select_option(
        str(Tier.get(Tier.code == "C").id))
    chair.locator("textarea[name=rationale]").fill("回款偏慢")
    chair.locator("textarea[name=rationale]").press("n")
    expect(chair.locator("textarea[name=rationale]")).to_have_value("回款偏慢n")
    with chair.expect_navigation():
        chair.locator("textarea[name=rationale]").press("Control+Enter")
    expect(chair.locator("h1")).to_have_text(sheets[2].customer.name)
    member.locator(f"h1:text-is('{sheets[2].customer.name}')").wait_for()
    second = Assessment.get_by_id(sheets[1].id)
    assert (second.final_tier.code, second.rationale) == ("C", "回款偏慢n")
    board = chair.locator("#board")
    expect(board.get_by_test_id("waiting")).to_contain_text("委员甲")
    expect(board.get_by_test_id("incomplete")).to_have_text("已评 4/6 项")
    expect(chair.get_by_test_id("agenda-counts")).to_contain_text("已定级 2")
    for width, height in ((1366, 900), (390, 844)):
        chair.set_viewport_size({"width": width, "height": height})
        screenshot(chair, f"meeting-chair-next-{width}")


class _Keys:
    """The keyboard, counting every key it presses (typing counts one per character)."""

    def __init__(self, page):
        self.page, self.count = page, 0

    def press(self, key):
        self.count += 1
        self.page.keyboard.press(key)

    def type(self, text):
        self.count += len(text)
        self.page.keyboard.type(text)


def _committee_score(sheet, criterion):
    return Score.get(Score.assessment == sheet.id, Score.criterion == criterion.id,
                     Score.stage == "committee")


def test_a_member_scores_a_whole_sheet_in_at_most_twelve_keystrokes(
        app, make, live_server, page):
    """Six criteria with the keyboard alone, no mouse: a digit picks the level, Enter takes
    the points shown (a fixed level's, the preliminary points where they fit the range,
    else its midpoint) and moves on; every row saves with the right points."""
    sheet, criteria = _member_on_first_customer(app, make, page)  # preliminary 10 each
    expect(page.get_by_test_id("member-keys")).to_contain_text("数字键")
    expect(_row(page, criteria[0]).locator("select[name=level]")).to_be_focused()
    # (level number, its name, the points Enter takes) per criterion, in order.
    plan = [("2", "股份公司", 10),  # fixed points
            ("1", "强大", 10), ("2", "中成长", 10),  # the preliminary 10 fits the range
            ("3", "较小", 3), ("1", "与最高层关系默契", 18),  # 10 does not: the midpoint
            ("2", "一般重要", 10)]
    keys = _Keys(page)
    for digit, _name, _points in plan:
        keys.press(digit)
        keys.press("Enter")
    for criterion, (_digit, _name, taken) in zip(criteria, plan):
        _saved(page, criterion, taken)
    expect(page.locator("#sheet-total")).to_contain_text("61 / 100")
    assert keys.count <= 12, keys.count
    for criterion, (_digit, name, taken) in zip(criteria, plan):
        score = _committee_score(sheet, criterion)
        assert (CriterionLevel.get_by_id(score.level).name, score.points) == (name, taken)
    for width, height in ((1366, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        screenshot(page, f"meeting-member-keys-{width}")


def test_keys_pressed_while_the_page_still_loads_never_pick_a_level_that_is_not_saved(
        app, make, live_server, page):
    """A busy server sends the meeting's last script late. Until it has come, htmx has not
    bound the rows' saves: the focus must not sit on a level yet, or a digit there picks a
    level that no save carries (the simulated meeting lost scores so). Once the page is
    ready the first row has the focus, and the same keys save."""
    cycle, sheet, criteria = _first_customer_open(app, make, page)
    held = []
    page.route("**/static/js/meeting.js*", lambda route: held.append(route))  # answered later
    page.goto(f"/cycles/{cycle.id}/meeting", wait_until="commit")
    expect(page.locator("h1")).to_have_text(sheet.customer.name)
    page.wait_for_function("document.readyState === 'interactive'")  # parsed, not run
    page.wait_for_timeout(300)
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    level = _row(page, criteria[0]).locator("select[name=level]")
    expect(level).not_to_be_focused()
    for route in held:
        route.continue_()
    page.wait_for_load_state()
    expect(level).to_have_value("")  # nothing picked while the page was loading
    expect(level).to_be_focused()
    assert not Score.select().where(Score.assessment == sheet.id,
                                    Score.stage == "committee").exists()
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    _saved(page, criteria[0], 10)  # 股份公司, fixed at 10
    assert _committee_score(sheet, criteria[0]).points == 10


def test_typed_points_sent_with_enter_are_saved_once(app, make, live_server, page):
    """Enter sends the typed points and moves on; leaving the field afterwards does not
    send them a second time (each did: two saves, two audit entries per score)."""
    sheet, criteria = _member_on_first_customer(app, make, page)  # preliminary 10 each
    strength, growth = criteria[1], criteria[2]
    _row(page, strength).locator("select[name=level]").focus()
    page.keyboard.press("1")  # 强大 (10–15): saved without points, 10 proposed
    page.keyboard.type("12")
    page.keyboard.press("Enter")  # sends 12 and moves to the next row's level
    expect(_row(page, growth).locator("select[name=level]")).to_be_focused()
    _saved(page, strength, 12)
    page.keyboard.press("2")  # the next row's save queues behind any other of this sheet
    page.keyboard.press("Enter")
    _saved(page, growth, 10)
    score = _committee_score(sheet, strength)
    assert (score.points, score.revision) == (12, 2)  # the level, then the points


def test_points_typed_while_the_levels_save_waits_in_the_queue_are_saved_whole(
        app, make, live_server, page, monkeypatch):
    """A level picked by its digit while the sheet's previous save is still on its way
    waits in the sheet's queue, and leaves only when that save answers: by then the
    member may have typed half the points ("1" of "12"). The level's save does not send
    them, and its answer does not put them back after Enter sent the whole: 12 is saved.
    (The meeting bench lost one score in 300 so: "1" refused, then sent again by Enter.)"""
    import threading

    import views.cycles
    sheet, criteria = _member_on_first_customer(app, make, page)
    first, strength = criteria[0], criteria[1]
    held, half_held, real = threading.Event(), threading.Event(), views.cycles.save_score

    def slow(sheet, user, stage, criterion_id, level_id, points, *rest):
        if criterion_id == first.id:
            held.wait(10)
        elif criterion_id == strength.id and points == 1:  # half the points, sent alone
            half_held.wait(10)
        return real(sheet, user, stage, criterion_id, level_id, points, *rest)
    monkeypatch.setattr(views.cycles, "save_score", slow)
    expect(_row(page, first).locator("select[name=level]")).to_be_focused()
    with page.expect_request(f"**/assessments/{sheet.id}/scores"):
        page.keyboard.press("2")  # 股份公司, fixed points: saved at once, its answer held
    page.keyboard.press("Enter")
    expect(_row(page, strength).locator("select[name=level]")).to_be_focused()
    page.keyboard.press("1")  # 强大 (10–15): its save waits behind the first row's
    page.keyboard.type("1")
    with page.expect_request(lambda r: "/scores" in r.url
                             and f"criterion={strength.id}&" in (r.post_data or "")):
        held.set()  # the first row's answer comes; the level's save leaves now
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    half_held.set()
    _saved(page, strength, 12)
    expect(_row(page, strength).locator("input[name=points]")).to_have_value("12")
    assert _committee_score(sheet, strength).points == 12


def test_a_member_takes_over_the_preliminary_scores_with_one_key_and_adjusts_a_row(
        app, make, live_server, page):
    """P takes over every preliminary score at once (one request); the member then
    changes one row by keyboard, and only that row differs from the preliminary sheet."""
    sheet, criteria = _member_on_first_customer(app, make, page)
    expect(_row(page, criteria[0]).locator("select[name=level]")).to_be_focused()
    with page.expect_request(f"**/assessments/{sheet.id}/take-over"):
        page.keyboard.press("p")
    expect(page.get_by_test_id("take-over-state")).to_have_text(
        "已采用 6 项初评分数作为您的评分，可逐项调整。")
    for criterion in criteria:
        expect(_row(page, criterion).locator(".points")).to_have_text("10")
    expect(page.locator("#sheet-total")).to_contain_text("60 / 100")
    growth = criteria[2]
    _row(page, growth).locator("select[name=level]").focus()
    page.keyboard.press("1")  # 高成长（10–15）
    page.keyboard.type("12")
    page.keyboard.press("Enter")
    _saved(page, growth, 12)
    expect(page.locator("#sheet-total")).to_contain_text("62 / 100")
    preliminary = {s.criterion: (s.level, s.points) for s in Score.select().where(
        Score.assessment == sheet.id, Score.stage == "preliminary")}
    for criterion in criteria:
        score = _committee_score(sheet, criterion)
        if criterion == growth:
            assert (CriterionLevel.get_by_id(score.level).name, score.points) == ("高成长", 12)
        else:
            assert (score.level, score.points) == preliminary[criterion.id]


def test_a_dropped_connection_keeps_the_typed_score_and_sends_it_when_it_returns(
        app, make, live_server, page):
    """Offline, the member sees a banner and keeps what they typed; back online the row
    is sent with the revision it was based on: saved when nothing changed meanwhile,
    refused with the newer value shown when the score changed elsewhere."""
    from tests.live import problems_of
    sheet, criteria = _member_on_first_customer(app, make, page)
    strength, growth = criteria[1], criteria[2]
    banner = page.get_by_test_id("offline-banner")
    expect(banner).to_be_hidden()
    page.context.set_offline(True)
    expect(banner).to_have_text("网络已断开，已输入的内容会在恢复后自动提交。")
    _row(page, growth).locator("select[name=level]").focus()
    page.keyboard.press("1")  # 高成长（10–15）
    page.keyboard.type("13")
    page.keyboard.press("Enter")
    typed = _row(page, strength).locator("input[name=points]")
    typed.fill("7")
    typed.press("Enter")
    for criterion in (growth, strength):
        expect(_row(page, criterion).locator(".save-state")).to_have_text(
            "尚未提交：网络恢复后会自动提交。")
    expect(_row(page, growth).locator("input[name=points]")).to_have_value("13")
    expect(typed).to_have_value("7")
    with app.test_request_context():  # meanwhile m1's other device saves strength
        save_score(sheet, User.get(User.username == "m1"), "committee", strength.id, None, 12,
                   "", 0)
    for width, height in ((1366, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        screenshot(page, f"meeting-member-offline-{width}")
    page.set_viewport_size({"width": 1366, "height": 900})
    page.context.set_offline(False)
    _saved(page, growth, 13)
    expect(_row(page, strength).locator(".save-state")).to_contain_text("已在别处")
    expect(typed).to_have_value("12")
    expect(_row(page, strength).locator(".points")).to_have_text("12")
    expect(banner).to_be_hidden()
    score = _committee_score(sheet, growth)
    assert (CriterionLevel.get_by_id(score.level).name, score.points) == ("高成长", 13)
    assert (_committee_score(sheet, strength).points,
            _committee_score(sheet, strength).revision) == (12, 1)
    # The requests that failed while offline were expected; nothing else went wrong.
    assert all("ERR_INTERNET_DISCONNECTED" in p or "sendError" in p or "htmx:" in p
               for p in problems_of(page)), problems_of(page)
    problems_of(page).clear()


def test_the_chairs_own_poll_never_cuts_off_the_settle_key(
        app, make, live_server, new_page, monkeypatch):
    """The chair's one key while the meeting's poll is due: the poll that finds the customer
    settled (by that very key) does not reload the page under the settle's answer, and the
    chair reads what happened and where the committee went."""
    import threading

    import views.cycles
    cycle, sheets, setup = _meeting_setup(app, make)
    live_server.app.config.update(MEETING_POLL_SECONDS=1, BOARD_POLL_SECONDS=60)
    criteria = _criteria(setup["template"])
    with app.test_request_context():
        set_current(cycle, setup["chair"], sheets[0])
        for member, total in zip([User.get(User.username == n) for n in MEMBERS], TOTALS[0]):
            for criterion, p in zip(criteria, _split(total)):
                save_score(sheets[0], member, "committee", criterion.id, None, p, "", 0)
    answered, real = threading.Event(), views.cycles.settle_and_next

    def slow_answer(*args, **kwargs):
        following = real(*args, **kwargs)  # settled and committed: the poll can see it
        answered.wait(10)
        return following
    monkeypatch.setattr(views.cycles, "settle_and_next", slow_answer)
    chair = new_page()
    log_in(chair, "chair")
    chair.goto(f"/cycles/{cycle.id}/meeting")
    expect(chair.locator("h1")).to_have_text(sheets[0].customer.name)
    with chair.expect_response(lambda r: "/meeting/state" in r.url
                               and r.headers.get("hx-refresh") == "true"):
        chair.keyboard.press("Control+Enter")
    answered.set()
    expect(chair.locator(".flashes")).to_contain_text(
        f"{sheets[0].customer.name} 已定级，委员会转到 {sheets[1].customer.name}。")
    expect(chair.locator("h1")).to_have_text(sheets[1].customer.name)
