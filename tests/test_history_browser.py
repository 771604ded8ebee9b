"""Back, Forward and reload after filters and pages, in a real browser: the whole page
each time, with the filters the URL names filled in.

Our pages say hx-history="false" and htmx keeps no cache, so every Back and Forward
asks the server again (HX-History-Restore-Request); before the fix that answer was the
bare fragment, in place of the whole body.
"""
import datetime
import re

import pytest
from playwright.sync_api import expect

from models import Tier
from models.approvals import file_request
from services.demo import ensure_reference_data
from tests.live import log_in, screenshot


@pytest.fixture
def small_pages(live_server):
    """Two records a page, so a handful of them make a second page."""
    live_server.app.config["PAGE_SIZE"] = 2
    return live_server


def _travel(page, move):
    """Press Back or Forward (`move`) and wait until htmx has put the server's answer in
    place of the body: the marked layout is gone, whatever came instead."""
    page.locator("body > *").first.evaluate("element => element.dataset.before = 'move'")
    move()
    expect(page.locator("[data-before]")).to_have_count(0)


def _whole_page(page, form):
    """The layout is there once (header, navigation, main) with the filter form in it."""
    expect(page.locator("header.topbar")).to_have_count(1)
    expect(page.get_by_role("navigation", name="主导航")).to_be_visible()
    expect(page.locator(f"main.page {form}")).to_be_visible()


def test_customer_list_back_forward_and_reload(page, make, small_pages):
    """Search, a tier and page 2 on the customer list; Back and Forward through them
    and a reload each show the whole page with the URL's search and tier."""
    ensure_reference_data()
    tiers = {t.code: t for t in Tier.select()}
    east = make.branch("E", "华东分公司")
    make.user("bm_e", roles=("branch_manager",), branch=east)
    for n, name in enumerate(("上海浦江精密机械", "上海华信物流", "上海远扬贸易",
                              "上海申通机电", "成都天府软件"), 1):
        make.customer(east, f"{name}有限公司", code=f"C00{n}",
                      tier=tiers["B"] if n != 3 else tiers["C"])
    tier_b = str(tiers["B"].id)
    log_in(page, "bm_e")
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto("/customers")
    form = "form[role=search]"
    search, tier = page.locator("#q"), page.locator(f"{form} select[name=tier]")

    page.fill("#q", "上海")
    expect(page).to_have_url(re.compile(r"/customers\?q=%E4%B8%8A%E6%B5%B7$"))
    tier.select_option(tier_b)
    expect(page).to_have_url(re.compile(rf"/customers\?q=[^&]+&tier={tier_b}$"))
    expect(page.get_by_test_id("total")).to_have_text("共 3 位客户")
    page.locator("#results nav.pager").get_by_role("link", name="下一页").click()
    expect(page).to_have_url(re.compile(r"[?&]page=2(&|$)"))
    expect(page.locator("#results tbody tr")).to_have_count(1)

    _travel(page, page.go_back)  # to the search and the tier, page 1
    expect(page).to_have_url(re.compile(rf"/customers\?q=[^&]+&tier={tier_b}$"))
    _whole_page(page, form)
    expect(search).to_have_value("上海")
    expect(tier).to_have_value(tier_b)
    expect(page.locator("#results tbody tr")).to_have_count(2)
    screenshot(page, "history-customers-back-1366")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "history-customers-back-390")
    page.set_viewport_size({"width": 1366, "height": 900})

    _travel(page, page.go_back)  # to the search alone
    _whole_page(page, form)
    expect(search).to_have_value("上海")
    expect(tier).to_have_value("")
    expect(page.get_by_test_id("total")).to_have_text("共 4 位客户")

    _travel(page, page.go_back)  # to the page as first loaded
    expect(page).to_have_url(re.compile(r"/customers$"))
    _whole_page(page, form)
    expect(search).to_have_value("")

    for _ in range(3):  # forward again to page 2
        _travel(page, page.go_forward)
    expect(page).to_have_url(re.compile(r"[?&]page=2(&|$)"))
    _whole_page(page, form)
    expect(search).to_have_value("上海")
    expect(tier).to_have_value(tier_b)
    expect(page.locator("#results tbody tr")).to_have_count(1)

    page.reload()
    _whole_page(page, form)
    expect(search).to_have_value("上海")
    expect(tier).to_have_value(tier_b)
    expect(page.locator("#results tbody tr")).to_have_count(1)


def test_approval_queue_back_and_forward(app, page, make, small_pages):
    """Page 2 of the queue, then a tier to change to; Back and Forward show the whole
    queue page with the URL's filter each time."""
    ensure_reference_data()
    tiers = {t.code: t for t in Tier.select()}
    east = make.branch("E", "华东分公司")
    rep = make.user("rep_e", roles=("sales_rep",), branch=east)
    make.user("bm_e", roles=("branch_manager",), branch=east)
    with app.test_request_context():
        for n, (now, to) in enumerate((("B", "C"), ("C", "D"), ("D", "C")), 1):
            customer = make.customer(east, f"华东第{n}客户有限公司", tier=tiers[now],
                                     account_manager=rep)
            file_request(customer, rep, tiers[to], "年度调整",
                         effective_on=datetime.date.today())
    tier_c = str(tiers["C"].id)
    log_in(page, "bm_e")
    page.goto("/approvals")
    form = "form[role=search]"
    to_tier = page.locator(f"{form} select[name=to_tier]")

    page.locator("#queue-results nav.pager").get_by_role("link", name="下一页").click()
    expect(page).to_have_url(re.compile(r"/approvals\?page=2$"))
    to_tier.select_option(tier_c)
    expect(page).to_have_url(re.compile(rf"/approvals\?to_tier={tier_c}$"))
    expect(page.locator("#queue-results tbody tr[data-request]")).to_have_count(2)

    _travel(page, page.go_back)  # page 2, no filter
    expect(page).to_have_url(re.compile(r"/approvals\?page=2$"))
    _whole_page(page, form)
    expect(to_tier).to_have_value("")
    expect(page.locator("#queue-results tbody tr[data-request]")).to_have_count(1)

    _travel(page, page.go_back)  # the queue as first loaded
    expect(page).to_have_url(re.compile(r"/approvals$"))
    _whole_page(page, form)
    expect(page.locator("#queue-results tbody tr[data-request]")).to_have_count(2)

    _travel(page, page.go_forward)
    _travel(page, page.go_forward)
    expect(page).to_have_url(re.compile(rf"/approvals\?to_tier={tier_c}$"))
    _whole_page(page, form)
    expect(to_tier).to_have_value(tier_c)


def shown(week):
    """An ISO week of the URL (2026-W48) as the page shows it to a Chinese reader."""
    year, number = week.split("-W")
    return f"{year}年第{int(number)}周"


def test_team_table_back_and_forward(page, make):
    """Another branch, then the week before on the team table; Back and Forward show the
    whole page with the URL's branch and week each time."""
    east, west = make.branch("E", "华东分公司"), make.branch("W", "西南分公司")
    make.user("director", roles=("sales_director",))
    for branch in (east, west):
        make.user(roles=("sales_rep",), branch=branch, display_name=f"{branch.name}代表")
    log_in(page, "director")
    page.goto("/funnel/team")
    form = "form.filters"
    branch = page.locator(f"{form} select[name=branch]")
    week = page.get_by_test_id("week-range")
    expect(branch).to_have_value(str(east.id))
    year, number = re.search(r"(\d{4})年第(\d+)周", week.inner_text()).groups()
    this_week = f"{year}-W{int(number):02d}"  # as the URL writes it

    branch.select_option(str(west.id))
    expect(page).to_have_url(re.compile(rf"/funnel/team\?branch={west.id}&week={this_week}$"))
    expect(week).to_contain_text("西南分公司")
    page.get_by_role("link", name="← 上一周").click()
    expect(page).to_have_url(re.compile(rf"week=(?!{this_week})\d{{4}}-W\d\d"))
    expect(week).not_to_contain_text(shown(this_week))
    week_before = re.search(r"week=(\d{4}-W\d\d)", page.url).group(1)

    _travel(page, page.go_back)  # the west branch, this week
    _whole_page(page, form)
    expect(branch).to_have_value(str(west.id))
    expect(week).to_contain_text(f"西南分公司 · {shown(this_week)}")

    _travel(page, page.go_back)  # the table as first loaded
    expect(page).to_have_url(re.compile(r"/funnel/team$"))
    _whole_page(page, form)
    expect(branch).to_have_value(str(east.id))
    expect(week).to_contain_text(f"华东分公司 · {shown(this_week)}")

    _travel(page, page.go_forward)
    _travel(page, page.go_forward)
    _whole_page(page, form)
    expect(branch).to_have_value(str(west.id))
    expect(week).to_contain_text(f"西南分公司 · {shown(week_before)}")
    expect(page.locator("tr[data-member]").first).to_contain_text("西南分公司代表")


def test_changing_the_branch_keeps_the_week_shown(page, make):
    """After moving to the week before, another branch shows that same week, and the
    export and print links follow the table's week and branch."""
    make.branch("E", "华东分公司")
    west = make.branch("W", "西南分公司")
    make.user("director", roles=("sales_director",))
    log_in(page, "director")
    page.goto("/funnel/team")
    page.get_by_role("link", name="← 上一周").click()
    expect(page).to_have_url(re.compile(r"week=\d{4}-W\d\d"))
    week_before = re.search(r"week=(\d{4}-W\d\d)", page.url).group(1)
    page.locator("form.filters select[name=branch]").select_option(str(west.id))
    week = page.get_by_test_id("week-range")
    expect(week).to_contain_text(f"西南分公司 · {shown(week_before)}")
    expect(page).to_have_url(re.compile(rf"branch={west.id}&week={week_before}$"))
    export = page.get_by_role("link", name="导出（.xlsx）")
    expect(export).to_have_attribute("href", re.compile(
        rf"week={week_before}&branch={west.id}|branch={west.id}&week={week_before}"))
