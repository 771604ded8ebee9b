"""The portfolio in the browser: an administrator sets the share and volume thresholds,
and the page places the customers in the four quadrants with the seed's strategies,
and prints without its navigation."""
from playwright.sync_api import expect

from tests.live import log_in, screenshot
from tests.test_portfolio import world  # noqa: F401 - the fixture


def quadrant_total(page, quadrant):
    """The "in all" count of a quadrant's row in the counts table."""
    return page.locator(f"[data-testid=counts] tr[data-quadrant={quadrant}] td").last.inner_text()


def test_admin_sets_thresholds_and_the_portfolio_shows_and_prints_the_quadrants(
        page, world):  # noqa: F811
    """With the default thresholds (30 %, 100万) 华东's two A customers are kept close;
    raised to 40 % and 200万, one of them moves to develop. The page names the four
    strategies, lists each quadrant's customers, and prints its chart and lists without
    the navigation or the filters."""
    log_in(page, "admin")
    page.goto("/portfolio")
    expect(page.get_by_test_id("counts")).to_contain_text("重点保持")
    for strategy in ("重点保持", "保持或获取", "发展", "获取或放弃"):
        expect(page.get_by_test_id("counts")).to_contain_text(strategy)
    assert quadrant_total(page, "keep") == "2"
    with page.expect_navigation():
        page.get_by_role("link", name="阈值与策略").click()
    page.fill("input[name=share_threshold]", "40")
    page.fill("input[name=volume_threshold]", "2000000")
    with page.expect_navigation():
        page.get_by_role("button", name="另存为新版本").click()
    expect(page.locator(".flash")).to_contain_text("已保存")
    page.goto("/portfolio")
    expect(page.get_by_test_id("thresholds")).to_contain_text("40.0%")
    assert quadrant_total(page, "keep") == "1"
    expect(page.get_by_test_id("list-keep")).to_contain_text("华东重点甲")
    expect(page.get_by_test_id("list-develop")).to_contain_text("华东发展丙")
    expect(page.get_by_test_id("list-win_or_let_go")).to_contain_text("华东散客丁")
    screenshot(page, "portfolio")
    page.emulate_media(media="print")
    expect(page.locator("header.topbar, .topbar").first).to_be_hidden()
    expect(page.locator("form.filters")).to_be_hidden()
    expect(page.locator(".chart-card svg").first).to_be_visible()
    expect(page.get_by_test_id("list-keep")).to_be_visible()
    assert len(page.pdf(format="A4")) > 10_000
