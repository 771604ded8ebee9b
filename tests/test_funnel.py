"""The weekly funnel: stage rules, staleness, rollover, my week, the team table, conversion."""
import datetime
import io
import re
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from models import AuditEvent, Customer, DomainError, Opportunity, StageMove, User
from models.funnel import (
    back,
    conversion,
    create_opportunity,
    forward,
    move,
    parse_week,
    rollover,
    team_table,
    update_details,
    week_board,
    week_of,
)
from tests.conftest import login

MONDAY = datetime.date(2026, 3, 9)  # 2026-W11, in the past whenever the tests run
CHECKS = dict(decision_maker_met=True, plan_fits_need=True, budget_discussed=True,
              next_step_agreed=True)


def _team(make):
    """A branch with two reps and a manager, and a second branch with a rep. They read
    English, so that the pages' new strings read the same before and after the catalog
    has their Chinese."""
    east, west = make.branch("E", "华东分公司"), make.branch("W", "西南分公司")
    rep = make.user("rep_e", roles=("sales_rep",), branch=east, display_name="宋海燕",
                    language="en")
    rep2 = make.user("rep_e2", roles=("sales_rep",), branch=east, display_name="王强",
                     language="en")
    manager = make.user("bm_e", roles=("branch_manager",), branch=east, language="en")
    other = make.user("rep_w", roles=("sales_rep",), branch=west, display_name="李娜",
                      language="en")
    return east, west, rep, rep2, manager, other


def _at_50(rep, on, name="上海远扬贸易有限公司"):
    """An opportunity booked and moved to 50% with every check recorded on `on`."""
    opp = create_opportunity(rep, new_name=name, stage="meeting", on=on)
    opp = forward(opp, rep, on=on)
    update_details(opp, rep, signing_date=on + datetime.timedelta(days=10), **CHECKS)
    return forward(opp, rep, on=on)


# --- Rules ---------------------------------------------------------------------

def test_quick_add_creates_a_prospect_and_the_first_history_row(app, make):
    """A new name becomes a prospect customer of the rep's branch, with a first move."""
    east, _, rep, *_ = _team(make)
    opp = create_opportunity(rep, new_name="杭州星河网络科技有限公司", stage="meeting", on=MONDAY)
    customer = Customer.get_by_id(opp.customer_id)
    assert (customer.kind, customer.branch_id, customer.account_manager_id) == (
        "prospect", east.id, rep.id)
    assert customer.code == "P000001"
    assert (opp.stage, opp.stage_entered_on, opp.owner_id) == ("meeting", MONDAY, rep.id)
    [row] = StageMove.select().where(StageMove.opportunity == opp)
    assert (row.from_stage, row.to_stage, row.kind, row.moved_by_id) == (
        None, "meeting", "create", rep.id)
    assert AuditEvent.select().where(AuditEvent.action == "opportunity_created").count() == 1


def test_existing_prospect_only_once_and_only_prospects(app, make):
    """A prospect already in the funnel, an existing customer, or another branch's is refused."""
    east, west, rep, *_ = _team(make)
    prospect = make.customer(east, "南京嘉禾物流有限公司", kind="prospect")
    create_opportunity(rep, customer=prospect, on=MONDAY)
    with pytest.raises(DomainError, match="in the funnel already"):
        create_opportunity(rep, customer=prospect, on=MONDAY)
    with pytest.raises(DomainError, match="not a prospect"):
        create_opportunity(rep, customer=make.customer(east, kind="existing"), on=MONDAY)
    with pytest.raises(DomainError, match="another branch"):
        create_opportunity(rep, customer=make.customer(west, kind="prospect"), on=MONDAY)
    with pytest.raises(DomainError, match="Choose a prospect"):
        create_opportunity(rep, on=MONDAY)
    assert Opportunity.select().count() == 1


def test_fifty_needs_all_five_checks_and_names_the_missing_one(app, make):
    """Entering 50% is refused, naming each missing check, until all five are in."""
    _, _, rep, *_ = _team(make)
    opp = forward(create_opportunity(rep, new_name="甲公司", stage="meeting", on=MONDAY), rep,
                  on=MONDAY)
    with pytest.raises(DomainError) as refused:
        forward(opp, rep, on=MONDAY)
    message = str(refused.value)
    for check in ("decision maker", "plan fits", "budget", "signing date", "next step"):
        assert check in message
    update_details(opp, rep, **CHECKS)
    with pytest.raises(DomainError) as refused:
        forward(opp, rep, on=MONDAY)
    assert "signing date" in str(refused.value) and "budget" not in str(refused.value)
    # A signing date beyond the 28-day cycle does not count.
    update_details(opp, rep, signing_date=MONDAY + datetime.timedelta(days=40))
    with pytest.raises(DomainError, match="signing date"):
        forward(opp, rep, on=MONDAY)
    assert Opportunity.get_by_id(opp.id).stage == "p25"
    update_details(opp, rep, signing_date=MONDAY + datetime.timedelta(days=20))
    assert forward(opp, rep, on=MONDAY).stage == "p50"


def test_ninety_needs_contract_and_payment(app, make):
    """Entering 90% needs the contract signed and the payment received."""
    _, _, rep, *_ = _team(make)
    opp = _at_50(rep, MONDAY)
    with pytest.raises(DomainError, match="contract is signed; the payment is received"):
        forward(opp, rep, on=MONDAY)
    update_details(opp, rep, contract_signed=True)
    with pytest.raises(DomainError, match="Missing: the payment is received"):
        forward(opp, rep, on=MONDAY)
    update_details(opp, rep, payment_received=True)
    assert forward(opp, rep, on=MONDAY).stage == "p90"
    assert forward(Opportunity.get_by_id(opp.id), rep, on=MONDAY).stage == "won"


def test_won_and_lost_cannot_move_or_change(app, make):
    """A won or lost opportunity refuses every move and every change."""
    _, _, rep, *_ = _team(make)
    opp = create_opportunity(rep, new_name="乙公司", on=MONDAY)
    with pytest.raises(DomainError, match="why"):
        move(opp, rep, "lost", on=MONDAY)
    lost = move(opp, rep, "lost", lost_reason="预算取消", on=MONDAY)
    assert (lost.stage, lost.lost_reason, lost.closed_on) == ("lost", "预算取消", MONDAY)
    for attempt in (lambda: forward(lost, rep), lambda: back(lost, rep),
                    lambda: update_details(lost, rep, premium_received="10")):
        with pytest.raises(DomainError, match="Lost already"):
            attempt()
    assert StageMove.select().where(StageMove.opportunity == opp).count() == 2


def test_back_and_one_stage_at_a_time(app, make):
    """Back goes one stage down; the first stage has no back; no skipping forward."""
    _, _, rep, *_ = _team(make)
    opp = create_opportunity(rep, new_name="丙公司", on=MONDAY)
    with pytest.raises(DomainError, match="first stage"):
        back(opp, rep)
    with pytest.raises(DomainError, match="one stage at a time"):
        move(opp, rep, "p25", on=MONDAY)
    opp = forward(opp, rep, on=MONDAY)
    assert back(opp, rep, on=MONDAY).stage == "opportunity"
    history = [(m.from_stage, m.to_stage) for m in
               StageMove.select().where(StageMove.opportunity == opp).order_by(StageMove.id)]
    assert history == [(None, "opportunity"), ("opportunity", "meeting"),
                       ("meeting", "opportunity")]


def test_a_double_click_does_not_move_twice(app, make):
    """A move sent for a stage the opportunity has left is refused."""
    _, _, rep, *_ = _team(make)
    opp = create_opportunity(rep, new_name="丁公司", on=MONDAY)
    forward(opp, rep, expected_stage="opportunity", on=MONDAY)
    with pytest.raises(DomainError, match="moved meanwhile"):
        forward(opp, rep, expected_stage="opportunity", on=MONDAY)
    assert Opportunity.get_by_id(opp.id).stage == "meeting"


def test_amounts_refuse_negative_and_non_numbers(app, make):
    """Negative or non-number amounts are refused; 1,200.5 and full-width digits are read."""
    _, _, rep, *_ = _team(make)
    opp = create_opportunity(rep, new_name="戊公司", on=MONDAY)
    with pytest.raises(DomainError, match="cannot be negative"):
        update_details(opp, rep, premium_received="-1")
    with pytest.raises(DomainError, match="enter an amount"):
        update_details(opp, rep, standard_premium="abc")
    with pytest.raises(DomainError, match="enter an amount"):
        update_details(opp, rep, standard_premium="NaN")
    update_details(opp, rep, premium_received="1,200.5", standard_premium="３０００")
    opp = Opportunity.get_by_id(opp.id)
    assert (opp.premium_received, opp.standard_premium) == (Decimal("1200.50"), Decimal("3000"))


def test_only_owner_or_branch_manager_moves(app, make):
    """Another rep of the branch cannot move my opportunity; the branch manager can."""
    _, _, rep, rep2, manager, _ = _team(make)
    opp = create_opportunity(rep, new_name="己公司", on=MONDAY)
    with pytest.raises(DomainError, match="Only the owner"):
        forward(opp, rep2, on=MONDAY)
    assert forward(opp, manager, on=MONDAY).stage == "meeting"


def test_stale_and_the_weekly_rollover(app, make):
    """Longer in a stage than the owner's cycle is stale; the rollover sends it back."""
    _, _, rep, rep2, *_ = _team(make)
    rep2.sales_cycle_days = 60
    rep2.save()
    old = create_opportunity(rep, new_name="旧公司", stage="meeting", on=MONDAY)
    patient = create_opportunity(rep2, new_name="耐心公司", stage="meeting", on=MONDAY)
    fresh = create_opportunity(rep, new_name="新公司", stage="meeting",
                               on=MONDAY + datetime.timedelta(days=20))
    first = create_opportunity(rep, new_name="首阶段公司", on=MONDAY)
    day = MONDAY + datetime.timedelta(days=29)
    assert old.is_stale(on=day) and not fresh.is_stale(on=day)
    assert not Opportunity.get_by_id(patient.id).is_stale(on=day)
    assert not first.is_stale(on=day)  # the first stage has nowhere to fall back to
    assert rollover(day) == [old.id]
    old = Opportunity.get_by_id(old.id)
    assert (old.stage, old.stage_entered_on) == ("opportunity", day)
    last = StageMove.select().where(StageMove.opportunity == old).order_by(
        StageMove.id.desc()).get()
    assert (last.kind, last.moved_by_id, last.from_stage) == ("rollover", None, "meeting")
    assert rollover(day) == []
    # From 50% too: the rollover skips the stages between, as the paper rule has it.
    deep = _at_50(rep, MONDAY, name="深阶段公司")
    assert rollover(day + datetime.timedelta(days=1)) == [deep.id]
    assert Opportunity.get_by_id(deep.id).stage == "opportunity"


def test_moving_back_to_the_first_meeting_is_not_a_new_booking(app, make):
    """The team table's "newly booked" counts bookings from an opportunity, not a
    prospect that fell back from 25% to the meeting stage."""
    east, _, rep, *_ = _team(make)
    opp = create_opportunity(rep, new_name="回退公司", stage="meeting",
                             on=MONDAY - datetime.timedelta(days=7))
    opp = forward(opp, rep, on=MONDAY - datetime.timedelta(days=6))
    back(opp, rep, on=MONDAY + datetime.timedelta(days=1))
    rows, total, _previous = team_table(east.id, MONDAY)
    assert total["booked"] == 0
    assert _previous["booked"] == 1


def test_rollover_command(app, make, runner):
    """`flask funnel-rollover --date` moves the stale ones and says how many."""
    _, _, rep, *_ = _team(make)
    create_opportunity(rep, new_name="旧公司", stage="meeting", on=MONDAY)
    result = runner.invoke(args=["funnel-rollover", "--date", "2027-05-01"])
    assert result.exit_code == 0, result.output
    assert "1 stale" in result.output
    assert Opportunity.get().stage == "opportunity"
    result = runner.invoke(args=["funnel-rollover", "--date", "someday"])
    assert result.exit_code == 2


def test_weeks_parse_only_when_they_exist():
    """2027-W12 is a week; W53 of 2027, W00 and garbage are not."""
    assert parse_week("2027-W12") == datetime.date(2027, 3, 22)
    assert parse_week("2026-W53") == datetime.date(2026, 12, 28)
    for bad in ("2027-W53", "2027-W00", "2027-W99", "2027-12", "abc", "", "1900-W01"):
        with pytest.raises(ValueError):
            parse_week(bad)
    assert week_of(datetime.date(2027, 1, 1)) == "2026-W53"


# --- A week replayed, and every cell of the team table ---------------------------

def _replay_week(rep, rep2):
    """Two reps' moves over the week before MONDAY and the week of MONDAY."""
    prev = MONDAY - datetime.timedelta(days=7)
    day = lambda n: MONDAY + datetime.timedelta(days=n)  # noqa: E731
    # Last week: rep books two meetings, one reaches 25%; rep2 has one at 50%.
    a = create_opportunity(rep, new_name="A公司", stage="meeting", on=prev)
    b = create_opportunity(rep, new_name="B公司", stage="meeting", on=prev)
    a = forward(a, rep, on=prev + datetime.timedelta(days=2))
    c = _at_50(rep2, prev, name="C公司")
    # This week: rep books a third (and moves it back and forth: one booking), takes a to
    # 50% and b to lost; rep2 takes c through 90% to won with amounts.
    d = create_opportunity(rep, new_name="D公司", on=day(0))
    d = forward(d, rep, on=day(0))
    d = back(d, rep, on=day(1))
    d = forward(d, rep, on=day(2))
    update_details(a, rep, signing_date=day(20), **CHECKS)
    a = forward(a, rep, on=day(3))
    move(b, rep, "lost", lost_reason="选了别家", on=day(3))
    update_details(c, rep2, contract_signed=True, payment_received=True,
                   premium_received="12000", standard_premium="30000.50")
    c = forward(c, rep2, on=day(4))
    forward(c, rep2, on=day(6))
    # Next week's moves must not leak into this week.
    forward(d, rep, on=day(8))


def test_team_table_replays_a_week_cell_by_cell(app, make):
    """After a replayed fortnight every cell, total and previous-week cell is as counted."""
    east, _, rep, rep2, _, other = _team(make)
    create_opportunity(other, new_name="西部公司", stage="meeting", on=MONDAY)  # other branch
    _replay_week(rep, rep2)
    rows, total, previous = team_table(east.id, MONDAY)
    by_name = {row["user"].display_name: row for row in rows}
    assert list(by_name) == ["宋海燕", "王强"]  # ordered by name, both reps listed
    cells = lambda row: {k: row[k] for k in (  # noqa: E731
        "booked", "p25", "p50", "p90", "won", "premium_received", "standard_premium")}
    zero = Decimal("0.00")
    assert cells(by_name["宋海燕"]) == dict(booked=1, p25=0, p50=1, p90=0, won=0,
                                         premium_received=zero, standard_premium=zero)
    assert cells(by_name["王强"]) == dict(booked=0, p25=0, p50=0, p90=0, won=1,
                                        premium_received=Decimal("12000.00"),
                                        standard_premium=Decimal("30000.50"))
    assert by_name["宋海燕"]["previous"] == dict(booked=2, p25=1, p50=0, p90=0, won=0,
                                              premium_received=zero, standard_premium=zero)
    assert by_name["王强"]["previous"] == dict(booked=1, p25=0, p50=1, p90=0, won=0,
                                             premium_received=zero, standard_premium=zero)
    assert total == dict(booked=1, p25=0, p50=1, p90=0, won=1,
                         premium_received=Decimal("12000.00"),
                         standard_premium=Decimal("30000.50"))
    assert previous == dict(booked=3, p25=1, p50=1, p90=0, won=0, premium_received=zero,
                            standard_premium=zero)
    # The week's board of the rep: d at first meeting, a at 50% (moved this week), b lost.
    board = week_board(rep, MONDAY, today=MONDAY + datetime.timedelta(days=30))
    assert [(i.name, i.moved_this_week) for i in board["meeting"]] == [("D公司", True)]
    assert [i.name for i in board["p50"]] == ["A公司"]
    assert [i.name for i in board["lost"]] == ["B公司"]
    assert not board["p25"] and not board["won"]


def test_conversion_counts_how_far_each_got(app, make):
    """Reached counts are cumulative along the ladder; ratios divide by the stage before."""
    _, _, rep, rep2, *_ = _team(make)
    _replay_week(rep, rep2)
    steps = conversion(MONDAY - datetime.timedelta(days=7), MONDAY + datetime.timedelta(days=6))
    assert [(s, n) for s, n, _ in steps] == [
        ("opportunity", 4), ("meeting", 4), ("p25", 2), ("p50", 2), ("p90", 1), ("won", 1)]
    assert steps[2][2] == 0.5 and steps[0][2] is None


# --- Pages ---------------------------------------------------------------------

def _week_url(monday):
    return f"/funnel?week={week_of(monday)}"


def test_my_week_shows_stages_dates_and_marks(client, make):
    """The table has the week's range, my cycle, a column per stage, moves and stale marks."""
    _, _, rep, rep2, *_ = _team(make)
    _replay_week(rep, rep2)
    create_opportunity(rep, new_name="陈旧公司", stage="meeting",
                       on=MONDAY - datetime.timedelta(days=60))
    login(client, "rep_e")
    page = client.get(_week_url(MONDAY)).get_data(as_text=True)
    assert "Mar 9, 2026 – Mar 15, 2026" in page
    assert "My sales cycle: 28 days" in page
    columns = re.findall(r'<section class="column stage-\w+" data-stage="(\w+)">\s*<h2>([^<]+)',
                         page)
    assert [label.strip() for _, label in columns] == [
        "Opportunity", "First meeting booked", "25%", "50%", "90%", "Won", "Lost"]
    assert re.search(r'class="card[^"]*moved[^"]*"[^>]*>\s*<a[^>]*>A公司', page)
    assert re.search(r'class="card[^"]*stale[^"]*"[^>]*>\s*<a[^>]*>陈旧公司', page)
    assert "C公司" not in page  # rep2's
    # The week is in the URL: the previous week links to W10, and shows last week's state.
    assert "week=2026-W10" in page and "week=2026-W12" in page
    before = client.get(_week_url(MONDAY - datetime.timedelta(days=7))).get_data(as_text=True)
    assert "B公司" in before and "D公司" not in before
    # Previous/next by htmx get the board alone; the answer varies on HX-Request.
    partial = client.get(_week_url(MONDAY), headers={"HX-Request": "true"})
    assert "<html" not in partial.get_data(as_text=True)
    assert 'data-testid="board"' in partial.get_data(as_text=True)
    assert "HX-Request" in partial.headers["Vary"]


def test_bad_or_future_week_is_a_clear_404(client, make):
    """A week that does not exist (or has not begun) answers 404 with a message."""
    _team(make)
    login(client, "rep_e")
    for week in ("2026-W60", "abc", "2026-W53x", "2027-W53"):
        response = client.get(f"/funnel?week={week}")
        assert response.status_code == 404
        assert "Weeks are written like 2027-W12" in response.get_data(as_text=True)
    response = client.get("/funnel?week=2999-W01")
    assert response.status_code == 404
    assert "has not begun yet" in response.get_data(as_text=True)
    client.post("/logout")
    login(client, "bm_e")
    assert client.get("/funnel/team?week=2026-W99").status_code == 404


def test_quick_add_and_one_click_moves_over_http(client, make):
    """Quick add, then forward and back with htmx; a refused move says why and changes nothing."""
    _team(make)
    login(client, "rep_e")
    response = client.post("/funnel/opportunities", data={
        "new_name": "广州鼎盛电子元件有限公司", "stage": "meeting", "premium_received": "",
        "standard_premium": "5000"})
    assert response.status_code == 303
    opp = Opportunity.get()
    assert (opp.stage, opp.standard_premium) == ("meeting", Decimal("5000.00"))
    htmx = {"HX-Request": "true"}
    response = client.post(f"/funnel/opportunities/{opp.id}/move",
                           data={"direction": "forward", "stage": "meeting"}, headers=htmx)
    assert response.status_code == 200
    assert Opportunity.get_by_id(opp.id).stage == "p25"
    response = client.post(f"/funnel/opportunities/{opp.id}/move",
                           data={"direction": "forward", "stage": "p25"}, headers=htmx)
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Missing: The decision maker was met" in text  # names the missing check
    assert Opportunity.get_by_id(opp.id).stage == "p25"
    response = client.post(f"/funnel/opportunities/{opp.id}/move",
                           data={"direction": "back", "stage": "p25"})
    assert response.status_code == 303
    assert Opportunity.get_by_id(opp.id).stage == "meeting"


def test_bad_amounts_over_http_change_nothing(client, make):
    """A negative or non-number amount re-shows the form with a message and writes nothing."""
    east, _, rep, *_ = _team(make)
    mine = make.customer(east, "杭州远航物流有限公司", kind="prospect", account_manager=rep)
    login(client, "rep_e")
    response = client.post("/funnel/opportunities", data={
        "customer": str(mine.id), "stage": "meeting", "standard_premium": "-3"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Standard premium cannot be negative" in page
    assert re.search(rf'<option value="{mine.id}" selected>杭州远航物流有限公司', page)
    for bad, message in (("-5", "Premium received cannot be negative"),
                         ("abc", "Premium received: enter an amount in 元"),
                         ("1e999", "Premium received is too large")):
        response = client.post("/funnel/opportunities", data={
            "new_name": "某公司", "stage": "opportunity", "premium_received": bad})
        assert response.status_code == 200
        assert message in response.get_data(as_text=True)
    assert Opportunity.select().count() == 0
    opp = create_opportunity(rep, new_name="某公司", on=datetime.date.today())
    response = client.post(f"/funnel/opportunities/{opp.id}", data={
        "premium_received": "-1", "standard_premium": "0"})
    assert response.status_code == 200
    assert "Premium received cannot be negative" in response.get_data(as_text=True)
    assert Opportunity.get_by_id(opp.id).premium_received == 0


def test_moving_won_or_lost_over_http_is_refused(client, make):
    """Moving a lost opportunity answers with the reason and nothing changes."""
    _, _, rep, *_ = _team(make)
    opp = create_opportunity(rep, new_name="失败公司", on=datetime.date.today())
    move(opp, rep, "lost", lost_reason="价格")
    login(client, "rep_e")
    response = client.post(f"/funnel/opportunities/{opp.id}/move",
                           data={"direction": "forward", "stage": "lost"})
    assert response.status_code == 303
    assert "it can no longer move" in client.get(response.headers["Location"]).get_data(
        as_text=True)
    assert Opportunity.get_by_id(opp.id).stage == "lost"


def test_another_branchs_opportunity_is_a_404(client, make):
    """Another branch's opportunity: its page, its move and its team row answer 404."""
    _, west, _, _, _, other = _team(make)
    opp = create_opportunity(other, new_name="西部公司", on=datetime.date.today())
    login(client, "rep_e")
    assert client.get(f"/funnel/opportunities/{opp.id}").status_code == 404
    assert client.post(f"/funnel/opportunities/{opp.id}/move",
                       data={"direction": "forward", "stage": "opportunity"}).status_code == 404
    assert Opportunity.get_by_id(opp.id).stage == "opportunity"
    client.post("/logout")
    login(client, "bm_e")
    assert client.get(f"/funnel/team/members/{other.id}").status_code == 404
    page = client.get(f"/funnel/team?branch={west.id}").get_data(as_text=True)
    assert "李娜" not in page


def test_team_page_shows_the_table_and_expands_a_member(client, make):
    """The manager's table has a row per rep with the week's numbers and expands by htmx."""
    _, _, rep, rep2, *_ = _team(make)
    _replay_week(rep, rep2)
    login(client, "bm_e")
    page = client.get(f"/funnel/team?week={week_of(MONDAY)}").get_data(as_text=True)
    row = re.search(r'<tr[^>]*data-member="王强".*?</tr>', page, re.S).group(0)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    text = [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells]
    # Each cell: this week's figure, then the change against last week when there is one.
    assert text[1:6] == ["0 −1", "0", "0 −1", "0", "1 +1"]
    assert "¥12,000.00" in row and "¥30,000.50" in row
    partial = client.get(f"/funnel/team/members/{rep.id}?week={week_of(MONDAY)}",
                         headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "A公司" in partial and "<html" not in partial


def test_exports_are_spreadsheets_with_neutralised_text(client, make):
    """My week and the team table download as .xlsx; a name like =1+1 stays text."""
    _, _, rep, *_ = _team(make)
    create_opportunity(rep, new_name="=HYPERLINK(1)", on=datetime.date.today())
    login(client, "rep_e")
    response = client.get("/funnel/export.xlsx")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.data)).active
    values = [c.value for row in sheet.iter_rows() for c in row]
    assert "'=HYPERLINK(1)" in values
    client.post("/logout")
    login(client, "bm_e")
    response = client.get("/funnel/team/export.xlsx")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.data)).active
    assert [c.value for c in next(sheet.iter_rows())][:3] == [
        "Member", "New first meetings", "At 25%"]


def test_conversion_page_gives_ratios_chart_and_hints(client, make):
    """A rep reads their own conversion over a period: counts, ratios, an SVG funnel, hints."""
    _, _, rep, rep2, *_ = _team(make)
    _replay_week(rep, rep2)
    login(client, "rep_e")
    page = client.get("/funnel/conversion?start=2026-W10&end=2026-W11").get_data(as_text=True)
    ratios = re.search(r'data-testid="ratios".*?</table>', page, re.S).group(0)
    rows = [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r)]
            for r in re.findall(r"<tr>(.*?)</tr>", ratios, re.S)]
    # The rep's own three: a and b booked, d added then booked; a reached 50%.
    assert [r[:2] for r in rows if r] == [["Opportunity", "3"], ["First meeting booked", "3"],
                                          ["25%", "1"], ["50%", "1"], ["90%", "0"],
                                          ["Won", "0"]]
    assert "<svg" in page and 'class="chart funnel-chart"' in page
    assert "No deal closed yet" in page
    assert client.get("/funnel/conversion?start=2026-W70").status_code == 404


def test_dashboard_shows_my_funnel_and_stale_ones(client, make):
    """A rep's dashboard counts the open opportunities by stage and warns of stale ones."""
    _, _, rep, *_ = _team(make)
    create_opportunity(rep, new_name="陈旧公司", stage="meeting",
                       on=datetime.date.today() - datetime.timedelta(days=40))
    create_opportunity(rep, new_name="新公司", on=datetime.date.today())
    login(client, "rep_e")
    tile = re.search(r'data-testid="my-funnel".*?</section>', client.get("/").get_data(
        as_text=True), re.S).group(0)
    assert 'class="big">2<' in tile
    assert "Opportunity 1 · First meeting booked 1" in tile
    assert "1 stale" in tile


def test_demo_history_is_consistent(app):
    """The demo's year of history chains like the app's own moves: each row closes when
    the next opens, open opportunities have one open row, and no prospect is in two
    funnels at once; the team table and the rollover agree with it."""
    from collections import defaultdict

    from models.funnel import OPEN_END, TERMINAL
    from services.demo import build_demo
    today = datetime.date(2026, 11, 25)
    with app.app_context():
        build_demo(customers=120, reps_per_branch=2, branches=2, today=today)
        moves = defaultdict(list)
        for move_row in StageMove.select().order_by(StageMove.moved_on, StageMove.id):
            moves[move_row.opportunity_id].append(move_row)
        opportunities = list(Opportunity.select())
        assert len(opportunities) > 50 and any(o.stage == "won" for o in opportunities)
        open_customers = []
        for opp in opportunities:
            chain = moves[opp.id]
            assert chain[0].kind == "create" and chain[-1].to_stage == opp.stage
            assert chain[-1].moved_on == opp.stage_entered_on
            for before, after in zip(chain, chain[1:]):
                assert before.left_on == after.moved_on and before.to_stage == after.from_stage
            if opp.stage in TERMINAL:
                assert chain[-1].left_on == chain[-1].moved_on
            else:
                assert chain[-1].left_on == OPEN_END
                open_customers.append(opp.customer_id)
        assert len(open_customers) == len(set(open_customers))
        # This Monday's rollover left nothing that was stale on Monday.
        monday = today - datetime.timedelta(days=today.weekday())
        assert not [o.id for o in opportunities if o.is_stale(on=monday)]
        rows, total, _ = team_table(opportunities[0].branch_id, parse_week("2026-W47"))
        assert len(rows) == 2 and total["booked"] >= 0
        # The ids the bulk insert chose leave the sequence (PostgreSQL) ready for the next.
        rep = Opportunity.get_by_id(opportunities[0].id).owner
        assert create_opportunity(rep, new_name="演示后新增公司", on=today).id > max(
            o.id for o in opportunities)


def test_quick_add_offers_my_prospects_on_file(client, make):
    """Quick add lists my prospects not in the funnel; choosing one opens its opportunity."""
    east, _, rep, rep2, *_ = _team(make)
    mine = make.customer(east, "杭州远航物流有限公司", kind="prospect", account_manager=rep)
    theirs = make.customer(east, "杭州华信物流有限公司", kind="prospect", account_manager=rep2)
    login(client, "rep_e")
    page = client.get("/funnel").get_data(as_text=True)
    assert "杭州远航物流有限公司" in page and "杭州华信物流有限公司" not in page
    response = client.post("/funnel/opportunities", data={"customer": str(mine.id),
                                                          "stage": "meeting"})
    assert response.status_code == 303
    assert Opportunity.get().customer_id == mine.id
    page = client.get("/funnel").get_data(as_text=True)
    assert f'<option value="{mine.id}"' not in page  # in the funnel now
    assert Opportunity.select().where(Opportunity.customer == theirs).count() == 0


def test_the_team_table_prints_as_a_pdf_with_the_weeks_figures(client, make):
    """/funnel/team.pdf is the week's tracking table as a real PDF: each member's figures,
    the team total with the amounts, last week's row; a rep may not print it."""
    from tests.pdf_helpers import pdf_text
    _, _, rep, rep2, *_ = _team(make)
    _replay_week(rep, rep2)
    login(client, "bm_e")
    week = MONDAY.strftime("%G-W%V")
    response = client.get(f"/funnel/team.pdf?week={week}")
    assert response.status_code == 200 and response.data.startswith(b"%PDF")
    text = re.sub(r"\s+", " ", pdf_text(response.data))
    assert "Weekly team funnel" in text and week in text
    assert re.search(r"宋海燕 1 0 1 0 0 — —", text)  # no deal won: no amount
    assert re.search(r"王强 0 0 0 0 1 ¥12,000\.00 ¥30,000\.50", text)
    assert re.search(r"Team total 1 0 1 0 1 ¥12,000\.00 ¥30,000\.50", text)
    assert re.search(r"Previous week 3 1 1 0 0 — —", text)
    client.post("/logout")
    login(client, "rep_e")  # a rep does not read the team's table
    assert client.get(f"/funnel/team.pdf?week={week}").status_code == 403


def test_a_chinese_reader_sees_weeks_by_number_and_no_empty_amounts(client, make):
    """For a Chinese reader the team table, its PDF and its export name the week
    2026年第11周 while the links keep ?week=2026-W11; an amount with no deal won reads —,
    never 0.00 元, nor does a prospect whose amount nobody entered."""
    from tests.pdf_helpers import pdf_text
    east, _, rep, rep2, *_ = _team(make)
    _replay_week(rep, rep2)
    make.user("bm_zh", roles=("branch_manager",), branch=east)  # reads Chinese
    login(client, "bm_zh")
    page = client.get(f"/funnel/team?week={week_of(MONDAY)}").get_data(as_text=True)
    heading = re.search(r'data-testid="week-range">(.*?)</strong>', page, re.S).group(1)
    assert "2026年第11周" in heading and "W11" not in heading
    assert "week=2026-W10" in page  # the URL keeps the ISO week
    row = re.search(r'<tr[^>]*data-member="宋海燕".*?</tr>', page, re.S).group(0)
    cells = [" ".join(re.sub(r"<[^>]+>", " ", c).split())
             for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    assert cells[-2:] == ["—", "—"]
    assert "12,000.00 元" in page and "0.00 元" not in page.replace("12,000.00 元", "")
    member = client.get(f"/funnel/team/members/{rep.id}?week={week_of(MONDAY)}"
                        ).get_data(as_text=True)
    assert "宋海燕 · 2026年第11周" in member and "0.00 元" not in member
    text = re.sub(r"\s+", " ", pdf_text(client.get("/funnel/team.pdf?week=2026-W11").data))
    assert "2026年第11周" in text and "W11" not in text
    assert re.search(r"宋海燕 1 0 1 0 0 — —", text)
    sheet = load_workbook(io.BytesIO(client.get(
        "/funnel/team/export.xlsx?week=2026-W11").data)).active
    assert sheet.title == "E 2026年第11周"


def test_reps_hear_on_friday_what_mondays_rollover_will_send_back(app, make):
    """Each rep gets one notice (by e-mail, their default) naming the opportunities that
    will have sat in their stage longer than the rep's sales cycle by next Monday, in
    the rep's language, with a link to their week; nobody else hears anything. The
    worker runs it on Fridays at 16:00 and the rollover on Mondays at 06:00, company
    time (Asia/Shanghai), whatever the server's clock."""
    from models.funnel import notify_stale
    from models.notices import Notice
    from services import jobs

    app.config.update(SMTP_HOST="127.0.0.1", PUBLIC_URL="https://tierdesk.example.com")
    _, _, rep, rep2, *_ = _team(make)
    User.update(email="rep@example.com", language="zh_CN").where(User.id == rep.id).execute()
    User.update(email="rep2@example.com", sales_cycle_days=60).where(
        User.id == rep2.id).execute()
    friday = MONDAY + datetime.timedelta(days=25)
    entered = MONDAY - datetime.timedelta(days=1)  # 26 days on Friday, 29 on Monday
    going = create_opportunity(rep, new_name="旧公司", stage="meeting", on=entered)
    create_opportunity(rep, new_name="新公司", stage="meeting", on=MONDAY + datetime.timedelta(10))
    create_opportunity(rep, new_name="首阶段公司", on=entered)
    create_opportunity(rep2, new_name="耐心公司", stage="meeting", on=entered)  # a 60-day cycle
    with app.test_request_context():
        assert not going.is_stale(on=friday)  # not yet: the notice comes before
        assert notify_stale(friday) == {rep.id: 1}
    notice = Notice.get()
    assert (notice.recipient_id, notice.kind, notice.channel) == (rep.id, "funnel_stale", "email")
    assert notice.subject == "1 个销售机会将在下周一退回第一阶段"
    assert "- 旧公司：“约定初次见面”阶段，已 26 天" in notice.body
    assert "新公司" not in notice.body and "首阶段公司" not in notice.body
    assert notice.link == "https://tierdesk.example.com/funnel"
    monday = MONDAY + datetime.timedelta(days=28)
    assert rollover(monday) == [going.id] and rollover(monday) == []
    # Company time: Monday 06:00 in Shanghai is Sunday 22:00 UTC; Friday 16:00 is 08:00.
    rollover_at = jobs.weekly_rollover.s().validate_datetime
    assert rollover_at(datetime.datetime(2027, 3, 21, 22, 0))
    assert not rollover_at(datetime.datetime(2027, 3, 22, 6, 0))
    assert jobs.stale_opportunity_notices.s().validate_datetime(
        datetime.datetime(2027, 3, 26, 8, 0))
