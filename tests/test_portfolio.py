"""The share × upcoming-volume portfolio (客户组合): the quadrant rule, its versioned
thresholds, the page, its scope and filters, and the customer page's placement."""
import datetime
import re
from decimal import Decimal

import pytest

from models import AuditEvent, Customer, CustomerYear, DomainError, PortfolioSetting, Tier
from models.customers import refresh_placements, save_portfolio_figures
from models.kept_counts import KeptCount
from models.portfolio import (
    counts,
    default_setting,
    grid_counts,
    placed_customers,
    quadrant,
    save_setting,
    setting_history,
    setting_in_force,
    volume_range,
)
from models.value_classes import recompute
from services.demo import ensure_reference_data
from services.portfolio_chart import DENSITY_FROM, GRID_COLUMNS, GRID_ROWS, ScatterChart
from tests.conftest import login

STRATEGIES = dict(keep_name="重点保持", keep_note="专人服务", hold_or_win_name="保持或获取",
                  hold_or_win_note="稳定服务", develop_name="发展", develop_note="加大投入",
                  win_or_let_go_name="获取或放弃", win_or_let_go_note="低成本服务")


def today():
    return datetime.date.today()


def place(customer, share, volume, year=2026):
    """Give the customer a year with a share (%) and an upcoming volume (元), written
    as the import writes yearly figures: the rows, then the customers' places."""
    row = CustomerYear.create(customer=customer, year=year, share_of_wallet=share,
                              upcoming_volume=volume)
    refresh_placements([customer.id])
    return row


def row_counts(html, q):
    """The numbers in the quadrant's row of the counts table."""
    row = re.search(rf'<tr data-quadrant="{q}">(.*?)</tr>', html, re.S).group(1)
    return [int(n.replace(",", "")) for n in re.findall(r'<td class="num">(?:<b>)?([\d,]+)', row)]


@pytest.fixture
def world(app, make):
    """Tiers A–D; branches E and W, each with a branch manager; an admin. In E: two A
    customers to keep, a B customer to develop, an untiered one to win or let go, and
    one without figures; in W: a C customer with a high share and a small volume."""
    with app.test_request_context():
        ensure_reference_data()
        tiers = {t.code: t for t in Tier.select()}
        east, west = make.branch("E", "华东分公司"), make.branch("W", "西南分公司")
        built = dict(
            tiers=tiers, east=east, west=west,
            admin=make.user("admin", roles=("admin",)),
            bm_e=make.user("bm_e", roles=("branch_manager",), branch=east),
            keep1=make.customer(east, "华东重点甲", tier=tiers["A"], industry="energy"),
            keep2=make.customer(east, "华东重点乙", tier=tiers["A"]),
            develop=make.customer(east, "华东发展丙", tier=tiers["B"]),
            let_go=make.customer(east, "华东散客丁"),
            blank=make.customer(east, "华东无数戊", tier=tiers["C"]),
            west_customer=make.customer(west, "西南保持己", tier=tiers["C"]),
        )
        place(built["keep1"], Decimal("55"), Decimal("3000000"))
        place(built["keep2"], Decimal("30"), Decimal("1000000"))
        place(built["develop"], Decimal("12.5"), Decimal("8000000"))
        place(built["let_go"], Decimal("5"), Decimal("20000"))
        place(built["west_customer"], Decimal("80"), Decimal("300000"))
    return built


def test_the_quadrant_rule_at_its_boundaries(app):
    """A figure at its threshold counts as high (large); just below, as low (small); a
    missing figure places nowhere."""
    with app.test_request_context():
        setting = default_setting()
    assert quadrant(Decimal("30"), Decimal("1000000"), setting) == "keep"
    assert quadrant(Decimal("29.99"), Decimal("1000000"), setting) == "develop"
    assert quadrant(Decimal("30"), Decimal("999999.99"), setting) == "hold_or_win"
    assert quadrant(Decimal("29.99"), Decimal("999999.99"), setting) == "win_or_let_go"
    assert quadrant(Decimal("0"), Decimal("0"), setting) == "win_or_let_go"
    assert quadrant(Decimal("100"), Decimal("0"), setting) == "hold_or_win"
    assert quadrant(None, Decimal("5000000"), setting) is None
    assert quadrant(Decimal("50"), None, setting) is None


def test_the_defaults_hold_until_a_setting_is_saved(app, client, world):
    """With nothing saved, 30 % and 1,000,000 元 split the customers, under the four
    Chinese strategy names."""
    login(client, "admin")
    html = client.get("/portfolio").get_data(as_text=True)
    assert "30.0%" in html and "100.00 万元" in html
    for name in ("重点保持", "保持或获取", "发展", "获取或放弃"):
        assert name in html
    assert row_counts(html, "keep")[-1] == 2


def test_a_new_version_moves_customers_and_the_old_one_stays_readable(app, client, world):
    """Raising the share threshold to 40 % moves a 30 % customer from keep to develop;
    version 1 stays listed with its thresholds; a version dated tomorrow is not in force
    yet."""
    with app.test_request_context():
        save_setting(world["admin"], effective_on=today() - datetime.timedelta(days=30),
                     share_threshold=Decimal("30"), volume_threshold=Decimal("1000000"),
                     **STRATEGIES)
        save_setting(world["admin"], effective_on=today(), share_threshold=Decimal("40"),
                     volume_threshold=Decimal("1000000"),
                     **{**STRATEGIES, "develop_name": "重点发展"})
        save_setting(world["admin"], effective_on=today() + datetime.timedelta(days=1),
                     share_threshold=Decimal("90"), volume_threshold=Decimal("1000000"),
                     **STRATEGIES)
        assert setting_in_force().version == 2
        assert [s.version for s in setting_history()] == [3, 2, 1]
    login(client, "admin")
    page = client.get("/portfolio").get_data(as_text=True)
    assert row_counts(page, "keep")[-1] == 1
    assert row_counts(page, "develop")[-1] == 2
    detail = client.get(f"/customers/{world['keep2'].id}").get_data(as_text=True)
    assert "重点发展" in detail
    history = client.get("/portfolio/settings").get_data(as_text=True)
    assert "第 1 版" in history or "版本 1" in history
    assert "30.0%" in history and "40.0%" in history and "90.0%" in history


@pytest.mark.parametrize("share, volume", [("120", "1000000"), ("-1", "1000000"),
                                           ("30", "-5"), ("NaN", "1000000"), ("30", "nan")])
def test_bad_thresholds_are_refused_and_nothing_is_saved(app, client, world, share, volume):
    """A share threshold outside 0–100 or a negative volume threshold is refused in
    words on the page; no version is saved and nothing is audited."""
    login(client, "admin")
    response = client.post("/portfolio/settings", data={
        "effective_on": today().isoformat(), "share_threshold": share,
        "volume_threshold": volume, **STRATEGIES})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "0 到 100" in html or "不能为负" in html
    assert PortfolioSetting.select().count() == 0
    assert not AuditEvent.select().where(
        AuditEvent.action == "portfolio_setting_saved").exists()
    with app.test_request_context(), pytest.raises(DomainError):
        save_setting(world["admin"], effective_on=today(), share_threshold=Decimal(share),
                     volume_threshold=Decimal(volume), **STRATEGIES)


def test_a_saved_setting_is_audited_and_only_admins_may_save(app, client, world):
    """The admin's new version is saved and audited; a branch manager is refused."""
    data = {"effective_on": today().isoformat(), "share_threshold": "25",
            "volume_threshold": "500000", **STRATEGIES}
    login(client, "bm_e")
    assert client.post("/portfolio/settings", data=data).status_code == 403
    client.post("/logout")
    login(client, "admin")
    response = client.post("/portfolio/settings", data=data)
    assert response.status_code == 303
    setting = PortfolioSetting.get()
    assert (setting.version, setting.share_threshold, setting.created_by_id) == (
        1, Decimal("25"), world["admin"].id)
    assert AuditEvent.select().where(AuditEvent.action == "portfolio_setting_saved").exists()


def test_the_page_counts_per_quadrant_and_tier(app, client, world):
    """Each quadrant's row counts its customers per tier (A B C D, no tier, total); a
    customer without figures is counted apart."""
    login(client, "admin")
    html = client.get("/portfolio").get_data(as_text=True)
    assert row_counts(html, "keep") == [2, 0, 0, 0, 0, 2]
    assert row_counts(html, "hold_or_win") == [0, 0, 1, 0, 0, 1]
    assert row_counts(html, "develop") == [0, 1, 0, 0, 0, 1]
    assert row_counts(html, "win_or_let_go") == [0, 0, 0, 0, 1, 1]
    assert 'data-testid="unplaced"' in html
    keep_list = re.search(r'data-testid="list-keep">(.*?)</section>', html, re.S).group(1)
    assert "华东重点甲" in keep_list and "300.00 万元" in keep_list and "55.0%" in keep_list
    assert f'/customers/{world["keep1"].id}"' in keep_list
    chart = re.search(r'data-testid="chart">(.*?)</svg>', html, re.S).group(1)
    assert chart.count("<circle") == 5  # one dot each
    assert f'/customers/{world["keep1"].id}"' in chart


def test_a_branch_manager_sees_only_their_branch(app, client, world):
    """Branch E's manager finds no W customer on the page, counts E's alone, and is not
    offered a branch filter (nor obeyed when sending one)."""
    login(client, "bm_e")
    html = client.get(f"/portfolio?branch={world['west'].id}").get_data(as_text=True)
    assert "西南保持己" not in html
    assert "华东重点甲" in html
    assert row_counts(html, "hold_or_win")[-1] == 0
    assert 'name="branch"' not in html


def test_the_filters(app, client, world):
    """Branch, tier and industry narrow the chart, the counts and the lists."""
    login(client, "admin")
    by_branch = client.get(f"/portfolio?branch={world['west'].id}").get_data(
        as_text=True)
    assert "西南保持己" in by_branch and "华东重点甲" not in by_branch
    assert row_counts(by_branch, "hold_or_win")[-1] == 1
    by_tier = client.get(f"/portfolio?tier={world['tiers']['A'].id}").get_data(as_text=True)
    assert "华东重点甲" in by_tier and "华东发展丙" not in by_tier
    assert row_counts(by_tier, "keep")[-1] == 2
    by_industry = client.get("/portfolio?industry=energy").get_data(as_text=True)
    assert "华东重点甲" in by_industry and "华东重点乙" not in by_industry
    nonsense = client.get("/portfolio?tier=x&industry=nowhere")
    assert nonsense.status_code == 200


def test_the_latest_year_with_both_figures_places_a_customer(app, client, world):
    """A newer year with only a share does not move the customer: its latest year with
    both figures does."""
    place(world["keep1"], Decimal("5"), None, year=2027)
    login(client, "admin")
    html = client.get(f"/customers/{world['keep1'].id}").get_data(as_text=True)
    placement = re.search(r'data-testid="placement">(.*?)</p>', html, re.S).group(1)
    assert "重点保持" in placement and "55.0%" in placement and "2026" in placement


def test_the_customer_page_shows_the_strategy(app, client, world):
    """Beside its tier the customer page names the quadrant's strategy with the share and
    the volume; a customer without figures says so."""
    login(client, "admin")
    html = client.get(f"/customers/{world['develop'].id}").get_data(as_text=True)
    placement = re.search(r'data-testid="placement">(.*?)</p>', html, re.S).group(1)
    assert "发展" in placement and "12.5%" in placement and "800.00 万元" in placement
    blank = client.get(f"/customers/{world['blank'].id}").get_data(as_text=True)
    assert "尚无" in re.search(r'data-testid="placement">(.*?)</p>', blank, re.S).group(1)


def test_figures_are_saved_on_the_customer_page(app, client, world):
    """A branch manager sets a year's share and volume for their customer, audited; the
    customer moves quadrant."""
    login(client, "bm_e")
    response = client.post(f"/customers/{world['let_go'].id}/portfolio",
                           data={"year": "2026", "share_of_wallet": "45.5",
                                 "upcoming_volume": "2500000"})
    assert response.status_code == 303
    row = CustomerYear.get(CustomerYear.customer == world["let_go"].id)
    assert (row.share_of_wallet, row.upcoming_volume) == (Decimal("45.5"), Decimal("2500000"))
    assert AuditEvent.select().where(AuditEvent.action == "portfolio_figures_saved").exists()
    html = client.get(f"/customers/{world['let_go'].id}").get_data(as_text=True)
    assert "重点保持" in re.search(r'data-testid="placement">(.*?)</p>', html, re.S).group(1)


@pytest.mark.parametrize("share, volume", [("100.01", "1000"), ("-3", "1000"),
                                           ("50", "-1"), ("nan", "1000"), ("50", "NaN")])
def test_bad_figures_are_refused_and_nothing_is_saved(app, client, world, share, volume):
    """A share outside 0–100 or a negative volume is refused in words; the year keeps
    what it had and nothing is audited."""
    login(client, "admin")
    response = client.post(f"/customers/{world['blank'].id}/portfolio",
                           data={"year": "2026", "share_of_wallet": share,
                                 "upcoming_volume": volume})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "0 到 100" in html or "不能为负" in html
    assert not CustomerYear.select().where(CustomerYear.customer == world["blank"].id).exists()
    assert not AuditEvent.select().where(
        AuditEvent.action == "portfolio_figures_saved").exists()


def test_another_branch_cannot_set_figures(app, client, world):
    """Branch E's manager posting figures for a W customer gets 404, and nothing is
    saved."""
    login(client, "bm_e")
    response = client.post(f"/customers/{world['west_customer'].id}/portfolio",
                           data={"year": "2026", "share_of_wallet": "1",
                                 "upcoming_volume": "1"})
    assert response.status_code == 404
    kept = CustomerYear.get(CustomerYear.customer == world["west_customer"].id)
    assert kept.share_of_wallet == 80


def test_the_grid_counts_each_customer_in_the_cell_its_dot_would_sit_in(app, world):
    """Past DENSITY_FROM customers the cells are counted in SQL: each customer falls in
    the cell that holds where its dot would be drawn, and every customer is counted."""
    with app.test_request_context():
        setting = default_setting()
        everyone = Customer.select()
        chart = ScatterChart(setting, {}, *volume_range(everyone))
        found = grid_counts(everyone, chart.share_edges(), chart.volume_edges())
        expected = {}
        for p in placed_customers(everyone, setting):
            column = min(int((chart.x(p.share) - chart.left) / (chart.right - chart.left)
                             * GRID_COLUMNS), GRID_COLUMNS - 1)
            row = min(int((chart.y(p.volume) - chart.top) / (chart.bottom - chart.top)
                          * GRID_ROWS), GRID_ROWS - 1)
            expected[column, row] = expected.get((column, row), 0) + 1
    assert found == expected
    assert sum(found.values()) == 5
    assert ScatterChart.shades_cells(DENSITY_FROM + 1) and not ScatterChart.shades_cells(
        DENSITY_FROM)


def test_a_customer_is_placed_by_its_latest_year_with_both_figures(app, world):
    """The place kept on the customer follows its years: a later year with both figures
    moves it; a later year with one figure missing does not; clearing the figures
    through the page's own save takes the place back to the year before."""
    keep1 = world["keep1"]
    with app.test_request_context():
        place(keep1, Decimal("10"), Decimal("50000"), year=2027)
        assert Customer.get_by_id(keep1.id).placed_volume == Decimal("50000")
        CustomerYear.create(customer=keep1, year=2028, share_of_wallet=Decimal("90"))
        refresh_placements([keep1.id])
        moved = Customer.get_by_id(keep1.id)
        assert (moved.placed_year, moved.placed_share) == (2027, Decimal("10"))
        save_portfolio_figures(keep1, world["admin"], year=2027, share_of_wallet=None,
                               upcoming_volume=None)
        back = Customer.get_by_id(keep1.id)
        assert (back.placed_year, back.placed_share, back.placed_volume) == (
            2026, Decimal("55"), Decimal("3000000"))


def test_each_quadrant_lists_the_largest_and_says_how_many_more(app, client, world,
                                                                monkeypatch):
    """A quadrant's list holds at most LIST_LIMIT customers, the largest volume first;
    its heading counts them all and a line says the others are not listed."""
    monkeypatch.setattr("views.portfolio.LIST_LIMIT", 1)
    login(client, "admin")
    html = client.get("/portfolio").get_data(as_text=True)
    keep = re.search(r'data-testid="list-keep">(.*?)</section>', html, re.S).group(1)
    assert "华东重点甲" in keep and "华东重点乙" not in keep  # 3,000,000 before 1,000,000
    assert re.search(r'<span class="muted">2</span>', keep)
    assert "仅列出近期采购量最大的 1 个客户" in keep


def test_the_page_shades_cells_past_the_density_limit(app, client, world, monkeypatch):
    """Past the limit the page's chart holds shaded cells and no dots, and says why."""
    monkeypatch.setattr("services.portfolio_chart.DENSITY_FROM", 3)
    login(client, "admin")
    html = client.get("/portfolio").get_data(as_text=True)
    chart = re.search(r'data-testid="chart">(.*?)</svg>', html, re.S).group(1)
    assert "<circle" not in chart
    assert chart.count("个客户</title>") == 5  # five customers, each in a cell of its own
    assert "格子颜色越深" in html


def test_kept_portfolio_counts_equal_a_fresh_count_after_every_kind_of_write(
        app, world, make):
    """The quadrant counts and the grid, kept between requests, equal a fresh count
    after each write that moves a customer: new figures, a new tier, another branch,
    another industry, a customer added or removed; and are reused in between."""
    everyone_of = {"admin": Customer.select, "east": lambda: Customer.select().where(
        Customer.branch == world["east"].id)}
    tier_ids = [t.id for t in world["tiers"].values()]

    def same_as_fresh():
        answers = []
        with app.test_request_context():
            setting = default_setting()
            for query in everyone_of.values():
                chart = ScatterChart(setting, {}, *volume_range(query()))
                edges = chart.share_edges(), chart.volume_edges()
                kept_now = counts(query(), setting, tier_ids), grid_counts(query(), *edges)
                assert (counts(query(), setting, tier_ids), grid_counts(query(), *edges)) \
                    == kept_now  # reused
                KeptCount.delete().execute()
                assert (counts(query(), setting, tier_ids), grid_counts(query(), *edges)) \
                    == kept_now  # counted afresh
                answers.append(kept_now)
        return answers[0]  # the admin's

    first = same_as_fresh()
    assert first[0][1]["all"] == 5 and first[0][2] == 1  # five placed, one without figures
    with app.test_request_context():
        save_portfolio_figures(world["let_go"], world["admin"], year=2026,
                               share_of_wallet=Decimal("95"), upcoming_volume=Decimal("9e6"))
    assert same_as_fresh()[0][0]["keep"]["all"] == 3
    Customer.update(tier=world["tiers"]["D"]).where(
        Customer.id == world["keep1"].id).execute()
    assert same_as_fresh()[0][0]["keep"][world["tiers"]["D"].id] == 1
    Customer.update(branch=world["west"]).where(Customer.id == world["develop"].id).execute()
    Customer.update(industry="finance").where(Customer.id == world["keep2"].id).execute()
    same_as_fresh()
    added = make.customer(world["east"], "新增客户", tier=world["tiers"]["B"])
    place(added, Decimal("1"), Decimal("1000"))
    assert same_as_fresh()[0][0]["win_or_let_go"]["all"] == 1
    Customer.delete().where(Customer.id == added.id).execute()
    assert same_as_fresh()[0][0]["win_or_let_go"]["all"] == 0


def test_the_kept_chart_follows_names_codes_colours_and_value_classes(app, client, world):
    """The chart's dots are kept between requests like the counts, and still show what
    is true after each change: a renamed customer's title (escaped), a new code, a tier's
    new colour; and the value-class filter counts the classes recomputed since."""
    login(client, "admin")
    keep1 = world["keep1"]

    def chart():
        html = client.get("/portfolio").get_data(as_text=True)
        return re.search(r'data-testid="chart">(.*?)</svg>', html, re.S).group(1)

    def dot(of):
        return re.search(rf'<a href="/customers/{of.id}">(.*?)</a>', chart()).group(1)

    assert f"<title>{keep1.code} 华东重点甲 · 55.0% · 300.00 万元</title>" in dot(keep1)
    assert f'fill="{world["tiers"]["A"].colour}"' in dot(keep1)
    assert chart() == chart()  # kept, and the same
    Customer.update(name="华东<重点>&甲").where(Customer.id == keep1.id).execute()
    assert "华东&lt;重点&gt;&amp;甲 · 55.0%" in dot(keep1)
    Customer.update(code="K0001").where(Customer.id == keep1.id).execute()
    assert "<title>K0001 华东&lt;重点&gt;&amp;甲" in dot(keep1)
    Tier.update(colour="#123456").where(Tier.id == world["tiers"]["A"].id).execute()
    assert 'fill="#123456"' in dot(keep1)

    most_valuable = "/portfolio?value_class=most_valuable"
    assert row_counts(client.get(most_valuable).get_data(as_text=True), "keep")[-1] == 0
    CustomerYear.update(sales=Decimal("5000000"), profit=Decimal("800000"),
                        collection_rate=Decimal("98")).where(
        CustomerYear.customer == keep1.id).execute()
    with app.test_request_context():
        recompute()
    html = client.get(most_valuable).get_data(as_text=True)
    assert row_counts(html, "keep")[-1] == 1
    assert f'<a href="/customers/{keep1.id}">' in html
