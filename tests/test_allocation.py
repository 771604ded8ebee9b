"""Customer allocation (客户分配): the ordered rules and their pools, the proposed manager
of a new customer (form and import), bulk reassignment with its preview, races and
audit, each customer's ownership history, and the workload view."""
import io
import re

import pytest
from openpyxl import Workbook

from models import (
    AllocationRule,
    AuditEvent,
    Customer,
    CustomerValueClass,
    DomainError,
    OwnershipChange,
    Tier,
    User,
)
from models.allocation import (
    UNASSIGNED,
    Allocator,
    confirm_reassignment,
    new_customer,
    plan_reassignment,
    propose_manager,
    rules_of,
    save_rule,
    workload,
)
from models.customers import ownership_history, save_customer
from services.demo import ensure_reference_data
from tests.conftest import login


@pytest.fixture
def world(app, make):
    """Tiers A–D; branch 上海 with its manager and reps 张伟, 李娜, 王芳 (and 赵磊, who
    left); branch 北京 with rep 刘洋; an admin. Shanghai holds ten customers: four A
    and two B with 张伟, three C with 赵磊 (manufacturers, two in 浦东), one nobody holds."""
    with app.test_request_context():
        ensure_reference_data()
        tiers = {t.code: t for t in Tier.select()}
        sh, bj = make.branch("SH", "上海分公司"), make.branch("BJ", "北京分公司")
        people = dict(
            bm=make.user("bm_sh", ["branch_manager"], sh, display_name="陈经理"),
            zhang=make.user("zhang", ["sales_rep"], sh, display_name="张伟"),
            li=make.user("li", ["sales_rep"], sh, display_name="李娜"),
            wang=make.user("wang", ["sales_rep"], sh, display_name="王芳"),
            zhao=make.user("zhao", ["sales_rep"], sh, display_name="赵磊"),
            liu=make.user("liu", ["sales_rep"], bj, display_name="刘洋"),
            admin=make.user("admin", ["admin"], display_name="管理员"),
            bm_bj=make.user("bm_bj", ["branch_manager"], bj, display_name="北京经理"),
        )
        customers = []
        for n in range(4):
            customers.append(make.customer(sh, f"上海甲{n}有限公司", code=f"SA{n}",
                                           tier=tiers["A"], account_manager=people["zhang"]))
        for n in range(2):
            customers.append(make.customer(sh, f"上海乙{n}有限公司", code=f"SB{n}",
                                           tier=tiers["B"], account_manager=people["zhang"]))
        for n, region in enumerate(("上海浦东新区", "上海浦东新区", "上海闵行区")):
            customers.append(make.customer(sh, f"上海丙{n}制造有限公司", code=f"SC{n}",
                                           tier=tiers["C"], industry="manufacturing",
                                           region=region, account_manager=people["zhao"]))
        customers.append(make.customer(sh, "上海无人负责有限公司", code="SN0"))
        beijing = make.customer(bj, "北京客户有限公司", code="BJ0", account_manager=people["liu"])
        return dict(tiers=tiers, sh=sh, bj=bj, customers=customers, beijing=beijing, **people)


def chosen_manager(html):
    """The id the account manager select has selected."""
    select = re.search(r'<select[^>]*name="account_manager".*?</select>', html, re.S).group(0)
    found = re.search(r'<option selected value="(\d+)"|<option value="(\d+)" selected', select)
    return int(found.group(1) or found.group(2))


def ids(*users):
    return [u.id for u in users]


def test_first_matching_rule_proposes_and_a_pool_fills_its_emptiest_member(app, world):
    """Rules are read in order, the first match wins; a pool gives each customer to the
    member with the fewest customers of its tier, so that it fills evenly."""
    w = world
    with app.test_request_context():
        save_rule(None, w["admin"], w["sh"].id, ids(w["wang"]), region="浦东",
                  industry="manufacturing")
        save_rule(None, w["admin"], w["sh"].id, ids(w["zhang"], w["li"]))
        manager, rule = propose_manager(w["sh"].id, "上海浦东新区", "manufacturing", "private")
        assert (manager.display_name, rule.position) == ("王芳", 1)
        manager, rule = propose_manager(w["sh"].id, "上海闵行区", "manufacturing", "private")
        assert (manager.display_name, rule.position) == ("李娜", 2)  # 张伟 holds six already
        allocator = Allocator(w["sh"].id)
        taken = []
        for _n in range(4):  # untiered: both hold none of that tier, so they alternate
            customer = new_customer()
            manager, _rule = allocator.propose(customer)
            allocator.take(customer, manager.id)
            taken.append(manager.display_name)
        assert sorted(taken) == ["张伟", "张伟", "李娜", "李娜"]


def test_no_rule_or_only_inactive_managers_propose_nobody(app, world):
    """Without rules nobody is proposed; a rule whose only manager has left is passed
    over for the next one."""
    w = world
    with app.test_request_context():
        assert propose_manager(w["sh"].id, "上海", "retail", "private") == (None, None)
        save_rule(None, w["admin"], w["sh"].id, ids(w["zhao"]))
        save_rule(None, w["admin"], w["sh"].id, ids(w["li"]))
        User.update(active=False).where(User.id == w["zhao"].id).execute()
        manager, rule = propose_manager(w["sh"].id, "上海", "retail", "private")
        assert (manager.display_name, rule.position) == ("李娜", 2)


@pytest.mark.parametrize("case, message", [
    ("inactive", "赵磊 的账号已停用。"),
    ("other_branch", "刘洋 不在本分公司工作。"),
    ("nobody", "请至少选择一位客户经理。"),
])
def test_a_rule_naming_an_inactive_or_another_branchs_manager_is_refused(app, world, case,
                                                                        message):
    """A rule names only active people of its own branch; otherwise nothing is saved."""
    w = world
    with app.test_request_context():
        User.update(active=False).where(User.id == w["zhao"].id).execute()
        managers = {"inactive": ids(w["zhao"]), "other_branch": ids(w["zhang"], w["liu"]),
                    "nobody": []}[case]
        with pytest.raises(DomainError) as error:
            save_rule(None, w["admin"], w["sh"].id, managers, tier=w["tiers"]["A"].id)
        assert str(error.value) == message
        assert AllocationRule.select().count() == 0


def test_rules_are_edited_moved_and_removed_through_the_page(client, app, world):
    """A branch manager adds two rules, moves the second up, and removes one; the order
    and the audit trail follow, and an unknown manager id is refused in words."""
    w = world
    login(client, "bm_sh")
    response = client.post(f"/allocation/rules/new?branch={w['sh'].id}", data={
        "industry": "manufacturing", "managers": [w["wang"].id]})
    assert response.status_code == 303
    client.post(f"/allocation/rules/new?branch={w['sh'].id}", data={
        "tier": str(w["tiers"]["A"].id), "managers": [w["zhang"].id, w["li"].id]})
    with app.app_context():
        first, second = rules_of(w["sh"].id)
    assert [m.display_name for m in second.managers] == ["张伟", "李娜"] or \
        [m.display_name for m in second.managers] == ["李娜", "张伟"]
    client.post(f"/allocation/rules/{second.id}/move", data={"to": "up"})
    with app.app_context():
        assert [r.id for r in rules_of(w["sh"].id)] == [second.id, first.id]
    page = client.get("/allocation").get_data(as_text=True)
    assert page.index("A级") < page.index("制造业")
    response = client.post(f"/allocation/rules/new?branch={w['sh'].id}", data={
        "managers": [w["liu"].id]}, headers={"Accept-Language": "en"})
    assert response.status_code == 200
    assert "刘洋 不在本分公司工作。" in response.get_data(as_text=True)
    client.post(f"/allocation/rules/{first.id}/delete")
    with app.app_context():
        assert [r.id for r in rules_of(w["sh"].id)] == [second.id]
        assert [r.position for r in rules_of(w["sh"].id)] == [1]
        actions = [e.action for e in AuditEvent.select().where(
            AuditEvent.object_type == "allocation_rule").order_by(AuditEvent.id)]
    assert actions == ["allocation_rule_saved", "allocation_rule_saved",
                       "allocation_rule_moved", "allocation_rule_deleted"]


def test_another_branchs_rule_is_a_404_and_reps_may_not_allocate(client, app, world):
    """A branch manager cannot read or change another branch's rules (404), and sees
    only their own branch on the page; a sales rep gets 403."""
    w = world
    with app.test_request_context():
        rule = save_rule(None, w["admin"], w["bj"].id, ids(w["liu"]))
    login(client, "bm_sh")
    assert client.get(f"/allocation/rules/{rule.id}/edit").status_code == 404
    assert client.post(f"/allocation/rules/{rule.id}/delete").status_code == 404
    page = client.get(f"/allocation?branch={w['bj'].id}").get_data(as_text=True)
    assert "上海分公司" in page and "刘洋" not in page
    with app.app_context():
        assert AllocationRule.select().count() == 1
    rep = app.test_client()
    login(rep, "zhang")
    assert rep.get("/allocation").status_code == 403


def test_new_customer_form_proposes_the_rules_manager_and_the_user_may_change_it(
        client, app, world):
    """The new-customer form selects the manager the rules propose, asks again when the
    industry changes, and saves whoever the user chose, with an ownership record."""
    w = world
    with app.test_request_context():
        save_rule(None, w["admin"], w["sh"].id, ids(w["wang"]), industry="energy")
        save_rule(None, w["admin"], w["sh"].id, ids(w["li"]))
    login(client, "bm_sh")
    page = client.get("/customers/new").get_data(as_text=True)
    assert chosen_manager(page) == w["li"].id
    assert "按分配规则第 2 条建议" in page
    partial = client.get("/customers/new/manager", query_string={
        "branch": w["sh"].id, "industry": "energy", "nature": "private"},
        headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "按分配规则第 1 条建议" in partial and "<html" not in partial
    assert chosen_manager(partial) == w["wang"].id
    response = client.post("/customers/new", data={
        "code": "NEW1", "name": "上海新能源有限公司", "kind": "existing", "nature": "private",
        "industry": "energy", "branch": w["sh"].id, "account_manager": w["zhang"].id})
    assert response.status_code == 303
    with app.app_context():
        customer = Customer.get(Customer.code == "NEW1")
        assert customer.account_manager_id == w["zhang"].id
        [change] = OwnershipChange.select().where(OwnershipChange.customer == customer.id)
        assert (change.from_manager_id, change.to_manager_id, change.source) == \
            (None, w["zhang"].id, "form")


def test_import_proposes_managers_for_new_customers_and_records_ownership(
        client, app, world, immediate_jobs):
    """New customers in a file without an account manager get the rules' proposal,
    shown in the preview, and a pool fills evenly across the file."""
    w = world
    with app.test_request_context():
        save_rule(None, w["admin"], w["sh"].id, ids(w["li"], w["wang"]))
    book = Workbook()
    sheet = book.active
    sheet.append(["客户编号", "客户名称", "分公司"])
    for n in range(4):
        sheet.append([f"IMP{n}", f"导入客户{n}有限公司", "SH"])
    sheet.append(["IMP9", "上海第五家有限公司", "SH"])
    data = io.BytesIO()
    book.save(data)
    login(client, "bm_sh")
    response = client.post("/customers/import", data={
        "file": (io.BytesIO(data.getvalue()), "customers.xlsx")},
        content_type="multipart/form-data")
    assert response.status_code == 303
    preview = client.get(response.headers["Location"]).get_data(as_text=True)
    assert preview.count("客户经理（按分配规则建议）") == 5
    assert client.post(response.headers["Location"]).status_code == 303
    with app.app_context():
        managers = [c.account_manager_id for c in Customer.select().where(
            Customer.code.startswith("IMP")).order_by(Customer.code)]
        assert sorted(managers) == sorted([w["li"].id] * 3 + [w["wang"].id] * 2) or \
            sorted(managers) == sorted([w["li"].id] * 2 + [w["wang"].id] * 3)
        assert OwnershipChange.select().where(OwnershipChange.source == "import").count() == 5


def test_import_moving_customers_to_another_branch_proposes_that_branchs_managers(
        client, app, world, immediate_jobs):
    """A branch split by import: a customer moved to 北京 in a file without an account
    manager gets the manager 北京's rules propose for it (by its industry and its tier),
    shown in the preview and recorded as an ownership change. One that no rule of 北京
    takes is refused, as before."""
    w = world
    with app.test_request_context():
        save_rule(None, w["admin"], w["bj"].id, ids(w["liu"]), industry="manufacturing",
                  tier=w["tiers"]["C"].id)
    login(client, "admin")

    def upload(*codes):
        book = Workbook()
        sheet = book.active
        sheet.append(["客户编号", "分公司"])
        for code in codes:
            sheet.append([code, "BJ"])
        data = io.BytesIO()
        book.save(data)
        response = client.post("/customers/import", data={
            "file": (io.BytesIO(data.getvalue()), "customers.xlsx")},
            content_type="multipart/form-data")
        assert response.status_code == 303
        return response.headers["Location"]

    # SC0: a C manufacturer of 赵磊's; SA0: an A customer of 张伟's, which no rule takes.
    preview = client.get(upload("SC0", "SA0")).get_data(as_text=True)
    assert re.search(r"客户经理（按分配规则建议）</b>: <del>赵磊</del> → 刘洋", preview)
    assert preview.count("客户经理（按分配规则建议）") == 1
    assert "张伟 不在北京分公司工作" in preview
    assert client.post(upload("SC0")).status_code == 303
    with app.app_context():
        moved = Customer.get(Customer.code == "SC0")
        assert (moved.branch_id, moved.account_manager_id) == (w["bj"].id, w["liu"].id)
        [change] = OwnershipChange.select().where(OwnershipChange.customer == moved.id,
                                                  OwnershipChange.source == "import")
        assert (change.from_manager_id, change.to_manager_id) == (w["zhao"].id, w["liu"].id)


def test_reassigning_a_leaving_reps_customers_by_the_rules(app, world):
    """The customers of a rep who leaves go where the rules send them, never back to
    that rep; the preview counts per new manager and tier; confirming writes one audit
    event naming every move and an ownership record per customer."""
    w = world
    with app.test_request_context():
        save_rule(None, w["admin"], w["sh"].id, ids(w["wang"]), region="浦东")
        save_rule(None, w["admin"], w["sh"].id, ids(w["zhao"], w["li"]))
        plan = plan_reassignment(w["sh"].id, from_manager_id=w["zhao"].id)
        moves = {m.customer.code: m.new_manager_id for m in plan.moves}
        assert moves == {"SC0": w["wang"].id, "SC1": w["wang"].id, "SC2": w["li"].id}
        assert plan.per_manager[w["wang"].id][w["tiers"]["C"].id] == 2
        confirm_reassignment(w["bm"], w["sh"].id, plan.fingerprint,
                             from_manager_id=w["zhao"].id)
        held = dict(Customer.select(Customer.code, Customer.account_manager)
                    .where(Customer.code.startswith("SC")).tuples())
        assert held == {"SC0": w["wang"].id, "SC1": w["wang"].id, "SC2": w["li"].id}
        [event] = AuditEvent.select().where(AuditEvent.action == "customers_reassigned")
        assert event.actor_id is None or event.actor_id == w["bm"].id
        assert '"count": 3' in event.after
        changes = list(OwnershipChange.select().where(OwnershipChange.source == "reassignment"))
        assert len(changes) == 3 and {c.reference for c in changes} == {str(event.id)}
        customer = Customer.get(Customer.code == "SC0")
        history = ownership_history(customer)
        assert [h[0].display_name for h in history] == ["王芳", "赵磊"]
        assert history[0][2] is None and history[1][2] == history[0][1]


def test_reassigning_to_one_manager_outside_the_branch_is_refused(app, world):
    """Customers cannot be given to a manager of another branch, nor to one who has
    left: nothing changes."""
    w = world
    with app.test_request_context():
        with pytest.raises(DomainError, match="不在本分公司工作"):
            plan_reassignment(w["sh"].id, from_manager_id=w["zhao"].id,
                              to_manager_id=w["liu"].id)
        User.update(active=False).where(User.id == w["wang"].id).execute()
        with pytest.raises(DomainError, match="已停用"):
            confirm_reassignment(w["bm"], w["sh"].id, "x", from_manager_id=w["zhao"].id,
                                 to_manager_id=w["wang"].id)
        assert Customer.select().where(Customer.account_manager == w["zhao"].id).count() == 3
        assert OwnershipChange.select().count() == 0


def test_a_reassignment_that_raced_another_changes_nothing(app, world):
    """Two people preview the same customers; the first confirms; the second's confirm
    is refused whole, because the customers moved after its preview."""
    w = world
    with app.test_request_context():
        first = plan_reassignment(w["sh"].id, from_manager_id=w["zhang"].id,
                                  to_manager_id=w["li"].id)
        second = plan_reassignment(w["sh"].id, from_manager_id=w["zhang"].id,
                                   to_manager_id=w["wang"].id)
        confirm_reassignment(w["bm"], w["sh"].id, first.fingerprint,
                             from_manager_id=w["zhang"].id, to_manager_id=w["li"].id)
        with pytest.raises(DomainError, match="预览之后这些客户已有变动"):
            confirm_reassignment(w["admin"], w["sh"].id, second.fingerprint,
                                 from_manager_id=w["zhang"].id, to_manager_id=w["wang"].id)
        assert Customer.select().where(Customer.account_manager == w["li"].id).count() == 6
        assert Customer.select().where(Customer.account_manager == w["wang"].id).count() == 0
        assert AuditEvent.select().where(AuditEvent.action == "customers_reassigned").count() == 1


def test_reassignment_through_the_pages_with_a_stale_preview(client, app, world):
    """The preview page lists the moves and posts them back; after someone else moved
    a customer, the confirm answers 409 with a fresh preview and changes nothing."""
    w = world
    login(client, "bm_sh")
    page = client.get("/allocation/reassign", query_string={
        "from_manager": w["zhang"].id, "tier": w["tiers"]["A"].id,
        "to_manager": w["wang"].id, "preview": 1}).get_data(as_text=True)
    assert "将有 4 位客户更换客户经理" in page and "上海甲0有限公司" in page
    fingerprint = re.search(r'name="fingerprint" type="hidden" value="(\w+)"|'
                            r'type="hidden" name="fingerprint" value="(\w+)"|'
                            r'id="fingerprint" name="fingerprint" type="hidden" value="(\w+)"',
                            page)
    fingerprint = next(g for g in fingerprint.groups() if g)
    form = {"branch": w["sh"].id, "from_manager": w["zhang"].id,
            "tier": w["tiers"]["A"].id, "industry": "", "value_class": "",
            "to_manager": w["wang"].id, "fingerprint": fingerprint}
    with app.test_request_context():
        customer = Customer.get(Customer.code == "SA0")
        save_customer(customer, w["admin"], account_manager=w["li"].id)
    response = client.post("/allocation/reassign", data=form)
    assert response.status_code == 409
    body = response.get_data(as_text=True)
    assert "预览之后这些客户已有变动" in body and "将有 3 位客户更换客户经理" in body
    with app.app_context():
        assert Customer.select().where(Customer.account_manager == w["wang"].id).count() == 0
    fresh = re.search(r'value="(\w{32})"', body).group(1)
    response = client.post("/allocation/reassign", data={**form, "fingerprint": fresh})
    assert response.status_code == 303
    with app.app_context():
        assert Customer.select().where(Customer.account_manager == w["wang"].id).count() == 3
    assert "已重新分配 3 位客户" in client.get(response.headers["Location"]).get_data(
        as_text=True)


def test_a_branch_manager_cannot_reassign_another_branchs_customers(client, app, world):
    """A branch manager's reassignment is about their own branch whatever branch the
    form names: 北京's customer stays with 刘洋."""
    w = world
    login(client, "bm_sh")
    page = client.get("/allocation/reassign", query_string={
        "branch": w["bj"].id, "from_manager": w["liu"].id, "to_manager": w["zhang"].id,
        "preview": 1}).get_data(as_text=True)
    assert "北京客户有限公司" not in page
    with app.app_context():
        assert Customer.get(Customer.code == "BJ0").account_manager_id == w["liu"].id


def test_unassigned_customers_and_value_class_rules(app, world):
    """Customers nobody holds can be chosen and given out by the rules, and a rule may
    ask for a value class."""
    w = world
    with app.test_request_context():
        nobody = Customer.get(Customer.code == "SN0")
        CustomerValueClass.create(customer=nobody, value_class="most_growth")
        save_rule(None, w["admin"], w["sh"].id, ids(w["wang"]), value_class="most_growth")
        save_rule(None, w["admin"], w["sh"].id, ids(w["li"]))
        plan = plan_reassignment(w["sh"].id, from_manager_id=UNASSIGNED)
        assert [(m.customer.code, m.new_manager_id) for m in plan.moves] == \
            [("SN0", w["wang"].id)]


def test_workload_counts_books_by_tier_and_flags_imbalance(app, world):
    """Each manager's customers by tier, with the top tier's count; a book beyond the
    ratio of the branch's average is flagged high or low; customers nobody holds have a
    row of their own."""
    w = world
    with app.test_request_context():
        rows, average = workload(w["admin"], w["sh"].id)
        by_name = {r.manager.display_name if r.manager else None: r for r in rows}
        assert by_name["张伟"].total == 6 and by_name["张伟"].top == 4
        assert by_name["张伟"].balance == "high"  # 6 against an average of 9 / 4
        assert by_name["李娜"].balance == "low" and by_name["李娜"].total == 0
        assert by_name["赵磊"].by_tier[w["tiers"]["C"].id] == 3
        assert by_name[None].total == 1
        assert "刘洋" not in by_name and "陈经理" not in by_name


def test_workload_page_shows_the_branchs_managers(client, app, world):
    """The page lists the branch's managers with their counts and the imbalance mark."""
    login(client, "bm_sh")
    page = client.get("/allocation").get_data(as_text=True)
    assert "张伟" in page and "偏多" in page and "偏少" in page
    assert "北京客户" not in page
    page = client.get("/allocation?ratio=10").get_data(as_text=True)
    assert "偏多" not in page


def test_deactivating_a_rep_who_holds_customers_leads_to_their_reassignment(
        client, app, world):
    """The administrator who deactivates 赵磊 is told he still holds three customers and
    lands on the preview of handing them over by the rules."""
    w = world
    with app.test_request_context():
        save_rule(None, w["admin"], w["sh"].id, ids(w["zhao"], w["li"]))
    login(client, "admin")
    response = client.post(f"/admin/users/{w['zhao'].id}", data={
        "username": "zhao", "display_name": "赵磊", "roles": ["sales_rep"],
        "branch": str(w["sh"].id), "language": "zh_CN", "sales_cycle_days": "28"})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/allocation/reassign?")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "赵磊 名下仍有 3 位客户，请选择由谁接手。" in page
    assert "上海丙0制造有限公司" in page
    with app.app_context():
        assert not User.get_by_id(w["zhao"].id).active


def test_the_workload_page_gives_the_average_it_flags_against(client, world):
    """The average book is printed as computed (9 customers over 4 managers: 2.25, written 2.2), not
    rounded to a whole number that the highlighting does not use."""
    login(client, "bm_sh")
    assert "人均 2.2 位客户" in client.get("/allocation").get_data(as_text=True)
