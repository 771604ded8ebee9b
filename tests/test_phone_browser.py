"""The pages people open on a phone, at 390 × 844: the dashboard, the approval queue, a
request's detail, the compliance list, a customer's page and a rep's funnel week. Nothing
scrolls sideways, the menu folds behind one button, list rows are cards and what is tapped
is at least 44 px high; at 1366 px the tables are tables again."""
import datetime

import pytest
from playwright.sync_api import expect

from models import Assessment, Customer, CustomerYear, Tier, TierChangeRequest, TierHistory
from models.approvals import file_cycle_requests
from models.cycles import finalise
from models.funnel import create_opportunity
from models.tiers import save_policy
from tests.live import log_in, screenshot
from tests.test_cycles import _criteria, _in_committee, make_setup, save_score
from tests.test_tiers import POLICY, _activity, days_ago

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}
TAP = 44


@pytest.fixture
def world(app, make):
    """make_setup's cycle in committee; the first sheet of the east branch settled at B,
    its customer at C before, so publishing files a request C → B for the branch manager.
    Plus a rep of the east branch with a prospect in the funnel, and a sales director."""
    setup = make_setup(app, make)
    cycle = _in_committee(app, setup)
    tiers = {t.code: t for t in Tier.select()}
    sheet = (Assessment.select().where(Assessment.cycle == cycle,
                                       Assessment.branch == setup["east"].id)
             .order_by(Assessment.id).first())
    customer = Customer.get_by_id(sheet.customer_id)
    rep = make.user("rep_e", roles=("sales_rep",), branch=setup["east"], display_name="宋海燕")
    make.user("director", roles=("sales_director",))
    with app.test_request_context():
        # Tier C promises a call every 60 days; the customer's last was 90 days ago.
        save_policy(tiers["C"], setup["admin"], effective_on=days_ago(200),
                    **{**POLICY, "contact_days": 60, "visit_days": None, "analysis_days": None})
        Customer.update(tier=tiers["C"].id, account_manager=rep.id).where(
            Customer.branch == setup["east"].id).execute()
        _activity(customer, "call", days_ago(90))
        TierHistory.create(customer=customer, tier=tiers["C"],
                           effective_on=datetime.date(2026, 4, 1), source="cycle")
        CustomerYear.create(customer=customer, year=2026, sales=15_948_000, profit=2_588_000,
                            collection_rate=91.7, credit_days=60)
        for criterion in _criteria(setup["template"]):
            save_score(sheet, setup["members"][0], "committee", criterion.id, None,
                       criterion.max_points * 6 // 10 + 1, "", 0)
        finalise(sheet, setup["chair"], tiers["B"])
        filed, _skipped = file_cycle_requests(cycle, setup["chair"])
        create_opportunity(rep, new_name="华东鼎盛物业管理有限公司", stage="meeting")
    request = TierChangeRequest.get(TierChangeRequest.assessment == sheet.id)
    assert [r.id for r in filed] == [request.id]
    return dict(customer=customer, request=request, rep=rep)


def _fits(page, what):
    """Nothing on the page is wider than the phone's screen."""
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{what} scrolls sideways: {width}"


def _tall_enough(locator):
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    assert box["height"] >= TAP, f"{box['height']} px high"


def _phone_then_desktop(page, path, name, table=None):
    """Open `path` at 390 px (checked to fit, shot), then at 1366 px (shot); the
    `table` locator's rows are cards on the phone and table rows on the desktop."""
    page.set_viewport_size(PHONE)
    page.goto(path)
    _fits(page, path)
    # The menu is one button; the links show once it is opened.
    _tall_enough(page.get_by_test_id("menu-button"))
    expect(page.locator("#main-nav")).to_be_hidden()
    if table is not None:
        row = page.locator(table).first
        expect(row).to_have_css("display", "block")
    screenshot(page, f"phone-{name}-390")
    page.set_viewport_size(DESKTOP)
    expect(page.locator("#main-nav")).to_be_visible()
    expect(page.get_by_test_id("menu-button")).to_be_hidden()
    if table is not None:
        expect(page.locator(table).first).to_have_css("display", "table-row")
    screenshot(page, f"phone-{name}-1366")
    page.set_viewport_size(PHONE)


def test_the_branch_managers_pages_fit_a_phone(new_page, world):
    """The branch manager's dashboard, queue, customer list and a request's detail fit
    390 px; the queue lists the waiting request as a card, the list each customer; the
    detail shows the tier history, last year's figures and the assessment's scores, and
    approve/reject are 44 px high."""
    page = new_page()
    log_in(page, "bm_e")
    request, customer = world["request"], world["customer"]

    _phone_then_desktop(page, "/", "dashboard")
    page.get_by_test_id("menu-button").click()
    expect(page.locator("#main-nav")).to_be_visible()
    _tall_enough(page.locator("#main-nav a").first)
    _fits(page, "the opened menu")
    _tall_enough(page.get_by_test_id("approvals-tile").locator(".button"))

    row = f"[data-testid=queue] tr[data-request='{request.id}']"
    _phone_then_desktop(page, "/approvals", "approvals", table=row)
    card = page.locator(row)
    expect(card).to_contain_text(customer.name)
    assert card.locator("td[data-label]").count() >= 5

    # The customer list: each customer a card, its name labelled, the page no wider.
    _phone_then_desktop(page, "/customers", "customers", table="table.customers tbody tr")
    expect(page.locator("table.customers tbody tr").first.locator(
        "td[data-label='客户名称']")).to_be_visible()

    _phone_then_desktop(page, f"/tier-changes/{request.id}", "request")
    panel = page.get_by_test_id("request")
    expect(panel.get_by_test_id("tier-history").locator("li")).to_have_count(1)
    expect(panel.get_by_test_id("last-year")).to_contain_text("2026")
    expect(panel.get_by_test_id("last-year")).to_contain_text("91.7%")
    expect(panel.get_by_test_id("scores").locator("tbody tr")).to_have_count(6)
    _tall_enough(panel.get_by_test_id("approve"))
    _tall_enough(panel.get_by_test_id("reject"))

    # Approving on the phone works as on the desktop.
    panel.get_by_test_id("approve").click()
    expect(page.get_by_test_id("status")).to_have_text("已批准")
    _fits(page, "the approved request")


def test_the_directors_compliance_list_fits_a_phone(new_page, world):
    """The sales director's overdue list (all branches) and its due-this-week neighbour
    fit 390 px, each customer a card."""
    page = new_page()
    log_in(page, "director")
    _phone_then_desktop(page, "/compliance", "compliance",
                        table="[data-testid=overdue] tbody tr")
    expect(page.get_by_test_id("overdue")).to_contain_text(world["customer"].name)
    assert page.locator("[data-testid=overdue] tbody tr").first.locator(
        "td[data-label]").count() >= 5


def test_the_reps_customer_page_and_funnel_fit_a_phone(new_page, world):
    """The rep logs a contact on a customer's page at 390 px (the button 44 px high), and
    the funnel week's stages stack with the prospect's move button 44 px high."""
    page = new_page()
    log_in(page, "rep_e")
    customer = world["customer"]

    _phone_then_desktop(page, f"/customers/{customer.id}", "customer",
                        table="[data-testid=years] tbody tr")
    log_it = page.locator("#activities button[type=submit]")
    _tall_enough(log_it)
    page.locator("#activities textarea").fill("电话回访，客户满意")
    log_it.click()
    expect(page.locator("#activities .timeline")).to_contain_text("电话回访，客户满意")
    _fits(page, "the customer page after logging")

    _phone_then_desktop(page, "/funnel", "funnel")
    card = page.locator("section[data-stage=meeting] article.card")
    expect(card).to_contain_text("华东鼎盛物业管理有限公司")
    _tall_enough(card.locator("button.forward"))
    # The stages stack: the second column sits below the first, not beside it.
    first, second = (page.locator(".board .column").nth(n).bounding_box() for n in (0, 1))
    assert second["y"] > first["y"] + first["height"] - 1
