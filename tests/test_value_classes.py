"""Value classes (客户价值分类): the rules at their edges, the stored classes against a
fresh computation, the versioned rules page, recomputing after an import, the badges
and filters of the customer list, the customer page and the portfolio, the demo."""
import random
import re
from decimal import Decimal

import pytest

from models import AuditEvent, Customer, CustomerValueClass, CustomerYear, ValueClassRule, db
from models.customers import refresh_placements
from models.value_classes import (
    classes_from_figures,
    default_rules,
    recompute,
    rules_in_force,
    save_rules,
)
from services.customer_io import apply_import, preview_import, save_preview
from tests.conftest import PASSWORD, csrf_token_from, login
from tests.test_customer_io import xlsx

RULES = {"top_percent": "20", "growth_percent": "30", "collection_floor": "60"}


def figures(customer, year, sales=0, profit=0, rate=0):
    return CustomerYear.create(customer=customer, year=year, sales=Decimal(str(sales)),
                               profit=Decimal(str(profit)), collection_rate=Decimal(str(rate)))


def stored():
    """{customer id: {value class}} as stored."""
    found = {}
    for customer_id, value_class in CustomerValueClass.select(
            CustomerValueClass.customer, CustomerValueClass.value_class).tuples():
        found.setdefault(customer_id, set()).add(value_class)
    return found


def fresh(rules):
    """The classes the rules give, computed in Python from every yearly figure."""
    rows = CustomerYear.select(CustomerYear.customer, CustomerYear.year, CustomerYear.sales,
                               CustomerYear.profit, CustomerYear.collection_rate).tuples()
    return classes_from_figures(list(rows), rules)


def badges(html):
    """The value classes shown as badges, in order."""
    return re.findall(r'data-value-class="(\w+)"', html)


@pytest.fixture
def book(app, make):
    """Ten customers with 2026 figures (profits 10…100 万, one at a loss), their sales of
    2024 for growth, a prospect without figures, and a 2027 that holds only a share of
    wallet (which must not count as the latest year). In branches E (the first six) and
    W."""
    with app.test_request_context():
        east, west = make.branch("E", "华东分公司"), make.branch("W", "西南分公司")
        built = {"east": east, "west": west,
                 "admin": make.user("admin", roles=("admin",)),
                 "bm_e": make.user("bm_e", roles=("branch_manager",), branch=east)}
        specs = [  # name, 2026 sales, profit, collection rate, 2024 sales
            ("利润第一", 5_000_000, 1_000_000, 95, 4_000_000),
            ("利润第二", 4_000_000, 900_000, 90, 3_000_000),  # grows 33.3 %
            ("增长恰好", 1_300_000, 300_000, 80, 1_000_000),  # exactly 30 %: not above
            ("增长略多", 1_300_100, 200_000, 80, 1_000_000),  # 30.01 %
            ("回款偏低", 2_000_000, 400_000, Decimal("59.99"), None),
            ("回款及格", 2_000_000, 500_000, 60, None),
            ("亏损客户", 3_000_000, -1, 100, 0),  # no growth from nothing
            ("小客户甲", 100_000, 100_000, 100, None),
            ("小客户乙", 100_000, 100_000, 100, None),
            ("高增长亏损", 9_000_000, -500_000, 50, 1_000_000),  # growth and negative
        ]
        for n, (name, sales, profit, rate, before) in enumerate(specs):
            customer = make.customer(east if n < 6 else west, name, code=f"V{n:02d}")
            figures(customer, 2026, sales, profit, rate)
            if before is not None:
                figures(customer, 2024, before, 1, 100)
            built[name] = customer
        built["prospect"] = make.customer(east, "潜在客户", code="V99", kind="prospect")
        CustomerYear.create(customer=built["prospect"], year=2027,
                            share_of_wallet=Decimal("50"), upcoming_volume=Decimal("1000"))
        recompute()
    return built


def classes_by_name(book):
    found = stored()
    return {name: found.get(customer.id, set()) for name, customer in book.items()
            if isinstance(customer, Customer)}


def test_the_rules_at_their_edges(app, book):
    """Under the defaults (top 20 %, growth above 30 %, collection below 60 %): the two
    largest profits of ten are the most valuable; growth of exactly 30 % is not above
    it; 59.99 % is below 60 %, 60 % is not; a loss is negative value; a customer may
    hold two classes; a year with only a share of wallet is not the latest year."""
    assert classes_by_name(book) == {
        "利润第一": {"most_valuable"},
        "利润第二": {"most_valuable", "most_growth"},
        "增长恰好": set(),
        "增长略多": {"most_growth"},
        "回款偏低": {"negative_value"},
        "回款及格": set(),
        "亏损客户": {"negative_value"},
        "小客户甲": set(),
        "小客户乙": set(),
        "高增长亏损": {"most_growth", "negative_value"},
        "prospect": set(),
    }
    assert stored() == fresh(default_rules())


def test_ties_at_the_cut_off_are_in_and_a_loss_is_never_most_valuable(app, book):
    """Of ten customers, 60 % are the six largest profits; at 70 % the seventh place is
    a tie of two customers of 100,000 元, and both are in; at 100 % every customer with a
    profit above zero is, and none at a loss; at 0 % none is."""
    def most_valuable(top):
        with app.test_request_context():
            save_rules(book["admin"], top_percent=Decimal(top), growth_percent=Decimal("30"),
                       collection_floor=Decimal("60"))
        return {name for name, found in classes_by_name(book).items()
                if "most_valuable" in found}

    six = {"利润第一", "利润第二", "回款及格", "回款偏低", "增长恰好", "增长略多"}
    assert most_valuable("60") == six
    assert most_valuable("70") == six | {"小客户甲", "小客户乙"}
    assert most_valuable("100") == six | {"小客户甲", "小客户乙"}
    assert most_valuable("0") == set()


def test_stored_classes_equal_a_fresh_computation(app, make):
    """On a random book (missing years, losses, zero sales, equal profits) and under
    several rules, the classes stored by SQL are exactly those the rules give in
    Python."""
    rng = random.Random(21)
    with app.test_request_context():
        branch = make.branch("R", "随机分公司")
        admin = make.user("admin", roles=("admin",))
        Customer.insert_many([{"code": f"R{n:04d}", "name": f"随机客户{n}",
                               "branch": branch.id} for n in range(300)]).execute()
        ids = [c.id for c in Customer.select(Customer.id)]
        rows = []
        for customer_id in ids:
            for year in (2024, 2025, 2026):
                if rng.random() < 0.2:
                    continue
                sales = rng.choice([0, rng.randint(1, 5000) * 1000,
                                    Decimal(rng.randint(1, 10**9)) / 100])
                profit = rng.choice([0, -rng.randint(1, 10**7) / 100, 50000,
                                     Decimal(rng.randint(1, 10**8)) / 100])
                rows.append({"customer": customer_id, "year": year, "sales": sales,
                             "profit": Decimal(str(profit)),
                             "collection_rate": Decimal(rng.randint(0, 10000)) / 100})
        CustomerYear.insert_many(rows).execute()
        for top, growth, floor in (("20", "30", "60"), ("0", "0", "0"), ("100", "1000", "100"),
                                   ("33.33", "12.5", "75.25"), ("1", "250", "99.99")):
            rules = save_rules(admin, top_percent=Decimal(top), growth_percent=Decimal(growth),
                               collection_floor=Decimal(floor))
            expected = fresh(rules)
            assert stored() == expected, (top, growth, floor)
            assert expected, "the rules found nobody: the check would prove little"


def test_the_admin_saves_a_new_version_and_the_classes_follow(app, client, book):
    """On /portfolio/value-classes the admin lowers the collection floor to 50 %: a new
    version holds at once, 回款偏低 is no longer negative value, the save is audited
    with the counts, and the earlier version stays listed."""
    login(client, "admin")
    page = client.get("/portfolio/value-classes").get_data(as_text=True)
    assert 'value="60.00"' in page and "2026" in page
    response = client.post("/portfolio/value-classes",
                           data={**RULES, "collection_floor": "50"})
    assert response.status_code == 303
    assert rules_in_force().collection_floor == Decimal("50")
    assert "negative_value" not in stored().get(book["回款偏低"].id, set())
    assert "negative_value" in stored()[book["亏损客户"].id]
    event = AuditEvent.get(AuditEvent.action == "value_class_rules_saved")
    assert event.after_data["counts"]["negative_value"] == 2
    assert event.after_data["year"] == 2026
    client.post("/portfolio/value-classes", data={**RULES, "growth_percent": "10"})
    history = client.get("/portfolio/value-classes").get_data(as_text=True)
    assert "第 1 版" in history or "版本 1" in history
    assert "50.0%" in history and "10.0%" in history
    assert [r.version for r in ValueClassRule.select().order_by(ValueClassRule.version)] == [
        1, 2]


@pytest.mark.parametrize("field, value", [
    ("top_percent", "120"), ("top_percent", "-1"), ("growth_percent", "-5"),
    ("growth_percent", "1000.01"), ("collection_floor", "100.5"), ("collection_floor", "x"),
    ("top_percent", ""), ("growth_percent", "NaN"), ("collection_floor", "-inf"),
])
def test_bad_rules_are_refused_and_nothing_is_saved(app, client, book, field, value):
    """A percentage out of its range (or no number) is refused in words on the page; no
    version is saved, nothing is audited, and the stored classes stay as they were."""
    before = stored()
    login(client, "admin")
    response = client.post("/portfolio/value-classes", data={**RULES, field: value})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert re.search(r"0 到 (100|1000)|不是有效的|必填|请填写|Not a valid|required", html), html
    assert ValueClassRule.select().count() == 0
    assert not AuditEvent.select().where(
        AuditEvent.action == "value_class_rules_saved").exists()
    assert stored() == before


def test_an_unchanged_save_is_refused(app, client, book):
    """Saving the rules in force again makes no new version."""
    login(client, "admin")
    assert client.post("/portfolio/value-classes", data=RULES).status_code == 303
    again = client.post("/portfolio/value-classes", data=RULES)
    assert again.status_code == 200 and ValueClassRule.select().count() == 1


def test_only_the_admin_may_set_the_rules(app, client, book):
    """A branch manager is refused the page and the save, as on the portfolio settings."""
    login(client, "bm_e")
    assert client.get("/portfolio/value-classes").status_code == 403
    assert client.post("/portfolio/value-classes", data=RULES).status_code == 403
    assert ValueClassRule.select().count() == 0


def test_a_save_without_the_csrf_token_is_refused(csrf_app, book):
    """A forged POST (no token) saves nothing; the page's token lets the save through."""
    client = csrf_app.test_client()
    page = client.get("/login").get_data(as_text=True)
    client.post("/login", data={"username": "admin", "password": PASSWORD,
                                "csrf_token": csrf_token_from(page)})
    assert client.post("/portfolio/value-classes", data=RULES).status_code == 400
    assert ValueClassRule.select().count() == 0
    token = csrf_token_from(client.get("/portfolio/value-classes").get_data(as_text=True))
    assert client.post("/portfolio/value-classes",
                       data={**RULES, "csrf_token": token}).status_code == 303
    assert ValueClassRule.select().count() == 1


def test_an_import_of_yearly_figures_recomputes_the_classes(app, book):
    """A file that gives 小客户甲 a loss in 2026 and 回款偏低 a good collection rate
    moves them at once when confirmed; the preview alone moves nothing."""
    with app.test_request_context():
        data = xlsx(["客户编号", "2026年利润", "2026年回款率"], ["V07", "-500", ""],
                    ["V04", "", "98%"])
        preview = preview_import("figures.xlsx", data, book["admin"])
        assert "negative_value" not in stored().get(book["小客户甲"].id, set())
        apply_import(save_preview(preview, book["admin"]), book["admin"])
    found = stored()
    assert "negative_value" in found[book["小客户甲"].id]
    assert "negative_value" not in found.get(book["回款偏低"].id, set())
    assert found == fresh(rules_in_force())


def test_the_customer_list_shows_and_filters_the_classes(app, client, book):
    """The list shows each customer's classes as badges beside its name and filters by
    one; a branch manager's filter stays within the branch; the export follows it."""
    login(client, "admin")
    html = client.get("/customers?value_class=most_growth").get_data(as_text=True)
    assert "利润第二" in html and "增长略多" in html and "高增长亏损" in html
    assert "利润第一" not in html and "回款偏低" not in html
    row = re.search(r"<tr>(?:(?!</tr>).)*高增长亏损(?:(?!</tr>).)*</tr>", html, re.S).group(0)
    assert badges(row) == ["most_growth", "negative_value"]
    assert "最具增长性" in row and "负值" in row
    assert 'name="value_class"' in html
    htmx = client.get("/customers?value_class=negative_value",
                      headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "亏损客户" in htmx and "利润第一" not in htmx
    export = client.get("/customers/export.csv?value_class=most_valuable")
    codes = sorted(line.split(",")[0] for line in
                   export.get_data().decode("utf-8-sig").splitlines()[1:])
    assert codes == ["V00", "V01"]
    assert client.get("/customers?value_class=nonsense").status_code == 200
    for sort in ("tier", "branch", "name"):  # searching as one types, sorted, narrowed
        found = client.get(f"/customers?value_class=most_growth&q=增长&sort={sort}&dir=desc",
                           headers={"HX-Request": "true"}).get_data(as_text=True)
        assert "增长略多" in found and "高增长亏损" in found and "增长恰好" not in found
    client.post("/logout")
    login(client, "bm_e")
    html = client.get("/customers?value_class=negative_value").get_data(as_text=True)
    assert "回款偏低" in html and "亏损客户" not in html  # W's loss-maker is not shown


def test_the_customer_page_shows_its_classes(app, client, book):
    """A customer's page names each class it holds; one that holds none says so."""
    login(client, "admin")
    html = client.get(f"/customers/{book['利润第二'].id}").get_data(as_text=True)
    part = re.search(r'data-testid="value-classes">(.*?)</p>', html, re.S).group(1)
    assert badges(part) == ["most_valuable", "most_growth"]
    assert "最有价值" in part and "最具增长性" in part
    blank = client.get(f"/customers/{book['回款及格'].id}").get_data(as_text=True)
    part = re.search(r'data-testid="value-classes">(.*?)</p>', blank, re.S).group(1)
    assert badges(part) == [] and "不属于" in part


def test_the_portfolio_filters_by_value_class(app, client, book):
    """The portfolio narrows to a value class."""
    for name in ("利润第一", "亏损客户"):
        CustomerYear.update(share_of_wallet=Decimal("50"), upcoming_volume=Decimal("2000000")
                            ).where(CustomerYear.customer == book[name].id,
                                    CustomerYear.year == 2026).execute()
    refresh_placements([book[n].id for n in ("利润第一", "亏损客户")])  # as every writer does
    login(client, "admin")
    html = client.get("/portfolio?value_class=negative_value").get_data(as_text=True)
    assert "亏损客户" in html and "利润第一" not in html
    assert "利润第一" in client.get("/portfolio").get_data(as_text=True)


def test_the_demo_has_customers_in_each_class(app):
    """The demo company has most valuable, most growth and negative value customers,
    stored as a fresh computation gives them."""
    from services.demo import build_demo
    with app.test_request_context():
        build_demo(seed=5, customers=150, branches=2, reps_per_branch=1, funnel=False)
        found = stored()
        assert found == fresh(default_rules())
    held = [value_class for classes in found.values() for value_class in classes]
    for value_class in ("most_valuable", "most_growth", "negative_value"):
        assert held.count(value_class) >= 3, value_class


def test_the_migration_gives_an_upgraded_book_its_classes(backend, tmp_path):
    """A database with yearly figures, upgraded through migration 22, holds the classes
    the default rules give, without anyone saving rules."""
    from models import Branch
    from models.schema import upgrade
    from tests.conftest import pg_execute
    from tests.test_db import _app_on_empty_database

    app, url = _app_on_empty_database(backend, tmp_path)
    try:
        with app.app_context():
            upgrade(target=21)
            branch = Branch.create(code="OLD", name="老分公司")
            rng = random.Random(22)
            for n in range(40):
                customer = Customer.insert(code=f"M{n:03d}", name=f"老客户{n}",
                                           name_initials="", branch=branch.id).execute()
                for year in (2024, 2026):
                    CustomerYear.insert(customer=customer, year=year,
                                        sales=rng.randint(0, 10**6),
                                        profit=rng.randint(-10**4, 10**5),
                                        collection_rate=rng.randint(0, 100)).execute()
            upgrade()
            assert stored() and stored() == fresh(default_rules())
            columns = {c.name for c in db.get_columns("customer_value_class")}
            assert columns == {f.column_name for f in CustomerValueClass._meta.sorted_fields}
            columns = {c.name for c in db.get_columns("value_class_rule")}
            assert columns == {f.column_name for f in ValueClassRule._meta.sorted_fields}
    finally:
        db.close()
        if backend == "postgresql":
            pg_execute(f"DROP SCHEMA {url.rsplit('%3D', 1)[1]} CASCADE")
