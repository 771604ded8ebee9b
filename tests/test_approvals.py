"""Tier change requests: rules, filing, the steps in order, refusals, the queue, bulk."""
import datetime
import re
import threading

import pytest
from flask_babel import force_locale

from models import (
    ApprovalRule,
    ApprovalStep,
    AuditEvent,
    Customer,
    CustomerYear,
    DomainError,
    Tier,
    TierChangeRequest,
    TierHistory,
    User,
)
from models.approvals import (
    AlreadyDecided,
    decide,
    decide_many,
    file_cycle_requests,
    file_request,
    pending_count,
    pending_page,
    queue,
    reset_rule,
    roles_for,
    save_rule,
    withdraw,
)
from services.demo import ensure_reference_data
from tests.conftest import login


def make_world(app, make):
    """Tiers A–D, branches E and W, an account manager and a branch manager in each,
    a sales director, a general manager, an admin; customers of E at B, C and D."""
    with app.test_request_context():
        ensure_reference_data()
        tiers = {t.code: t for t in Tier.select()}
        east, west = make.branch("E", "华东分公司"), make.branch("W", "西南分公司")
        rep = make.user("rep_e", roles=("sales_rep",), branch=east, language="en")
        other_rep = make.user("rep_e2", roles=("sales_rep",), branch=east, language="en")
        bm = make.user("bm_e", roles=("branch_manager",), branch=east, language="en")
        bm_w = make.user("bm_w", roles=("branch_manager",), branch=west, language="en")
        rep_w = make.user("rep_w", roles=("sales_rep",), branch=west, language="en")
        director = make.user("director", roles=("sales_director",), language="en")
        gm = make.user("gm", roles=("general_manager",), language="en")
        admin = make.user("admin", roles=("admin",), language="en")
        customers = {code: make.customer(east, f"华东{code}级客户", tier=tiers[code],
                                         account_manager=rep)
                     for code in ("B", "C", "D")}
        west_customer = make.customer(west, "西南客户", tier=tiers["C"], account_manager=rep_w)
        for customer in [*customers.values(), west_customer]:
            TierHistory.create(customer=customer, tier=customer.tier,
                               effective_on=datetime.date(2026, 4, 1), source="cycle")
    return dict(tiers=tiers, east=east, west=west, rep=rep, other_rep=other_rep, bm=bm,
                bm_w=bm_w, rep_w=rep_w, director=director, gm=gm, admin=admin,
                customers=customers, west_customer=west_customer)


@pytest.fixture
def world(app, make):
    return make_world(app, make)


def _fresh(customer):
    return Customer.get_by_id(customer.id)


def _refused(app, call, match, *args, **kwargs):
    """`call` raises DomainError with `match` in English, and changes no table."""
    counts = [m.select().count() for m in (TierChangeRequest, ApprovalStep, TierHistory)]
    steps = [(s.id, s.status) for s in ApprovalStep.select().order_by(ApprovalStep.id)]
    with app.test_request_context(), force_locale("en"), pytest.raises(DomainError,
                                                                        match=match):
        call(*args, **kwargs)
    assert [m.select().count() for m in (TierChangeRequest, ApprovalStep, TierHistory)] \
        == counts
    assert [(s.id, s.status) for s in ApprovalStep.select().order_by(ApprovalStep.id)] == steps


def test_default_rules_and_the_most_specific_one_wins(app, world):
    """Any change needs the branch manager; into the top tier: manager → director → GM;
    a stored per-tier rule beats the direction's, which beats the general one."""
    t = world["tiers"]
    with app.test_request_context():
        assert roles_for(t["B"], t["C"])[1] == ["branch_manager"]
        assert roles_for(t["C"], t["B"])[1] == ["branch_manager"]
        assert roles_for(t["B"], t["A"])[1] == ["branch_manager", "sales_director",
                                                "general_manager"]
        assert roles_for(None, t["D"])[1] == ["branch_manager"]
        save_rule("down", world["admin"], ["branch_manager", "sales_director"])
        assert roles_for(t["B"], t["C"])[1] == ["branch_manager", "sales_director"]
        assert roles_for(t["C"], t["B"])[1] == ["branch_manager"]
        save_rule(f"tier-{t['C'].id}", world["admin"], ["general_manager"])
        assert roles_for(t["B"], t["C"])[1] == ["general_manager"]
        reset_rule(f"tier-{t['C'].id}", world["admin"])
        assert roles_for(t["B"], t["C"])[1] == ["branch_manager", "sales_director"]
    actions = [e.action for e in AuditEvent.select().order_by(AuditEvent.id)]
    assert actions.count("approval_rule_saved") == 2 and "approval_rule_reset" in actions


def test_bad_rules_are_refused_and_nothing_is_saved(app, world):
    """A rule with no steps, an unknown role or key, or a role twice: refused, not stored."""
    admin = world["admin"]
    for key, roles, match in (("any", [], "at least one"), ("any", ["", ""], "at least one"),
                              ("any", ["sales_rep"], "Unknown approver role"),
                              ("sideways", ["branch_manager"], "no such approval rule"),
                              ("up", ["general_manager", "general_manager"], "once")):
        with app.test_request_context(), force_locale("en"), \
                pytest.raises(DomainError, match=match):
            save_rule(key, admin, roles)
    assert ApprovalRule.select().count() == 0


def test_open_requests_keep_the_steps_they_were_filed_with(app, world):
    """Changing a rule changes the steps of new requests only."""
    t, c = world["tiers"], world["customers"]
    with app.test_request_context():
        old = file_request(c["B"], world["rep"], t["A"], "大客户")
        save_rule(f"tier-{t['A'].id}", world["admin"], ["general_manager"])
        new = file_request(c["C"], world["rep"], t["A"], "大客户")
    assert [s.role for s in old.steps()] == ["branch_manager", "sales_director",
                                             "general_manager"]
    assert [s.role for s in new.steps()] == ["general_manager"]


def test_branch_manager_approves_a_mid_year_downgrade(app, world):
    """One step; its approval moves the tier, writes the history with the effective date,
    closes the request and audits each act."""
    t, customer = world["tiers"], world["customers"]["B"]
    effective = datetime.date.today() + datetime.timedelta(days=3)
    with app.test_request_context():
        request = file_request(customer, world["rep"], t["C"], "订单连续下滑",
                               effective_on=effective)
        assert _fresh(customer).tier_id == t["B"].id  # nothing moves before approval
        decide(request.pending_step(), world["bm"], "approve", "同意")
    request = TierChangeRequest.get_by_id(request.id)
    assert request.status == "approved" and request.closed_at is not None
    assert _fresh(customer).tier_id == t["C"].id
    latest = (TierHistory.select().where(TierHistory.customer == customer)
              .order_by(TierHistory.id.desc()).first())
    assert (latest.tier_id, latest.effective_on, latest.source, latest.created_by_id) == \
        (t["C"].id, effective, "approval", world["bm"].id)
    step = request.steps()[0]
    assert (step.status, step.decided_by_id, step.comment) == ("approved", world["bm"].id, "同意")
    actions = [e.action for e in AuditEvent.select().where(
        AuditEvent.object_type == "tier_change_request").order_by(AuditEvent.id)]
    assert actions == ["tier_change_filed", "tier_change_approved"]


def test_promotion_to_the_top_passes_three_steps_in_order(app, world):
    """Manager, then director, then GM: no step is skipped, the tier moves only at the end."""
    t, customer = world["tiers"], world["customers"]["B"]
    with app.test_request_context():
        request = file_request(customer, world["rep"], t["A"], "年度采购额翻番")
    steps = request.steps()
    assert [s.status for s in steps] == ["pending", "waiting", "waiting"]
    _refused(app, decide, "earlier step", steps[1], world["director"], "approve")
    _refused(app, decide, "earlier step", steps[2], world["gm"], "approve")
    _refused(app, decide, "Branch manager|branch manager", steps[0], world["director"],
             "approve")
    with app.test_request_context():
        decide(steps[0], world["bm"], "approve", "")
        assert _fresh(customer).tier_id == t["B"].id
        decide(steps[1], world["director"], "approve", "")
        assert _fresh(customer).tier_id == t["B"].id
        decide(steps[2], world["gm"], "approve", "批准")
    assert _fresh(customer).tier_id == t["A"].id
    assert [s.status for s in request.steps()] == ["approved"] * 3
    assert TierChangeRequest.get_by_id(request.id).status == "approved"
    actions = [e.action for e in AuditEvent.select().where(
        AuditEvent.object_type == "tier_change_request").order_by(AuditEvent.id)]
    assert actions == ["tier_change_filed", "tier_change_step_approved",
                       "tier_change_step_approved", "tier_change_approved"]


def test_a_branch_managers_own_request_goes_to_the_role_above(app, world):
    """Nobody decides their own request: when the branch manager files, the branch manager
    step goes to the sales director (and a promotion to the top asks the director once),
    so the request never waits for someone who may not decide it."""
    t, c = world["tiers"], world["customers"]
    with app.test_request_context():
        down = file_request(c["C"], world["bm"], t["D"], "连续亏损")
        up = file_request(c["B"], world["bm"], t["A"], "年度采购额翻番")
        by_rep = file_request(c["D"], world["rep"], t["C"], "恢复合作")
    assert [s.role for s in down.steps()] == ["sales_director"]
    assert [s.role for s in up.steps()] == ["sales_director", "general_manager"]
    assert [s.role for s in by_rep.steps()] == ["branch_manager"]  # the rule, unchanged
    _refused(app, decide, "own request", down.steps()[0], world["bm"], "approve")
    with app.test_request_context():
        assert down.id in {r.id for r in queue(world["director"])}
        assert down.id not in {r.id for r in queue(world["bm"])}
        decide(down.steps()[0], world["director"], "approve", "同意")
        decide(up.steps()[0], world["director"], "approve", "")
        decide(up.steps()[1], world["gm"], "approve", "")
    assert (_fresh(c["C"]).tier_id, _fresh(c["B"]).tier_id) == (t["D"].id, t["A"].id)
    filed = AuditEvent.select().where(AuditEvent.action == "tier_change_filed",
                                      AuditEvent.object_id == str(down.id)).get()
    assert filed.after_data["steps"] == ["sales_director"] and filed.after_data["rule"] == "any"
    # A branch whose branch manager has left: the step goes to the director too.
    User.update(active=False).where(User.id == world["bm_w"].id).execute()
    with app.test_request_context():
        west = file_request(world["west_customer"], world["rep_w"], t["D"], "停止合作")
    assert [s.role for s in west.steps()] == ["sales_director"]


def test_illegal_filings_are_refused(app, world):
    """Same tier, no reason, no tier, a second open request, an outsider, a date before the
    current tier: each refused with a message, nothing saved."""
    t, c = world["tiers"], world["customers"]
    _refused(app, file_request, "holds", c["B"], world["rep"], t["B"], "x")
    _refused(app, file_request, "reason", c["B"], world["rep"], t["C"], "  ")
    _refused(app, file_request, "Choose the tier", c["B"], world["rep"], None, "x")
    _refused(app, file_request, "account manager", c["B"], world["other_rep"], t["C"], "x")
    _refused(app, file_request, "account manager", c["B"], world["bm_w"], t["C"], "x")
    _refused(app, file_request, "before", c["B"], world["rep"], t["C"], "x",
             effective_on=datetime.date(2026, 1, 1))
    with app.test_request_context():
        file_request(c["B"], world["rep"], t["C"], "下滑")
    _refused(app, file_request, "open tier change request", c["B"], world["bm"], t["D"], "x")


def test_illegal_decisions_are_refused(app, world):
    """The requester, another branch's manager, a rejection without reason, one person for
    two steps, a closed request, a changed tier: refused, nothing saved."""
    t, c = world["tiers"], world["customers"]
    with app.test_request_context():
        own = file_request(c["C"], world["bm"], t["D"], "下滑")
    _refused(app, decide, "own request", own.pending_step(), world["bm"], "approve")
    with app.test_request_context(), pytest.raises(DomainError):  # not even visible
        decide(own.pending_step(), world["bm_w"], "approve")
    with app.test_request_context():
        request = file_request(c["B"], world["rep"], t["C"], "下滑")
    _refused(app, decide, "reason for the rejection", request.pending_step(), world["bm"],
             "reject", " ")
    _refused(app, decide, "Approve or reject", request.pending_step(), world["bm"], "maybe")
    # One person holding two roles decides one step of a request, not two.
    both = world["director"]
    both.roles = ["sales_director", "general_manager"]
    both.save()
    with app.test_request_context():
        top = file_request(c["D"], world["rep"], t["A"], "战略客户")
        decide(top.pending_step(), world["bm"], "approve")
        decide(top.pending_step(), both, "approve")
    _refused(app, decide, "earlier step of this request", top.pending_step(), both, "approve")
    # The page asks the same rule, so it offers no decision the model would refuse.
    client = app.test_client()
    login(client, both.username)
    page = client.get(f"/tier-changes/{top.id}").get_data(as_text=True)
    assert c["D"].name in page and 'data-testid="approve"' not in page
    # The customer's tier changed meanwhile (an import, say).
    Customer.update(tier=t["D"].id).where(Customer.id == c["B"].id).execute()
    _refused(app, decide, "tier changed", request.pending_step(), world["bm"], "approve")
    with app.test_request_context():  # it can still be rejected
        decide(request.pending_step(), world["bm"], "reject", "等级已变")
    step = request.steps()[0]
    _refused(app, decide, "decided this step already", step, world["bm"], "approve")
    _refused(app, withdraw, "closed", request, world["rep"])


def test_rejection_ends_the_request_and_withdrawal_is_the_requesters(app, world):
    """A rejection closes the request with its reason and cancels the later steps; only the
    requester withdraws."""
    t, c = world["tiers"], world["customers"]
    with app.test_request_context():
        top = file_request(c["B"], world["rep"], t["A"], "战略客户")
        decide(top.pending_step(), world["bm"], "reject", "回款不达标")
    top = TierChangeRequest.get_by_id(top.id)
    assert (top.status, top.closing_comment) == ("rejected", "回款不达标")
    assert [s.status for s in top.steps()] == ["rejected", "cancelled", "cancelled"]
    assert _fresh(c["B"]).tier_id == t["B"].id
    with app.test_request_context():
        request = file_request(c["B"], world["rep"], t["C"], "下滑")
    _refused(app, withdraw, "Only the person", request, world["bm"])
    with app.test_request_context():
        withdraw(request, world["rep"], "弄错了")
    assert TierChangeRequest.get_by_id(request.id).status == "withdrawn"
    assert request.steps()[0].status == "cancelled"
    _refused(app, decide, "closed", request.steps()[0], world["bm"], "approve")
    assert AuditEvent.select().where(AuditEvent.action == "tier_change_rejected").count() == 1
    assert AuditEvent.select().where(AuditEvent.action == "tier_change_withdrawn").count() == 1


def test_two_approvers_at_once_one_wins_the_other_is_told(app, world, make):
    """Two branch managers decide the same step at the same moment: one decision stands,
    the other gets AlreadyDecided naming who decided."""
    second = make.user("bm_e2", roles=("branch_manager",), branch=world["east"],
                       display_name="第二经理")
    with app.test_request_context():
        request = file_request(world["customers"]["B"], world["rep"], world["tiers"]["C"],
                               "下滑")
    step_id = request.pending_step().id
    barrier, results = threading.Barrier(2), {}

    def run(user, decision, comment):
        from models import db
        with app.test_request_context():
            barrier.wait()
            try:
                decide(step_id, user, decision, comment)
                results[user.username] = "won"
            except AlreadyDecided as error:
                results[user.username] = str(error)
            finally:
                db.close()

    threads = [threading.Thread(target=run, args=(world["bm"], "approve", "同意")),
               threading.Thread(target=run, args=(second, "reject", "不同意"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["bm_e", "bm_e2"]
    assert list(results.values()).count("won") == 1
    step = ApprovalStep.get_by_id(step_id)
    winner = world["bm"] if results["bm_e"] == "won" else second
    loser = "bm_e2" if winner is world["bm"] else "bm_e"
    assert step.decided_by_id == winner.id
    assert winner.display_name in results[loser]
    assert AuditEvent.select().where(AuditEvent.action.in_(
        ["tier_change_approved", "tier_change_rejected"])).count() == 1


def test_queue_is_mine_and_my_branchs(app, world):
    """A branch manager's queue holds the branch's first steps; the director's holds second
    steps of every branch; nobody sees their own requests (a branch manager's own request
    waits for the director)."""
    t, c = world["tiers"], world["customers"]
    with app.test_request_context():
        down = file_request(c["B"], world["rep"], t["C"], "下滑")
        top = file_request(c["C"], world["rep"], t["A"], "战略客户")
        west = file_request(world["west_customer"], world["rep_w"], t["D"], "下滑")
        own = file_request(c["D"], world["bm"], t["C"], "增长")
        mine = {r.id for r in queue(world["bm"])}
        assert mine == {down.id, top.id}
        assert {r.id for r in queue(world["bm_w"])} == {west.id}
        assert {r.id for r in queue(world["director"])} == {own.id}  # passed up to them
        decide(top.pending_step(), world["bm"], "approve")
        assert {r.id for r in queue(world["director"])} == {top.id, own.id}
        assert {r.id for r in queue(world["bm"])} == {down.id}
        assert pending_count(world["rep"]) == 0 and pending_count(world["bm"]) == 1
        assert {r.id for r in queue(world["bm"], to_tier_id=t["A"].id)} == set()
        assert {r.id for r in queue(world["bm"], q="华东B")} == {down.id}
    assert own.id not in mine


def test_bulk_decisions_say_what_was_refused(app, world, make):
    """Bulk approval with one comment decides each ticked step; a refused one (tier changed)
    leaves the others decided."""
    t = world["tiers"]
    extra = [make.customer(world["east"], f"批量客户{n}", tier=t["C"],
                           account_manager=world["rep"]) for n in range(3)]
    with app.test_request_context():
        requests = [file_request(x, world["rep"], t["D"], "下滑") for x in extra]
    Customer.update(tier=t["B"].id).where(Customer.id == extra[2].id).execute()
    steps = [r.pending_step().id for r in requests]
    with app.test_request_context():
        done, refused = decide_many(steps, world["bm"], "approve", "统一同意")
    assert sorted(done) == sorted(r.id for r in requests[:2])
    assert [s for s, _message in refused] == [steps[2]]
    assert [_fresh(x).tier_id for x in extra] == [t["D"].id, t["D"].id, t["B"].id]
    assert {ApprovalStep.get_by_id(s).comment for s in steps[:2]} == {"统一同意"}
    assert ApprovalStep.get_by_id(steps[2]).status == "pending"


def test_cycle_results_file_one_request_per_changed_grade(app, make):
    """file_cycle_requests files a request (source cycle, with its assessment) for each final
    grade that differs from the current tier; a customer with an open request is skipped."""
    from models import Assessment
    from models.cycles import finalise
    from tests.test_cycles import _criteria, _in_committee, make_setup, save_score
    setup = make_setup(app, make)
    cycle = _in_committee(app, setup)  # every preliminary total is 60: a B
    tiers = {t.code: t for t in Tier.select()}
    sheets = list(Assessment.select().where(Assessment.cycle == cycle).order_by(Assessment.id))
    east_customers = [s.customer for s in sheets if s.branch_id == setup["east"].id]
    Customer.update(tier=tiers["B"].id).where(Customer.id == east_customers[0].id).execute()
    rep = make.user("rep_e", roles=("sales_rep",), branch=setup["east"])
    Customer.update(account_manager=rep.id, tier=tiers["C"].id).where(
        Customer.id == east_customers[1].id).execute()
    with app.test_request_context():
        open_one = file_request(Customer.get_by_id(east_customers[1].id), rep, tiers["D"], "x")
        member = setup["members"][0]
        for sheet in sheets[:3]:
            for criterion in _criteria(setup["template"]):
                save_score(sheet, member, "committee", criterion.id, None,
                           criterion.max_points * 6 // 10 + 1, "", 0)
            finalise(sheet, setup["chair"], tiers["B"])
        filed, skipped = file_cycle_requests(cycle, setup["chair"])
    # sheets[0]: B already (no request); sheets[1]: open request (skipped); sheets[2]: filed.
    assert [r.customer_id for r in filed] == [sheets[2].customer_id]
    assert [a.id for a in skipped] == [sheets[1].id]
    request = TierChangeRequest.get_by_id(filed[0].id)
    assert (request.source, request.cycle_id, request.assessment_id, request.to_tier_id,
            request.from_tier_id) == ("cycle", cycle.id, sheets[2].id, tiers["B"].id, None)
    assert [s.role for s in request.steps()] == ["branch_manager"]
    # The committee's result, not the chair's request: whoever published may decide it.
    assert request.requested_by_id is None
    client = app.test_client()
    login(client, "bm_e")
    row = re.search(rf'<tr data-request="{request.id}">.*?</tr>',
                    client.get("/approvals").get_data(as_text=True), re.S).group(0)
    assert "评级委员会" in row and ">详情</a>" in row  # the link, not the status 审批中
    detail = client.get(f"/tier-changes/{request.id}").get_data(as_text=True)
    assert "评级委员会（发布评级周期时）" in detail
    # The approver sees the sheet's scores: the header, one row per criterion, the totals.
    scores = re.search(r'data-testid="scores">(.*?)</table>', detail, re.S).group(1)
    assert scores.count("<tr>") == 1 + 6 + 1 and "评分项" in scores
    assert TierChangeRequest.get_by_id(open_one.id).status == "open"
    with app.test_request_context():  # filing again adds nothing: the requests are open
        assert file_cycle_requests(cycle, setup["chair"])[0] == []


# --- Through the pages ----------------------------------------------------------

def test_request_filed_and_decided_through_the_pages(app, client, world):
    """The account manager files from the customer page; the branch manager opens it inline
    from the queue and approves it; the customer's history shows it."""
    t, customer = world["tiers"], world["customers"]["B"]
    login(client, "rep_e")
    page = client.get(f"/customers/{customer.id}").get_data(as_text=True)
    assert f"/customers/{customer.id}/tier-change" in page
    response = client.post(f"/customers/{customer.id}/tier-change", data={
        "to_tier": t["C"].id, "effective_on": datetime.date.today().isoformat(),
        "reason": "订单下滑"})
    assert response.status_code == 303
    request = TierChangeRequest.get(TierChangeRequest.customer == customer.id)
    assert response.headers["Location"].endswith(f"/tier-changes/{request.id}")
    client.post("/logout")
    login(client, "bm_e")
    queue_page = client.get("/approvals").get_data(as_text=True)
    assert customer.name in queue_page and 'data-testid="nav-badge">1<' in queue_page
    inline = client.get(f"/tier-changes/{request.id}", headers={"HX-Request": "true"})
    text = inline.get_data(as_text=True)
    assert "<html" not in text and "订单下滑" in text and "Approve" in text
    step = request.pending_step()
    response = client.post(f"/tier-changes/{request.id}/decide", data={
        "step": step.id, "decision": "approve", "comment": "同意"},
        headers={"HX-Request": "true"})
    assert "Approved" in response.get_data(as_text=True)
    assert response.headers["HX-Trigger"] == "approvals-changed"
    assert re.search(r'id="badge-approvals-queue_page"[^>]*hx-swap-oob="true" hidden>0<',
                     response.get_data(as_text=True))  # the count follows the decision
    assert _fresh(customer).tier_id == t["C"].id
    detail = client.get(f"/customers/{customer.id}").get_data(as_text=True)
    assert f"Tier change request no. {request.id}" in detail or str(request.id) in detail


def test_the_detail_shows_what_the_approver_judges_by(app, client, world):
    """A request's detail shows the customer's tier history and its latest year's figures;
    a mid-year request has no assessment scores to show."""
    t, customer = world["tiers"], world["customers"]["B"]
    CustomerYear.create(customer=customer, year=2025, sales=1_000_000, profit=100_000,
                        collection_rate=80, credit_days=30)
    CustomerYear.create(customer=customer, year=2026, sales=15_948_000, profit=2_588_000,
                        collection_rate=91.7, credit_days=60)
    with app.test_request_context():
        request = file_request(customer, world["rep"], t["C"], "订单下滑")
    login(client, "bm_e")
    page = client.get(f"/tier-changes/{request.id}").get_data(as_text=True)
    history = re.search(r'data-testid="tier-history">(.*?)</ol>', page, re.S).group(1)
    assert history.count("<li>") == 1 and "2026" in history
    last_year = re.search(r'data-testid="last-year">(.*?)</section>', page, re.S).group(1)
    assert "Figures of 2026" in last_year and "91.7%" in last_year and "2025" not in last_year
    assert 'data-testid="scores"' not in page


def test_another_branchs_request_is_a_404(app, client, world):
    """A branch manager cannot open or decide another branch's request."""
    with app.test_request_context():
        request = file_request(world["west_customer"], world["rep_w"], world["tiers"]["D"],
                               "下滑")
    login(client, "bm_e")
    assert client.get(f"/tier-changes/{request.id}").status_code == 404
    response = client.post(f"/tier-changes/{request.id}/decide", data={
        "step": request.pending_step().id, "decision": "approve"})
    assert response.status_code == 404
    client.post("/approvals/decide", data={"steps": [request.pending_step().id],
                                           "decision": "approve"})
    assert request.pending_step() is not None
    assert _fresh(world["west_customer"]).tier_id == world["tiers"]["C"].id


def test_bulk_approval_through_the_queue(app, client, world):
    """Ticking two requests and approving them with one comment decides both."""
    t, c = world["tiers"], world["customers"]
    with app.test_request_context():
        first = file_request(c["B"], world["rep"], t["C"], "下滑")
        second = file_request(c["C"], world["rep"], t["D"], "下滑")
    login(client, "bm_e")
    response = client.post("/approvals/decide", data={
        "steps": [first.pending_step().id, second.pending_step().id],
        "decision": "approve", "comment": "月度评审同意"})
    assert response.status_code == 303
    assert {TierChangeRequest.get_by_id(r.id).status for r in (first, second)} == {"approved"}
    page = client.get("/approvals").get_data(as_text=True)
    assert "2 requests approved" in page and "Nothing waits for you." in page


def test_admin_edits_rules_through_the_page(app, client, world):
    """The rules page shows the defaults; an admin's rule is stored, an empty one refused."""
    login(client, "admin")
    page = client.get("/approvals/rules").get_data(as_text=True)
    assert "Change to" in page and "default" in page
    top = world["tiers"]["A"].id
    client.post(f"/approvals/rules/tier-{top}", data={
        f"tier-{top}-role_1": "branch_manager", f"tier-{top}-role_2": "general_manager",
        "action": "save"})
    assert ApprovalRule.get(ApprovalRule.key == f"tier-{top}").roles == [
        "branch_manager", "general_manager"]
    page = client.get("/approvals/rules").get_data(as_text=True)
    assert f'name="tier-{top}-action" value="reset"' in page  # the reset button is there
    client.post(f"/approvals/rules/tier-{top}", data={f"tier-{top}-action": "reset"})
    assert not ApprovalRule.select().where(ApprovalRule.key == f"tier-{top}").exists()
    response = client.post("/approvals/rules/any", data={"action": "save"},
                           follow_redirects=True)
    assert "at least one approval step" in response.get_data(as_text=True)
    assert not ApprovalRule.select().where(ApprovalRule.key == "any").exists()
    client.post("/logout")
    login(client, "bm_e")
    assert client.post("/approvals/rules/any", data={"any-role_1": "admin"}).status_code == 403


def test_provisional_customer_due_is_confirmed_through_a_request(app, world, make):
    """After six months a provisional customer's tier is filed for (the same tier allowed);
    the approval ends the provisional status. Before six months it is refused."""
    t = world["tiers"]
    due = make.customer(world["east"], "新客户已满半年", tier=t["C"], provisional=True,
                        account_manager=world["rep"],
                        cooperation_since=datetime.date.today() - datetime.timedelta(days=200))
    early = make.customer(world["east"], "新客户未满半年", tier=t["C"], provisional=True,
                          account_manager=world["rep"],
                          cooperation_since=datetime.date.today() - datetime.timedelta(days=90))
    _refused(app, file_request, "six months", early, world["rep"], t["C"], "确认",
             source="provisional")
    _refused(app, file_request, "Unknown source", due, world["rep"], t["C"], "x",
             source="cycle")
    with app.test_request_context():
        request = file_request(due, world["rep"], t["C"], "合作满半年，维持C级",
                               source="provisional")
        decide(request.pending_step(), world["bm"], "approve")
    confirmed = _fresh(due)
    assert (confirmed.tier_id, confirmed.provisional) == (t["C"].id, False)
    assert TierHistory.select().where(TierHistory.customer == due.id).count() == 1
    assert _fresh(early).provisional


def test_the_queue_filters_and_pages(app, client, world):
    """The director's queue holds every branch's requests at their step, oldest first;
    the branch, target tier, source and search filters narrow it, alone and together,
    and pages split it."""
    t, c, west_customer = world["tiers"], world["customers"], world["west_customer"]
    with app.test_request_context():
        save_rule("any", world["admin"], ["sales_director"])
        for customer, requester, to in ((c["B"], world["rep"], t["C"]),
                                        (c["C"], world["rep"], t["D"]),
                                        (west_customer, world["rep_w"], t["D"])):
            file_request(customer, requester, to, "下滑")
    director, east = world["director"], world["east"]

    def names(**filters):
        return [row.name for row in pending_page(director, **filters)[1]]

    everyone = [c["B"].name, c["C"].name, west_customer.name]
    assert names() == everyone and pending_count(director) == 3
    assert names(branch_id=east.id) == everyone[:2]
    assert names(to_tier_id=t["D"].id) == everyone[1:]
    assert names(branch_id=east.id, to_tier_id=t["D"].id) == [c["C"].name]
    assert names(source="mid_year") == everyone and names(source="cycle") == []
    assert names(q="西南") == [west_customer.name]
    assert names(q="华东", to_tier_id=t["D"].id) == [c["C"].name]
    total, second_page = pending_page(director, page=2, size=2)
    assert total == 3 and [row.name for row in second_page] == [west_customer.name]
    assert pending_page(director, page=3, size=2) == (3, [])
    assert pending_page(world["rep"]) == (0, []) and pending_count(world["rep"]) == 0
    login(client, "director")
    page = client.get(f"/approvals?branch={east.id}&to_tier={t['D'].id}").get_data(
        as_text=True)
    assert c["C"].name in page and c["B"].name not in page and west_customer.name not in page
