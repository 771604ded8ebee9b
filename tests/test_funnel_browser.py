"""A rep works a prospect through the funnel to a deal, and the manager's table shows it."""
import datetime
import re

from playwright.sync_api import expect

from models import Opportunity, StageMove
from tests.live import log_in, screenshot


def test_rep_books_moves_to_won_and_the_team_table_shows_it(new_page, make):
    """Book a first meeting, 50% refused until the five checks are in, then 90% and won;
    the manager's table for the week shows one booking, one deal and its amounts."""
    branch = make.branch("SZ", "深圳分公司")
    make.user("rep_sz", roles=("sales_rep",), branch=branch, display_name="宋海燕",
              language="en")
    make.user("bm_sz", roles=("branch_manager",), branch=branch, language="en")
    rep = new_page()
    log_in(rep, "rep_sz")
    rep.get_by_role("link", name="My funnel").click()

    # Quick add: a new prospect with a first meeting booked.
    form = rep.get_by_test_id("quick-add")
    form.get_by_label("or a new prospect").fill("深圳鼎盛电子元件有限公司")
    form.get_by_label("Starts at").select_option("meeting")
    form.get_by_label("Premium received").fill("12,000")
    form.get_by_label("Standard premium").fill("30000")
    form.get_by_role("button", name="Add").click()
    card = rep.locator("article.card", has_text="深圳鼎盛电子元件有限公司")
    expect(rep.locator("section[data-stage=meeting]")).to_contain_text("深圳鼎盛电子元件有限公司")
    expect(card).to_have_class(re.compile(r"\bmoved\b"))

    # One click to 25%; the next click is refused and names what 50% needs.
    card.locator("button.forward").click()
    expect(rep.locator("section[data-stage=p25]")).to_contain_text("深圳鼎盛电子元件有限公司")
    card.locator("button.forward").click()
    expect(card.get_by_role("alert")).to_contain_text("Missing: The decision maker was met")
    expect(rep.locator("section[data-stage=p25]")).to_contain_text("深圳鼎盛电子元件有限公司")
    screenshot(rep, "funnel-refused-at-50")

    # The five checks on the opportunity's page, then 50%.
    card.get_by_role("link", name="深圳鼎盛电子元件有限公司").click()
    details = rep.get_by_test_id("details")
    for check in ("The decision maker was met", "The plan fits the need",
                  "The budget was discussed", "The next step was agreed"):
        details.get_by_label(check).check()
    signing = datetime.date.today() + datetime.timedelta(days=10)
    details.get_by_label("Signing date").fill(signing.isoformat())
    details.get_by_role("button", name="Save").click()
    expect(rep.locator(".flash-success")).to_be_visible()
    rep.get_by_role("button", name="Move forward").click()
    expect(rep.locator("section[data-stage=p50]")).to_contain_text("深圳鼎盛电子元件有限公司")

    # 90% needs the contract and the payment; then won.
    card.locator("button.forward").click()
    expect(card.get_by_role("alert")).to_contain_text("the contract is signed")
    card.get_by_role("link", name="深圳鼎盛电子元件有限公司").click()
    rep.get_by_test_id("details").get_by_label("The contract is signed").check()
    rep.get_by_test_id("details").get_by_label("The payment is received").check()
    rep.get_by_test_id("details").get_by_role("button", name="Save").click()
    expect(rep.locator(".flash-success")).to_be_visible()
    rep.get_by_role("link", name="My funnel").first.click()
    card.locator("button.forward").click()
    expect(rep.locator("section[data-stage=p90]")).to_contain_text("深圳鼎盛电子元件有限公司")
    card.locator("button.forward").click()
    expect(rep.locator("section[data-stage=won]")).to_contain_text("深圳鼎盛电子元件有限公司")
    expect(card.locator("button")).to_have_count(0)  # a won deal no longer moves
    screenshot(rep, "funnel-won")
    opportunity = Opportunity.get()
    assert opportunity.stage == "won"
    assert [m.to_stage for m in StageMove.select().order_by(StageMove.id)] == [
        "meeting", "p25", "p50", "p90", "won"]

    # The branch manager's tracking table for this week.
    manager = new_page()
    log_in(manager, "bm_sz")
    manager.get_by_role("link", name="Team funnel").click()
    row = manager.locator("tr[data-member='宋海燕']")
    cells = row.locator("td")
    expect(cells.nth(1)).to_contain_text("1")  # newly booked
    for column in (2, 3, 4):
        expect(cells.nth(column)).to_have_text(re.compile(r"^\s*0\s*$"))
    expect(cells.nth(5)).to_contain_text("1")  # won
    expect(cells.nth(6)).to_contain_text("¥12,000.00")
    expect(cells.nth(7)).to_contain_text("¥30,000.00")
    # The row opens into the rep's prospects, folds away, and opens again.
    name = row.locator("summary")
    prospects = manager.get_by_test_id("member-prospects")
    name.click()
    expect(prospects).to_contain_text("深圳鼎盛电子元件有限公司")
    screenshot(manager, "funnel-team")
    name.click()
    expect(prospects).to_be_hidden()
    name.click()
    expect(prospects).to_be_visible()
