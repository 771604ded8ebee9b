"""Tier changes in real browsers: a downgrade approved by the branch manager, and a promotion
to the top tier passing branch manager, sales director and general manager, each in a
browser session of their own."""
import re

import pytest
from playwright.sync_api import expect

from models import Customer, TierChangeRequest, TierHistory
from tests.live import log_in, screenshot
from tests.test_approvals import make_world


@pytest.fixture
def world(app, make):
    return make_world(app, make)


def _file(page, customer, tier_name, reason):
    """The account manager files a change from the customer's page."""
    page.goto(f"/customers/{customer.id}")
    page.get_by_test_id("file-tier-change").click()
    page.get_by_label("Change to").select_option(label=tier_name)
    page.get_by_label("Reason").fill(reason)
    page.get_by_role("button", name="File the request").click()
    expect(page.locator(".flash-success")).to_contain_text("filed")
    return TierChangeRequest.select().where(TierChangeRequest.customer == customer.id,
                                            TierChangeRequest.status == "open").get()


def _approve_in_queue(page, request, comment):
    """Open the request inline from the queue and approve its pending step."""
    page.goto("/approvals")
    expect(page.get_by_test_id("nav-badge")).to_be_visible()
    row = page.locator(f"tr[data-request='{request.id}']")
    row.get_by_role("link", name="Details").click()
    panel = page.locator(f"#request-{request.id}")
    expect(panel.get_by_test_id("steps")).to_be_visible()
    panel.get_by_label("Comment").fill(comment)
    panel.get_by_test_id("approve").click()
    expect(page.locator(f"#request-{request.id} .flash-success")).to_contain_text("saved")


def test_downgrade_and_promotion_to_the_top_through_the_browser(app, new_page, world):
    """A branch manager approves a mid-year downgrade; a promotion to A passes three people
    in three sessions; the customer's tier history shows both."""
    rep, bm, director, gm = new_page(), new_page(), new_page(), new_page()
    for page, user in ((rep, "rep_e"), (bm, "bm_e"), (director, "director"), (gm, "gm")):
        log_in(page, user)
    downgraded, promoted = world["customers"]["B"], world["customers"]["C"]

    # A mid-year downgrade: one step, the branch manager's.
    down = _file(rep, downgraded, "Tier C", "连续两个季度订单下滑")
    expect(rep.get_by_test_id("status")).to_have_text("Open")
    bm.goto("/")
    expect(bm.get_by_test_id("approvals-tile")).to_contain_text("1")
    _approve_in_queue(bm, down, "同意下调")
    expect(bm.locator(f"#request-{down.id}").get_by_test_id("status")).to_have_text("Approved")
    assert Customer.get_by_id(downgraded.id).tier_id == world["tiers"]["C"].id

    # A promotion into the top tier: branch manager → sales director → general manager.
    up = _file(rep, promoted, "Tier A", "年度采购额翻番，战略合作")
    director.goto("/approvals")
    expect(director.get_by_test_id("queue")).to_contain_text("Nothing waits for you.")
    _approve_in_queue(bm, up, "分公司同意")
    _approve_in_queue(director, up, "销售总监同意")
    assert Customer.get_by_id(promoted.id).tier_id == world["tiers"]["C"].id  # not yet
    _approve_in_queue(gm, up, "批准")
    panel = gm.locator(f"#request-{up.id}")
    expect(panel.get_by_test_id("status")).to_have_text("Approved")
    expect(panel.locator(".steps li.approved")).to_have_count(3)
    screenshot(gm, "promotion-approved")

    # The customer's page: tier A now, and the history says which request set it.
    rep.goto(f"/customers/{promoted.id}")
    history = rep.locator("section.card", has_text="Tier history")
    expect(history.locator(".timeline li").first).to_contain_text("Tier A")
    expect(history.locator(".timeline li").first).to_contain_text(str(up.id))
    expect(rep.locator("#tier-changes")).to_contain_text("Approved")
    screenshot(rep, "customer-history")
    latest = (TierHistory.select().where(TierHistory.customer == promoted.id)
              .order_by(TierHistory.id.desc()).first())
    assert latest.tier_id == world["tiers"]["A"].id and latest.source == "approval"
    assert re.search(str(up.id), latest.reference)
