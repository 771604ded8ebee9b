"""Waiting approvals chased by their rule's limits (超时提醒、超时升级) and decided by a
delegate while the approver is away (代理): the notices they write, what the request's
page shows, and the bad input the forms refuse."""
import datetime as dt

import pytest
from flask_babel import force_locale

from models import ApprovalStep, AuditEvent, Customer, Delegation, Notice, TierChangeRequest
from models.approvals import (
    chase_waiting,
    decide,
    decider_refusal,
    deciders,
    pending_count,
    save_rule,
)
from models.base import DomainError, utcnow
from models.delegations import save_delegation
from services import jobs
from tests.conftest import login
from tests.test_notices import _file, notices_world

DAY = dt.timedelta(days=1)


@pytest.fixture
def world(app, make):
    return notices_world(app, make)


def _step(request):
    return TierChangeRequest.get_by_id(request.id).pending_step()


def _notices():
    return sorted((n.recipient_id, n.kind, n.subject) for n in Notice.select())


def test_a_step_waiting_past_its_limits_reminds_then_escalates(app, world, client):
    """The rule reminds after 2 days and escalates after 4: before that nothing happens;
    at 2 days the branch manager is reminded once; at 4 days the step waits for the
    sales director instead (the role above), who is told and decides; the branch manager
    no longer may. The request's page shows both; running the chase again changes
    nothing."""
    with app.test_request_context():
        save_rule("any", world["admin"], ["branch_manager"], remind_days=2, escalate_days=4)
    request = _file(app, world)  # B → C, the east branch manager decides
    filed = _step(request).waiting_since
    Notice.delete().execute()
    with app.test_request_context():
        assert chase_waiting(filed + DAY) == ([], [])
        assert chase_waiting(filed + 2 * DAY + dt.timedelta(minutes=1)) == ([request.id], [])
        assert chase_waiting(filed + 3 * DAY) == ([], [])  # reminded once
    assert [(n.recipient_id, n.subject[:9]) for n in Notice.select()] == [
        (world["bm"].id, "催办：华东B级客户")]  # bm reads Chinese
    assert _step(request).chased_at is not None
    Notice.delete().execute()
    with app.test_request_context():
        assert chase_waiting(filed + 4 * DAY + dt.timedelta(minutes=1)) == ([], [request.id])
        assert chase_waiting(filed + 5 * DAY) == ([], [])  # the director's clock starts anew
    step = _step(request)
    assert (step.role, step.escalated_from) == ("sales_director", "branch_manager")
    assert TierChangeRequest.get_by_id(request.id).waiting_role == "sales_director"
    assert {n.recipient_id for n in Notice.select()} == {world["director"].id}
    escalated = AuditEvent.get(AuditEvent.action == "tier_change_escalated")
    assert escalated.object_id == str(request.id) and escalated.actor_id is None
    with app.test_request_context(), force_locale("en"):
        assert "Sales director" in str(decider_refusal(step, world["bm"], request))
    login(client, "director")
    page = client.get(f"/tier-changes/{request.id}").get_data(as_text=True)
    assert "Escalated from Branch manager: it waited past the rule's limit." in page
    assert "Approvers reminded" not in page  # the director's wait has not been chased
    assert 'data-testid="approve"' in page
    client.post(f"/tier-changes/{request.id}/decide",
                data={"step": step.id, "decision": "approve", "comment": "同意"})
    assert Customer.get_by_id(world["customers"]["B"].id).tier_id == world["tiers"]["C"].id


def test_escalating_to_a_role_later_in_the_chain_passes_the_step_up(app, world):
    """A promotion to A needs branch manager → sales director → general manager; the
    branch manager's step, escalated to the role above, which decides the next step
    anyway, is passed up: that step waits now, and the requester's page says why."""
    with app.test_request_context():
        save_rule(f"tier-{world['tiers']['A'].id}", world["admin"],
                  ["branch_manager", "sales_director", "general_manager"], escalate_days=3)
    request = _file(app, world, to="A")
    filed = _step(request).waiting_since
    Notice.delete().execute()
    with app.test_request_context():
        assert chase_waiting(filed + 3 * DAY) == ([], [request.id])
    steps = TierChangeRequest.get_by_id(request.id).steps()
    assert [(s.role, s.status) for s in steps] == [
        ("branch_manager", "skipped"), ("sales_director", "pending"),
        ("general_manager", "waiting")]
    assert {n.recipient_id for n in Notice.select()} == {world["director"].id}
    with app.test_request_context(), force_locale("en"):
        assert str(steps[0].status_label) == "Passed up: waited past its limit"


def test_a_rule_without_limits_chases_nothing_and_the_top_role_is_only_reminded(app, world):
    """The default rules set no limits: nothing is chased, however long a step waits.
    Limits set later chase the requests filed before under that rule too. A step of the
    top role (nobody above) is reminded, never escalated."""
    request = _file(app, world)
    with app.test_request_context():
        assert chase_waiting(utcnow() + 90 * DAY) == ([], [])
        save_rule("any", world["admin"], ["general_manager"], remind_days=1, escalate_days=2)
    second = _file(app, world, customer="C", to="B")
    with app.test_request_context():
        reminded, escalated = chase_waiting(utcnow() + 30 * DAY)
    assert (reminded, escalated) == ([second.id], [request.id])
    assert _step(second).role == "general_manager"
    assert _step(request).role == "sales_director"  # filed before, under the same rule
    # The worker's schedule: every hour.
    assert jobs.chase_approvals.s().validate_datetime(dt.datetime(2027, 3, 22, 3, 15))
    assert not jobs.chase_approvals.s().validate_datetime(dt.datetime(2027, 3, 22, 3, 16))


def test_the_rules_page_sets_and_refuses_limits(app, world, client):
    """The admin sets the limits on the rules page (audited) and sees them; an
    escalation no later than the reminder, or a limit out of range, is refused with why
    and nothing is stored."""
    login(client, "admin")
    answer = client.post("/approvals/rules/any", data={
        "any-role_1": "branch_manager", "any-remind_days": "3", "any-escalate_days": "2",
        "any-escalate_to": "", "any-action": "save"}, follow_redirects=True)
    assert "Escalate later than the reminder." in answer.get_data(as_text=True)
    answer = client.post("/approvals/rules/any", data={
        "any-role_1": "branch_manager", "any-remind_days": "500", "any-action": "save"},
        follow_redirects=True)
    assert "between 1 and 90" in answer.get_data(as_text=True)
    assert not AuditEvent.select().where(AuditEvent.action == "approval_rule_saved").exists()
    client.post("/approvals/rules/any", data={
        "any-role_1": "branch_manager", "any-remind_days": "2", "any-escalate_days": "5",
        "any-escalate_to": "general_manager", "any-action": "save"})
    page = client.get("/approvals/rules").get_data(as_text=True)
    assert "Reminds after 2 days. Escalates after 5 days to General manager." in page
    saved = AuditEvent.get(AuditEvent.action == "approval_rule_saved")
    assert '"escalate_days": 5' in saved.after


def test_a_delegate_decides_while_the_approver_is_away(app, world, client):
    """The east branch manager is away with a colleague of the branch standing in: a new
    request's notice goes to the stand-in, whose queue and badge show it; the page says
    whose stead they decide in; the step records both, and the page says "X for Y"."""
    bm, stand_in = world["bm"], world["other_rep"]
    stand_in.email = "rep_e2@example.com"
    stand_in.save()
    with app.test_request_context():
        save_delegation(bm, stand_in, dt.date.today(), dt.date.today() + 5 * DAY)
    request = _file(app, world)
    assert {n.recipient_id for n in Notice.select()} == {stand_in.id}
    with app.test_request_context():
        assert pending_count(stand_in) == 1
        assert [p.id for p in deciders(_step(request), request)] == [stand_in.id]
    login(client, "rep_e2")
    assert f"/tier-changes/{request.id}" in client.get("/approvals").get_data(as_text=True)
    page = client.get(f"/tier-changes/{request.id}").get_data(as_text=True)
    assert f"in the stead of {bm.display_name}, who is away" in page
    client.post(f"/tier-changes/{request.id}/decide",
                data={"step": _step(request).id, "decision": "approve", "comment": "代批"})
    step = ApprovalStep.get(ApprovalStep.request == request.id)
    assert (step.status, step.decided_by_id, step.on_behalf_of_id) == (
        "approved", stand_in.id, bm.id)
    page = client.get(f"/tier-changes/{request.id}").get_data(as_text=True)
    assert f"{stand_in.display_name} for {bm.display_name}" in page
    approved = AuditEvent.get(AuditEvent.action == "tier_change_approved")
    assert '"on_behalf_of": "bm_e"' in approved.after


def test_nobody_approves_their_own_request_through_a_delegation(app, world, client):
    """The branch manager names the rep who files the request as stand-in: the rep may
    not decide it (not even in the manager's stead); it stays with the manager, who is
    told. And the stand-in of someone away never decides the absent person's own
    request."""
    bm, rep = world["bm"], world["rep"]
    with app.test_request_context():
        save_delegation(bm, rep, dt.date.today(), dt.date.today() + DAY)
    request = _file(app, world)  # filed by rep_e
    assert {n.recipient_id for n in Notice.select()} == {bm.id}
    with app.test_request_context(), force_locale("en"):
        assert str(decider_refusal(_step(request), rep, request)) == \
            "Nobody decides their own request."
        with pytest.raises(DomainError, match="their own request"):
            decide(_step(request), rep, "approve", "")
        assert pending_count(rep) == 0


def test_the_away_form_refuses_bad_periods_and_stand_ins(app, world, client):
    """My page: a stand-in of another branch, oneself, an end before the start, a period
    over already, or one overlapping a period set are refused with why, nothing saved;
    a good one is audited and listed, and "I am back" ends it."""
    login(client, "bm_e")
    today = dt.date.today()

    def post(delegate, start, end):
        return client.post("/notices/away", data={
            "delegate": delegate.id, "starts_on": start.isoformat(),
            "ends_on": end.isoformat()})

    for not_offered in (world["rep_w"], world["bm"]):  # another branch's rep; oneself
        answer = post(not_offered, today, today + DAY)
        assert answer.status_code == 422
        assert "不是有效的选择" in answer.get_data(as_text=True)  # bm_e reads Chinese
    answer = post(world["other_rep"], today + 3 * DAY, today + DAY)
    assert "结束日期早于开始日期。" in answer.get_data(as_text=True)
    answer = post(world["other_rep"], today - 5 * DAY, today - DAY)
    assert "该时段已经结束。" in answer.get_data(as_text=True)
    assert Delegation.select().count() == 0
    answer = post(world["other_rep"], today, today + 3 * DAY)
    assert answer.status_code == 303
    answer = post(world["rep"], today + 2 * DAY, today + 9 * DAY)
    assert "不在岗：请先结束该时段" in answer.get_data(as_text=True)
    assert Delegation.select().count() == 1
    page = client.get("/notices").get_data(as_text=True)
    assert f"由 {world['other_rep'].display_name} 代理" in page
    delegation = Delegation.get()
    client.post(f"/notices/away/{delegation.id}/end")
    assert Delegation.select().count() == 0  # it started today: it goes
    assert [e.action for e in AuditEvent.select().where(AuditEvent.action.startswith(
        "delegation")).order_by(AuditEvent.id)] == ["delegation_saved", "delegation_ended"]
    # Someone else's period: not found.
    with app.test_request_context():
        other = save_delegation(world["bm_w"], world["rep_w"], today, today + DAY)
    assert client.post(f"/notices/away/{other.id}/end").status_code == 404


def test_a_company_wide_approver_needs_a_company_wide_stand_in(app, world):
    """The sales director sees every branch: a branch's rep could not open the requests
    that wait for them, so is refused with why; the general manager is accepted."""
    with app.test_request_context(), force_locale("en"):
        with pytest.raises(DomainError, match="sees only their own branch"):
            save_delegation(world["director"], world["rep"], dt.date.today(),
                            dt.date.today() + DAY)
        save_delegation(world["director"], world["gm"], dt.date.today(),
                        dt.date.today() + DAY)
    assert Delegation.select().count() == 1


def test_an_approver_returns_a_request_for_changes_and_the_requester_files_again(
        app, world, client):
    """退回: the branch manager returns the rep's request with what to change (a comment
    is required); the request closes as returned, the rep is told, and the rep's page
    offers to file it again with the tier and reason filled in. A committee's request
    (nobody filed it) cannot be returned."""
    request = _file(app, world)
    Notice.delete().execute()
    login(client, "bm_e")
    step = _step(request)
    answer = client.post(f"/tier-changes/{request.id}/decide",
                         data={"step": step.id, "decision": "return", "comment": ""},
                         follow_redirects=True)
    assert "请说明申请人需要修改什么。" in answer.get_data(as_text=True)
    assert TierChangeRequest.get_by_id(request.id).status == "open"
    client.post(f"/tier-changes/{request.id}/decide",
                data={"step": step.id, "decision": "return", "comment": "请补充近三个月订单数据"})
    returned = TierChangeRequest.get_by_id(request.id)
    assert (returned.status, returned.closing_comment) == ("returned", "请补充近三个月订单数据")
    assert [(n.recipient_id, n.kind) for n in Notice.select()] == [
        (world["rep"].id, "request_decided")]
    assert "Returned for changes" in Notice.get().subject  # the rep reads English
    client.post("/logout")
    login(client, "rep_e")
    page = client.get(f"/tier-changes/{request.id}").get_data(as_text=True)
    assert 'data-testid="file-again"' in page
    again = client.get(f"/customers/{world['customers']['B'].id}/tier-change"
                       f"?again={request.id}").get_data(as_text=True)
    assert "请补充近三个月订单数据" in again and "订单连续下滑</textarea>" in again
    assert f'<option selected value="{world["tiers"]["C"].id}">' in again
    # Someone else's returned request fills nothing in.
    client.post("/logout")
    login(client, "rep_e2")
    other = client.get(f"/customers/{world['customers']['B'].id}/tier-change"
                       f"?again={request.id}")
    assert other.status_code in (200, 403) and "订单连续下滑" not in other.get_data(as_text=True)
