"""The customer book: find, read, create, edit, contacts, activities."""
import datetime
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import Activity, AuditEvent, Contact, Customer, CustomerYear, Tier, TierHistory, db
from models.customers import normalise_query
from services.demo import ensure_reference_data
from tests.conftest import login, run_in_huey_worker

# Uploaded files are read by a background job: here it runs inside the request.
pytestmark = pytest.mark.usefixtures("immediate_jobs")

def _book(make):
    """Two branches with a few customers each, tiers A–D, and a branch manager."""
    ensure_reference_data()
    east, west = make.branch("E", "华东分公司"), make.branch("W", "西南分公司")
    tiers = {t.code: t for t in Tier.select()}
    rep = make.user("rep_e", roles=("sales_rep",), branch=east, display_name="宋海燕")
    customers = {
        "pj": make.customer(east, "上海浦江精密机械有限公司", code="C001", tier=tiers["A"],
                            nature="state_owned", account_manager=rep),
        "hx": make.customer(east, "上海华信物流有限公司", code="C002", tier=tiers["B"],
                            kind="existing", nature="private", provisional=True),
        "yy": make.customer(east, "上海远扬贸易有限公司", code="C003", kind="prospect"),
        "cd": make.customer(west, "成都天府软件有限公司", code="C101", tier=tiers["A"]),
    }
    manager = make.user("bm_e", roles=("branch_manager",), branch=east)
    return east, west, tiers, customers, manager


def _codes(html):
    return re.findall(r">(C\d{3})</a>", html)


def test_branch_manager_lists_only_the_branch(client, make):
    """The list, its count and its filters show only the manager's branch."""
    _, west, _, _, _ = _book(make)
    login(client, "bm_e")
    page = client.get("/customers").get_data(as_text=True)
    assert _codes(page) == ["C001", "C002", "C003"]
    assert "成都天府" not in page
    # Asking for the other branch by filter never shows its customers.
    page = client.get(f"/customers?branch={west.id}").get_data(as_text=True)
    assert "C101" not in _codes(page)


def test_search_by_code_name_and_pinyin_initials(client, make):
    """shpj finds 上海浦江…; a code prefix, a part of the name, full-width letters too."""
    _book(make)
    login(client, "bm_e")
    assert _codes(client.get("/customers?q=shpj").get_data(as_text=True)) == ["C001"]
    assert _codes(client.get("/customers?q=ＳＨＰＪ").get_data(as_text=True)) == ["C001"]
    assert _codes(client.get("/customers?q=华信").get_data(as_text=True)) == ["C002"]
    assert _codes(client.get("/customers?q=c00").get_data(as_text=True)) == [
        "C001", "C002", "C003"]
    assert _codes(client.get("/customers?q=%25").get_data(as_text=True)) == []  # no wildcard


def _pieces(customers):
    """What migration 18 keeps for these customers, worked out afresh: each one- and
    two-character piece of the name, the first one and two characters of the code and
    the initials, lower-case."""
    pieces = set()
    for c in customers:
        name = c.name.lower()
        pieces |= {(name[i:i + w], c.id) for w in (1, 2) for i in range(len(name) - w + 1)}
        pieces |= {(text.lower()[:w], c.id) for text in (c.code, c.name_initials)
                   for w in (1, 2) if text}
    return pieces


def _search_agrees_with_a_full_scan(user, terms):
    """Each term finds exactly what search_condition() finds in a plain pass over every
    customer the user sees: the same customers, in code order, with the same total; and
    the pieces table holds exactly what the customers' names, codes and initials make."""
    from models.customers import find_customers, search_condition, search_page

    assert set(db.execute_sql("SELECT piece, customer_id FROM customer_search_piece")
               .fetchall()) == _pieces(Customer.select())
    for q in terms:
        expected = [c.code for c in Customer.visible_to(user).where(search_condition(q))
                    .order_by(Customer.code)]
        query = find_customers(user, q=q)
        assert sorted(c.code for c in query) == sorted(expected), q
        total, rows, capped = search_page(query, "code", False, 1, 500, 500)
        assert [r.code for r in rows] == expected and total == len(expected), q


# One and two Chinese characters, three and more; initials; codes; terms nobody holds.
TERMS = ("科", "科技", "科技有", "独", "独一", "独一5", "鑫", "湖茶", "西湖茶业", "无", "无此",
         "查无此名", "c1", "C1", "c00", "z", "c005", "bj", "bjh", "s", "dy", "dy5", "qq", "q")


def test_short_terms_find_what_a_full_scan_finds(app, make):
    """A one- or two-character Chinese term, a short code prefix and short initials find
    exactly the customers a plain pass over every customer finds, in code order, however
    few hold them and wherever they sit in the book (a lost attempt that looked only at
    the first customers by code found nothing for "C1"); and the few holders of a term,
    or none, are found in an index, not by reading the book."""
    from models.customers import few_holding

    branch = make.branch("E", "华东")
    admin = make.user("admin_s", roles=("admin",))
    names = ["上海浦江科技有限公司", "北京华信物流", "杭州西湖茶业", "科达建设集团"]
    for n in range(1, 61):  # rare holders at the end of the book, common ones all over
        make.customer(branch, names[n % 4] if n < 55 else f"独一{n}号商行", code=f"C{n:04d}")
    make.customer(branch, "鑫", code="Z1")
    make.customer(branch, "零售店", code="c1-low")
    with app.test_request_context():
        _search_agrees_with_a_full_scan(admin, TERMS)
        for q in ("科", "独一", "鑫", "无", "无此", "c1", "dy", "qq"):
            assert few_holding(q) is not None, q  # at most FEW_HOLDERS: the index tells
        assert list(Customer.select().where(Customer.id.in_(few_holding("无此")))) == []


def test_a_term_more_than_a_few_hold_is_still_read_from_the_index(app, make):
    """SQLite: a term of three characters or more that more than FEW_HOLDERS customers
    hold (but not most of the book) is read from the trigram index as a subquery, and
    search finds exactly what a plain pass finds, the cap and the total included."""
    from models.customers import (
        FEW_HOLDERS,
        few_holding,
        find_customers,
        held_by_few,
        is_sqlite,
        search_condition,
        search_page,
    )

    branch = make.branch("E", "华东")
    admin = make.user("admin_m", roles=("admin",))
    Customer.insert_many([dict(code=f"M{n:04d}", name=f"北京华信物流{n}分公司",
                               name_initials="bjhxwl", branch=branch.id)
                          for n in range(FEW_HOLDERS + 40)]
                         + [dict(code=f"A{n:04d}", name=f"杭州西湖茶业{n}",
                                 name_initials="hzxhcy", branch=branch.id)
                            for n in range(60)]).execute()
    with app.test_request_context():
        if is_sqlite():
            assert few_holding("华信物") is None and held_by_few("华信物") is not None
        _search_agrees_with_a_full_scan(admin, ("西湖茶", "hzx"))
        for q in ("华信物", "bjhx"):
            expected = [c.code for c in Customer.visible_to(admin).where(
                search_condition(q)).order_by(Customer.code)]
            assert len(expected) == FEW_HOLDERS + 40
            for page in (1, 20):
                total, rows, capped = search_page(find_customers(admin, q=q), "code", False,
                                                  page, 25, 500)
                assert [r.code for r in rows] == expected[(page - 1) * 25:page * 25], q
                assert (total, capped) == (500, True), q


def test_search_follows_every_write_to_the_book(app, make):
    """What search finds follows each way customers are written: one at a time, in bulk
    (as the import writes), renamed, given a new code, deleted one at a time and in bulk;
    a renamed customer is found by its new name only."""
    from models.customers import pinyin_initials, save_customer

    branch = make.branch("E", "华东")
    admin = make.user("admin_w", roles=("admin",))
    for n in range(1, 21):
        make.customer(branch, ["杭州西湖茶业", "科达建设集团"][n % 2], code=f"C{n:04d}")
    with app.test_request_context():
        _search_agrees_with_a_full_scan(admin, TERMS)
        names = ["独一号商行", "查无此名公司", "Qq科技"]
        Customer.insert_many([dict(code=f"B{n}", name=name, name_initials=pinyin_initials(name),
                                   branch=branch) for n, name in enumerate(names)]).execute()
        _search_agrees_with_a_full_scan(admin, TERMS)
        renamed = Customer.get(Customer.code == "C0001")
        save_customer(renamed, admin, code="Z0001", name="鑫源湖茶")
        Customer.update(name="无此科技", name_initials="wckj").where(
            Customer.code == "C0002").execute()
        _search_agrees_with_a_full_scan(admin, TERMS + ("鑫源", "z0", "wc", "wckj"))
        Customer.get(Customer.code == "B1").delete_instance()
        Customer.delete().where(Customer.code.in_(["C0003", "C0004", "B2"])).execute()
        _search_agrees_with_a_full_scan(admin, TERMS + ("鑫源", "z0", "wc", "wckj"))


def test_search_for_a_rare_term_follows_every_write(backend, client, make):
    """A term of three characters or more that few customers hold is looked up in the
    trigram index (SQLite's FTS5 table through few_holding(), PostgreSQL's pg_trgm index
    by the planner); what search finds still follows a new customer, a renamed one and
    a new code, and still means "code or initials start with, name contains"."""
    from models.customers import few_holding
    east, *_ = _book(make)
    login(client, "bm_e")

    def codes(q):
        return _codes(client.get("/customers", query_string={"q": q}).get_data(as_text=True))

    if backend == "sqlite":
        assert few_holding("华信物") is not None  # the index answers: one holder
    assert codes("华信物流") == ["C002"]
    assert codes("shhx") == ["C002"] and codes("hxwl") == []  # initials: a prefix only
    assert codes("002") == []  # codes: a prefix only
    client.post(f"/customers/{Customer.get(Customer.code == 'C002').id}/edit",
                data=_form(east, code="C020", name="上海恒通物流有限公司"))
    assert codes("华信物流") == [] and codes("恒通物流") == ["C020"] and codes("shht") == ["C020"]
    assert codes("c02") == ["C020"]
    make.customer(east, "上海恒通科技有限公司", code="C030")
    assert codes("恒通") == ["C020", "C030"] and codes("恒通科技") == ["C030"]
    assert codes("恒通科技\x00") == ["C030"] and codes("\x00") == ["C001", "C003", "C020", "C030"]
    for typed in ('恒通"', '"恒通', "恒通*", "NEAR(恒通)", "恒 通"):  # FTS syntax is text
        assert client.get("/customers", query_string={"q": typed}).status_code == 200
        assert codes(typed) == []


def test_filters_sorting_and_paging(app, client, make):
    """Tier, kind, nature and provisional filter; sort flips; pages carry a total."""
    _, _, tiers, _, _ = _book(make)
    login(client, "bm_e")

    def codes(query):
        return _codes(client.get(f"/customers?{query}").get_data(as_text=True))

    assert codes(f"tier={tiers['A'].id}") == ["C001"]
    assert codes("tier=0") == ["C003"]
    assert codes("kind=prospect") == ["C003"]
    assert codes("nature=state_owned") == ["C001"]
    assert codes("provisional=1") == ["C002"]
    assert codes("sort=code&dir=desc") == ["C003", "C002", "C001"]
    assert codes("sort=tier") == ["C001", "C002", "C003"]
    app.config["PAGE_SIZE"] = 2
    first = client.get("/customers").get_data(as_text=True)
    assert _codes(first) == ["C001", "C002"] and "3 位客户" in first and "第 1 / 2 页" in first
    assert codes("page=2") == ["C003"]
    assert client.get("/customers?page=abc&tier=xyz&sort=evil").status_code == 200


def test_search_counts_its_matches_up_to_a_cap(app, client, make):
    """While typing, the matches are counted up to SEARCH_COUNT_CAP and then read "more
    than"; the pages still follow each other in order, and a page past the cap counts
    them all."""
    _book(make)
    login(client, "bm_e")
    app.config.update(PAGE_SIZE=1, SEARCH_COUNT_CAP=2)

    def page(query):
        return client.get(f"/customers?{query}").get_data(as_text=True)

    first = page("q=c00")
    assert _codes(first) == ["C001"] and "超过 2 位客户" in first
    assert "/customers?q=c00&amp;page=2" in first  # Next, though the pages are not counted
    assert _codes(page("q=c00&page=2")) == ["C002"] and "超过 2 位客户" in page("q=c00&page=2")
    last = page("q=c00&page=3")
    assert _codes(last) == ["C003"] and "3 位客户" in last and "第 3 / 3 页" in last
    assert _codes(page("q=c00&sort=code&dir=desc")) == ["C003"]
    assert _codes(page("q=c00&sort=tier&page=2")) == ["C002"]
    app.config["SEARCH_COUNT_CAP"] = 1000
    exact = page("q=c00")
    assert "3 位客户" in exact and "超过" not in exact and "第 1 / 3 页" in exact


def test_htmx_gets_only_the_results(client, make):
    """Search-as-you-type swaps the results only, and the answer varies on HX-Request."""
    _book(make)
    login(client, "bm_e")
    response = client.get("/customers?q=shpj", headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert "<html" not in html and _codes(html) == ["C001"]
    assert "HX-Request" in response.headers["Vary"]
    assert "/customers/export.xlsx?q=shpj" in html


def _count_queries(client, url):
    queries = []
    db.obj.query_hooks.append(queries.append)
    try:
        assert client.get(url).status_code == 200
    finally:
        db.obj.query_hooks.remove(queries.append)
    return len(queries)


def test_queries_per_page_do_not_grow_with_rows(app, client, make):
    """Ten rows or fifty, the list and the detail page run the same number of queries."""
    east, _, tiers, customers, _ = _book(make)
    login(client, "bm_e")
    app.config["PAGE_SIZE"] = 50
    few = _count_queries(client, "/customers")
    search_few = _count_queries(client, "/customers?q=c")  # finds the three of _book()
    for n in range(60):
        make.customer(east, f"批量客户{n}", code=f"C9{n:02d}", tier=tiers["C"])
    many = _count_queries(client, "/customers")
    assert many == few
    assert _count_queries(client, "/customers?q=c") == search_few
    target = customers["pj"]
    detail_few = _count_queries(client, f"/customers/{target.id}")
    for n in range(20):
        Activity.create(customer=target, kind="call", occurred_on=datetime.date(2026, 1, 1 + n))
        Contact.create(customer=target, name=f"联系人{n}")
        CustomerYear.create(customer=target, year=2000 + n, sales=1000)
    assert _count_queries(client, f"/customers/{target.id}") == detail_few


def test_detail_shows_history_figures_and_activities(client, make):
    """The detail page reads like the customer's file: tier history, 万元, contacts log."""
    _, _, tiers, customers, _ = _book(make)
    pj = customers["pj"]
    CustomerYear.create(customer=pj, year=2026, sales=12345678, profit=1234567,
                        collection_rate=96.5, credit_days=30)
    TierHistory.create(customer=pj, tier=tiers["A"], effective_on=datetime.date(2026, 4, 1),
                       source="cycle", reference="2026年度客户分级评定")
    Activity.create(customer=pj, kind="visit", occurred_on=datetime.date(2026, 10, 8),
                    notes="年度互访")
    login(client, "bm_e")
    page = client.get(f"/customers/{pj.id}").get_data(as_text=True)
    for text in ("上海浦江精密机械有限公司", "1,234.57 万元", "96.5%", "2026年4月1日",
                 "2026年度客户分级评定", "年度互访", "2026年10月8日", "宋海燕", "<svg"):
        assert text in page, text


def test_another_branchs_customer_is_404_everywhere(client, make):
    """Detail, edit, activity and contact routes answer 404 and write nothing."""
    _, _, _, customers, _ = _book(make)
    theirs = customers["cd"]
    contact = Contact.create(customer=theirs, name="外人")
    login(client, "bm_e")
    activities, contacts = Activity.select().count(), Contact.select().count()
    for method, url, data in [
        ("get", f"/customers/{theirs.id}", None),
        ("get", f"/customers/{theirs.id}/edit", None),
        ("post", f"/customers/{theirs.id}/edit", {"code": "C101", "name": "改名"}),
        ("post", f"/customers/{theirs.id}/activities",
         {"kind": "call", "occurred_on": "2026-11-01"}),
        ("post", f"/customers/{theirs.id}/contacts", {"name": "张三"}),
        ("post", f"/customers/{theirs.id}/contacts/{contact.id}/delete", None),
    ]:
        response = getattr(client, method)(url, data=data,
                                           headers={"HX-Request": "true"} if data else {})
        assert response.status_code == 404, (method, url)
    assert Customer.get_by_id(theirs.id).name == "成都天府软件有限公司"
    assert (Activity.select().count(), Contact.select().count()) == (activities, contacts)


def _form(east, **overrides):
    data = {"code": "N001", "name": "上海新客户有限公司", "kind": "existing",
            "nature": "private", "industry": "it", "region": "华东", "branch": str(east.id),
            "account_manager": "0", "cooperation_since": "2026-06-01"}
    data.update(overrides)
    return data


def test_create_audits_and_ignores_extra_fields(client, make):
    """A new customer is saved from the form's fields only; a posted tier is ignored."""
    east, _, tiers, _, _ = _book(make)
    login(client, "bm_e")
    response = client.post("/customers/new", data=_form(east, tier=str(tiers["A"].id),
                                                        id="999", name_initials="hack"))
    assert response.status_code == 303
    customer = Customer.get(Customer.code == "N001")
    assert customer.tier_id is None and customer.id != 999
    assert customer.name_initials == "shxkhyxgs"
    event = AuditEvent.get(AuditEvent.action == "customer_created")
    assert event.after_data["name"] == "上海新客户有限公司"


def test_the_form_offers_active_managers_named_with_their_branch(client, make):
    """The account-manager choices: the active users of the branches the user may file
    into, each named with the branch; the admin sees every branch's."""
    east, west, _, _, manager = _book(make)
    make.user("rep_w", roles=("sales_rep",), branch=west, display_name="任涛")
    make.user("gone_e", roles=("sales_rep",), branch=east, display_name="离职员工", active=False)
    make.user("admin", roles=("admin",))

    def offered(username):
        login(client, username)
        page = client.get("/customers/new").get_data(as_text=True)
        client.post("/logout")
        select = re.search(r'<select[^>]*name="account_manager".*?</select>', page, re.S)
        return re.findall(r"<option[^>]*>([^<]*)</option>", select.group(0))[1:]

    east_people = sorted(["宋海燕（华东分公司）", f"{manager.display_name}（华东分公司）"])
    assert sorted(offered("bm_e")) == east_people
    assert sorted(offered("admin")) == sorted(east_people + ["任涛（西南分公司）"])


def test_edit_records_before_and_after(client, make):
    """An edit is audited with the old and new values; the tier cannot be edited."""
    east, _, tiers, customers, _ = _book(make)
    hx = customers["hx"]
    login(client, "bm_e")
    response = client.post(f"/customers/{hx.id}/edit", data=_form(
        east, code="C002", name="上海华信国际物流有限公司", tier=str(tiers["D"].id)))
    assert response.status_code == 303
    hx = Customer.get_by_id(hx.id)
    assert hx.name == "上海华信国际物流有限公司" and hx.tier_id == tiers["B"].id
    event = AuditEvent.get(AuditEvent.action == "customer_updated")
    assert ("name", "上海华信物流有限公司", "上海华信国际物流有限公司") in event.changes()


def test_bad_input_is_refused_with_a_message_and_nothing_saved(client, make):
    """Duplicate code, missing name, another branch, a manager of another branch: refused."""
    east, west, _, _, _ = _book(make)
    other_rep = make.user("rep_w", roles=("sales_rep",), branch=west)
    login(client, "bm_e")
    customers, events = Customer.select().count(), AuditEvent.select().count()
    cases = [
        (_form(east, code="C001"), "此客户编号不可用，请换一个"),
        (_form(east, name=""), "必填"),
        (_form(east, code="含 空格"), "此客户编号不可用，请换一个"),
        (_form(east, branch=str(west.id)), "不是有效的选择"),
        (_form(east, account_manager=str(other_rep.id)), "不是有效的选择"),
        (_form(east, cooperation_since="2099-01-01"), "将来"),
        (_form(east, cooperation_since="not-a-date"), "日期"),
    ]
    for data, message in cases:
        response = client.post("/customers/new", data=data)
        assert response.status_code == 200, data
        assert message in response.get_data(as_text=True), (data, message)
    assert Customer.select().count() == customers
    assert AuditEvent.select().count() == events


UNAVAILABLE = "此客户编号不可用，请换一个（可使用字母、数字、“.”、“-”和“_”）。"


def _refusals(html):
    """The words of the page's error messages and field errors, in order."""
    return [re.sub(r"\s+", " ", text).strip() for text in re.findall(
        r'class="(?:flash flash-error|error)"[^>]*>(.*?)</', html, re.S)]


def test_a_branch_manager_cannot_tell_which_codes_other_branches_hold(client, make):
    """To a branch manager, a code another branch holds is refused in the very words of a
    malformed code and of one their own branch holds, creating or editing, naming neither
    holder nor branch; an admin still reads that the code is taken, or why it is malformed."""
    east, _, _, customers, _ = _book(make)
    login(client, "bm_e")
    count, events = Customer.select().count(), AuditEvent.select().count()

    def refusal(code, url="/customers/new"):
        response = client.post(url, data=_form(east, code=code))
        assert response.status_code == 200, code
        return response.get_data(as_text=True)
    other, edited = refusal("C101"), refusal("C101", f"/customers/{customers['yy'].id}/edit")
    for page in (other, edited, refusal("C002"), refusal("含 空格"), refusal("X" * 33)):
        assert _refusals(page) == [UNAVAILABLE], _refusals(page)
    for page in (other, edited):
        assert "已被使用" not in page and "西南" not in page and "成都天府" not in page
    assert (Customer.select().count(), AuditEvent.select().count()) == (count, events)
    assert Customer.get_by_id(customers["yy"].id).code == "C003"
    client.post("/logout")
    make.user("boss", roles=("admin",))
    login(client, "boss")
    assert "客户编号 C101 已被使用。" in refusal("C101")
    assert "只能使用字母、数字" in refusal("含 空格")


def test_log_a_visit_in_one_step(client, make):
    """An htmx POST logs the visit and returns the refreshed timeline, audited."""
    _, _, _, customers, manager = _book(make)
    pj = customers["pj"]
    login(client, "bm_e")
    response = client.post(f"/customers/{pj.id}/activities", headers={"HX-Request": "true"},
                           data={"kind": "visit", "occurred_on": "2026-11-20",
                                 "notes": "拜访采购部<b>王总</b>"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert "2026年11月20日" in html and "&lt;b&gt;王总&lt;/b&gt;" in html
    activity = Activity.get(Activity.customer == pj)
    assert activity.kind == "visit" and activity.user_id == manager.id
    assert AuditEvent.select().where(AuditEvent.action == "activity_logged").count() == 1
    future = (datetime.date.today() + datetime.timedelta(days=3)).isoformat()
    response = client.post(f"/customers/{pj.id}/activities", headers={"HX-Request": "true"},
                           data={"kind": "call", "occurred_on": future})
    assert "将来" in response.get_data(as_text=True)
    assert Activity.select().where(Activity.customer == pj).count() == 1


def test_contacts_are_added_and_removed(client, make):
    """A contact person is added and removed from the detail page, both audited."""
    _, _, _, customers, _ = _book(make)
    pj = customers["pj"]
    login(client, "bm_e")
    html = client.post(f"/customers/{pj.id}/contacts", headers={"HX-Request": "true"},
                       data={"name": "王喆", "title": "采购经理", "phone": "138 0000 0000",
                             "email": "wz@example.com"}).get_data(as_text=True)
    assert "王喆" in html and "采购经理" in html
    contact = Contact.get(Contact.name == "王喆")
    bad = client.post(f"/customers/{pj.id}/contacts", headers={"HX-Request": "true"},
                      data={"name": "李四", "email": "not-an-email"})
    assert Contact.select().where(Contact.name == "李四").count() == 0
    assert "error" in bad.get_data(as_text=True)
    html = client.post(f"/customers/{pj.id}/contacts/{contact.id}/delete",
                       headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "王喆" not in html
    actions = [e.action for e in AuditEvent.select().order_by(AuditEvent.id)]
    assert "contact_added" in actions and "contact_removed" in actions


def test_committee_member_reads_but_does_not_edit(client, make):
    """A committee member sees every branch's customers but cannot change them."""
    _, _, _, customers, _ = _book(make)
    make.user("member", roles=("committee_member",))
    login(client, "member")
    assert len(_codes(client.get("/customers").get_data(as_text=True))) == 4
    assert client.get(f"/customers/{customers['cd'].id}").status_code == 200
    assert client.get(f"/customers/{customers['cd'].id}/edit").status_code == 403
    assert "导入" not in client.get("/customers").get_data(as_text=True)


form_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
                    max_size=60)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(q=st.text(max_size=12) | st.sampled_from(['"', '""', "\x00abc", "ab*", "NEAR(a b)"]))
def test_fuzzed_search_never_breaks(client, make, q):
    """Whatever is typed in the search box, the list answers with its results, never a 500;
    and every customer listed matches what was typed (as search_condition() means it)."""
    if not Customer.select().exists():
        _book(make)
        login(client, "bm_e")
    for headers in ({}, {"HX-Request": "true"}):
        response = client.get("/customers", query_string={"q": q}, headers=headers)
        assert response.status_code == 200, (q, response.status_code)
    typed = normalise_query(q)
    expected = sorted(c.code for c in Customer.select().where(Customer.branch == Customer.get(
        Customer.code == "C001").branch) if not typed or c.code.lower().startswith(typed)
        or typed in c.name.lower() or c.name_initials.startswith(typed))
    assert _codes(response.get_data(as_text=True)) == expected


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(code=form_text, name=form_text, kind=form_text, nature=form_text, branch=form_text,
       manager=form_text, since=form_text, region=form_text)
def test_fuzzed_customer_form_never_breaks(client, make, code, name, kind, nature, branch,
                                           manager, since, region):
    """Whatever is posted to create or edit, the answer is a page or a redirect, never 500."""
    if not Customer.select().exists():
        _book(make)
        login(client, "bm_e")
    target = Customer.get(Customer.code == "C001")
    data = {"code": code, "name": name, "kind": kind, "nature": nature, "industry": "it",
            "branch": branch, "account_manager": manager, "cooperation_since": since,
            "region": region}
    for url in ("/customers/new", f"/customers/{target.id}/edit"):
        response = client.post(url, data=data)
        assert response.status_code in (200, 303), (url, data, response.status_code)


# --- Import and export over HTTP ------------------------------------------------

def _xlsx(rows):
    import io

    from openpyxl import Workbook
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _upload(client, data, filename="客户清单.xlsx"):
    import io
    return client.post("/customers/import", data={"file": (io.BytesIO(data), filename)},
                       content_type="multipart/form-data")


BRANCH_SHEET = [
    ["华东分公司 2027年客户清单"],
    ["客户编号", "客户名称", "企业性质", "所属行业", "所属分公司", "客户经理", "2026年销售额"],
    ["C001", "上海浦江精密机械有限公司", "国有企业", "制造业", "E", "宋海燕", "1,234.5万元"],
    ["Ｃ２０１", "  上海新桥电子有限公司 ", "民营企业", "制造业", "华东分公司", "宋海燕", "88万"],
    [None, None, None, None, None, None, None],
    ["C202", "上海启明软件有限公司", "股份公司", "信息技术", "E", "", "560000"],
]


def test_import_preview_then_confirm(client, make):
    """Upload shows what would change and writes nothing; confirming writes it all, audited."""
    _book(make)
    login(client, "bm_e")
    customers = Customer.select().count()
    response = _upload(client, _xlsx(BRANCH_SHEET))
    assert response.status_code == 303
    preview = client.get(response.headers["Location"]).get_data(as_text=True)
    assert re.search(r'data-testid="count-create">2<', preview)
    assert re.search(r'data-testid="count-update">1<', preview)
    assert Customer.select().count() == customers  # nothing written yet
    confirmed = client.post(response.headers["Location"])
    assert confirmed.status_code == 303
    assert "导入完成" in client.get("/customers").get_data(as_text=True)
    new = Customer.get(Customer.code == "C201")
    assert new.name == "上海新桥电子有限公司" and new.account_manager.username == "rep_e"
    assert CustomerYear.get(CustomerYear.customer == new, CustomerYear.year == 2026).sales == 880000
    pj = Customer.get(Customer.code == "C001")
    assert CustomerYear.get(CustomerYear.customer == pj).sales == 12345000
    assert _codes(client.get("/customers?q=新桥电子").get_data(as_text=True)) == ["C201"]
    events = AuditEvent.select().where(AuditEvent.action == "customer_import")
    assert events.count() == 1 and events.get().after_data["create"] == 2
    # A confirmed upload cannot be applied twice. (The page's button posts with htmx,
    # which is sent to the next page by a header.)
    again = client.post(response.headers["Location"], headers={"HX-Request": "true"})
    assert again.status_code == 204
    assert again.headers["HX-Redirect"] == response.headers["Location"]
    assert "该导入已确认或已放弃" in client.get(again.headers["HX-Redirect"]).get_data(as_text=True)
    assert AuditEvent.select().where(AuditEvent.action == "customer_import").count() == 1


def test_import_errors_are_shown_and_nothing_is_written(client, make):
    """Rows with errors list row number and column; the import cannot be confirmed."""
    _book(make)
    login(client, "bm_e")
    sheet = [BRANCH_SHEET[1],
             ["C300", "上海零号有限公司", "民营企业", "制造业", "E", "", "100"],
             ["C301", "上海一号有限公司", "民营企业", "制造业", "E", "不存在的人", "100"],
             ["", "没有编号有限公司", "民营企业", "制造业", "E", "", "100"],
             ["C302", "上海二号有限公司", "民营企业", "制造业", "W", "", "abc"],
             ["C301", "重复编号有限公司", "民营企业", "制造业", "E", "", "100"]]
    response = _upload(client, _xlsx(sheet))
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert re.search(r'data-testid="count-error">4<', page)
    # The rows to correct come first, above the good row 2.
    good = page.index('<td class="num">2</td>')
    for row in ("3", "4", "5", "6"):
        assert 0 < page.index(f'<td class="num">{row}</td>') < good
    assert "客户经理" in page and "2026年销售额" in page and "尚未保存任何数据" in page
    assert "导入 " not in re.sub(r"<h1>.*?</h1>", "", page)  # no confirm button
    refused = client.post(response.headers["Location"])
    assert refused.status_code == 303
    assert refused.headers["Location"] == response.headers["Location"]
    assert "flash-error" in client.get(refused.headers["Location"]).get_data(as_text=True)
    assert not Customer.select().where(Customer.code.in_(["C300", "C301", "C302"])).exists()


def test_hostile_and_foreign_files_get_a_clear_message(client, make):
    """A renamed binary, a text file and an oversized upload are refused cleanly."""
    _book(make)
    login(client, "bm_e")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000
    page = _upload(client, png, "客户.xlsx").get_data(as_text=True)
    assert 'class="error"' in page and ImportBatchCount() == 0
    page = _upload(client, b"hello", "notes.txt").get_data(as_text=True)
    assert "只能导入 .xlsx 或 .csv 文件" in page
    response = _upload(client, b"0" * (11 * 1024 * 1024), "big.csv")
    assert response.status_code == 413


def ImportBatchCount():  # noqa: N802 - reads like the table it counts
    from models import ImportBatch
    return ImportBatch.select().count()


def test_a_file_being_read_shows_its_progress_then_the_preview(app, client, make):
    """While the worker reads an upload, its page shows a progress bar that htmx polls;
    once read, the poll reloads the page and the page is the preview."""
    from models import ImportBatch, User
    from services.customer_io import read_upload
    _book(make)
    login(client, "bm_e")
    batch = ImportBatch.create(user=User.get(User.username == "bm_e"), filename="客户清单.xlsx",
                               status="reading", progress=40, upload=_xlsx(BRANCH_SHEET))
    url = f"/customers/import/{batch.id}"
    page = client.get(url).get_data(as_text=True)
    assert "正在读取" in page and 'value="40"' in page and 'hx-trigger="every 1s"' in page
    assert "count-create" not in page
    poll = client.get(url, headers={"HX-Request": "true"})
    assert 'value="40"' in poll.get_data(as_text=True) and "HX-Refresh" not in poll.headers
    ImportBatch.update(status="queued").where(ImportBatch.id == batch.id).execute()
    assert "等待后台任务开始" in client.get(url, headers={"HX-Request": "true"}).get_data(
        as_text=True)
    with app.test_request_context():
        read_upload(batch.id)  # what the background worker does
    batch = ImportBatch.get_by_id(batch.id)
    assert batch.status == "preview" and batch.progress == 100 and batch.upload is None
    assert client.get(url, headers={"HX-Request": "true"}).headers["HX-Refresh"] == "true"
    page = client.get(url).get_data(as_text=True)
    assert re.search(r'data-testid="count-create">2<', page) and "every 1s" not in page


def test_a_file_that_cannot_be_read_says_why_and_saves_nothing(client, make):
    """A file that passes the quick checks at upload but is no customer list: its page
    says why, in the user's language, and offers a new upload; nothing is saved."""
    _book(make)
    login(client, "bm_e")
    customers = Customer.select().count()
    response = _upload(client, _xlsx([["姓名", "电话"], ["张三", "138"]]))
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    error = re.search(r'data-testid="import-error">(.*?)</p>', page, re.S).group(1)
    assert "客户编号" in error  # no header with a customer code column
    assert "未保存任何内容" in page and 'href="/customers/import"' in page
    assert "every 1s" not in page and Customer.select().count() == customers


def test_an_upload_no_worker_picks_up_says_so(client, make):
    """A file still waiting long after any file is read (no background worker) stops
    polling and says what to do."""
    import datetime

    from models import ImportBatch, User, utcnow
    _book(make)
    login(client, "bm_e")
    batch = ImportBatch.create(user=User.get(User.username == "bm_e"), filename="a.xlsx",
                               status="queued", upload=b"PK",
                               created_at=utcnow() - datetime.timedelta(minutes=11))
    page = client.get(f"/customers/import/{batch.id}").get_data(as_text=True)
    assert "后台任务没有运行" in page and "every 1s" not in page


def test_the_huey_worker_reads_an_upload(app, make, tmp_path):
    """A real huey consumer (SQLite storage) reads a queued upload into its preview,
    with its messages in the uploader's language."""
    from models import ImportBatch, User
    _book(make)
    user = User.get(User.username == "bm_e")
    User.update(language="en").where(User.id == user.id).execute()
    sheet = [*BRANCH_SHEET, ["C203", "上海三号有限公司", "民营企业", "制造业", "E", "", "abc"]]
    batch = ImportBatch.create(user=user, filename="list.xlsx", status="queued",
                               upload=_xlsx(sheet))
    run_in_huey_worker(
        app, tmp_path, f"from services.jobs import read_import; read_import({batch.id})",
        queued=lambda: ImportBatch.get_by_id(batch.id).status == "queued",
        finished=lambda: ImportBatch.get_by_id(batch.id).status not in ("queued", "reading"))
    batch = ImportBatch.get_by_id(batch.id)
    assert batch.status == "preview", batch.error
    payload = batch.payload
    assert "上海新桥电子有限公司" in payload and "abc is not a number." in payload


def test_another_users_preview_is_404(client, make):
    """A preview belongs to its uploader: others cannot open or confirm it."""
    _book(make)
    login(client, "bm_e")
    location = _upload(client, _xlsx(BRANCH_SHEET)).headers["Location"]
    client.post("/logout")
    make.user("bm_e2", roles=("branch_manager",), branch=Customer.get(Customer.code == "C001")
              .branch)
    login(client, "bm_e2")
    assert client.get(location).status_code == 404
    assert client.post(location).status_code == 404
    assert not Customer.select().where(Customer.code == "C201").exists()


def test_export_is_scoped_neutralised_and_round_trips(client, make):
    """The export holds the branch's filtered rows as text, and re-importing it changes nothing."""
    import io

    from openpyxl import load_workbook
    east, _, _, _, _ = _book(make)
    make.customer(east, "=HYPERLINK(\"http://evil\",\"点我\")", code="C009")
    login(client, "bm_e")
    response = client.get("/customers/export.xlsx?q=c00")
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and ".xlsx" in disposition
    sheet = load_workbook(io.BytesIO(response.data)).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    codes = [row[0] for row in values[1:]]
    assert sorted(codes) == ["C001", "C002", "C003", "C009"]  # no C101 from the other branch
    evil = next(row for row in values if row[0] == "C009")
    cell = next(c for c in sheet[codes.index("C009") + 2] if str(c.value).startswith("'="))
    assert cell.data_type == "s" and evil[1].startswith("'=")
    csv_response = client.get("/customers/export.csv")
    assert csv_response.data.startswith(b"\xef\xbb\xbf") and b"C101" not in csv_response.data
    # Importing the export back changes nothing.
    location = _upload(client, response.data, "export.xlsx").headers["Location"]
    page = client.get(location).get_data(as_text=True)
    assert re.search(r'data-testid="count-unchanged">4<', page)
    assert re.search(r'data-testid="count-create">0<', page)
    assert re.search(r'data-testid="count-update">0<', page)
    # Nothing to import: no button that would import 0 rows.
    assert "无需导入" in page and "导入 0 行" not in page
    assert AuditEvent.select().where(AuditEvent.action == "customer_export").count() == 2


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cells=st.lists(st.lists(form_text | st.integers() | st.floats(allow_nan=True), max_size=8),
                      max_size=6),
       raw=st.binary(max_size=300))
def test_fuzzed_import_never_breaks(client, make, cells, raw):
    """Any spreadsheet content or any bytes: the upload answers a page, never a 500."""
    import csv
    import io
    if not Customer.select().exists():
        _book(make)
        login(client, "bm_e")
    rows = [BRANCH_SHEET[1], *[[str(c) for c in row] for row in cells]]
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    for data, name in ((text.getvalue().encode(), "f.csv"), (raw, "f.csv"), (raw, "f.xlsx")):
        response = _upload(client, data, name)
        assert response.status_code in (200, 303), (name, response.status_code)
        if response.status_code == 303:
            assert client.get(response.headers["Location"]).status_code == 200


def test_full_width_code_is_read_as_half_width(client, make):
    """Ｃ００７ typed in the form is saved as C007, the way the import reads it."""
    east, _, _, _, _ = _book(make)
    login(client, "bm_e")
    response = client.post("/customers/new", data=_form(east, code="Ｃ００７"))
    assert response.status_code == 303
    assert Customer.select().where(Customer.code == "C007").exists()


def test_a_long_term_is_answered_from_the_trigram_index(backend, app, make):
    """A term of three characters or more is found through an index of what customers
    hold: on SQLite the FTS5 trigram table hands back its few holders (none for a name
    nobody has); on PostgreSQL the planner, kept from reading the table, looks the term
    up in the pieces' index or the pg_trgm index (an index on another expression would
    not serve)."""
    from models.customers import few_holding, find_customers

    branch = make.branch("E", "华东")
    admin = make.user("admin_t", roles=("admin",))
    for n in range(1, 40):
        make.customer(branch, f"杭州西湖茶业{n}", code=f"C{n:04d}")
    terms = ("查无此名", "湖茶业", "xhc", "C003")
    with app.test_request_context(), db.atomic():
        if backend == "sqlite":
            holders = {q: few_holding(q) for q in terms}
            assert holders["查无此名"] == []
            assert len(holders["湖茶业"]) == 39 and len(holders["xhc"]) == 39
            assert sorted(holders["C003"]) == sorted(
                c.id for c in Customer.select().where(Customer.code.startswith("C003")))
            return
        db.execute_sql("SET LOCAL enable_seqscan = off")
        for q in terms:
            sql, params = find_customers(admin, q=q).select(Customer.id).sql()
            plan = "\n".join(row[0] for row in db.execute_sql("EXPLAIN " + sql, params))
            assert "customer_search_piece_pkey" in plan or "customer_search_trigram" in plan, (
                q, plan)
