"""Service requests in the browser, on a phone: a branch manager logs a complaint from
the customer's page, starts work and resolves it, and every page fits 390 px."""
from playwright.sync_api import expect

from models.service_requests import ServiceRequest
from tests.live import log_in, screenshot
from tests.test_service_requests import world  # noqa: F401 - the fixture

PHONE = {"width": 390, "height": 844}


def _fits(page, what):
    """Nothing on the page is wider than the phone's screen."""
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{what} scrolls sideways: {width}"


def test_a_complaint_is_logged_and_resolved_on_a_phone(page, world):  # noqa: F811
    """From the A customer's page the manager logs a complaint (the time received filled
    in), sees it due within 24 hours, starts work, resolves it with how, and is asked
    for the follow-up call; the form, the request, the list and the satisfaction page
    fit 390 px."""
    page.set_viewport_size(PHONE)
    log_in(page, "bm_e")
    page.goto(f"/customers/{world['a_east'].id}")
    section = page.locator("#service-requests")
    expect(section).to_contain_text("暂无服务请求")
    with page.expect_navigation():
        section.get_by_role("link", name="登记请求").click()
    _fits(page, "the new request form")
    expect(page.locator("input[name=customer_code]")).to_have_value("EA001")
    page.select_option("select[name=kind]", "complaint")
    page.fill("textarea[name=description]", "交货延迟两周，影响客户生产")
    with page.expect_navigation():
        page.get_by_role("button", name="登记").click()
    expect(page.get_by_test_id("status")).to_have_text("新建")
    expect(page.get_by_test_id("countdown")).to_contain_text("还剩 23 小时")
    expect(page.get_by_test_id("due")).to_contain_text("24 小时内")
    _fits(page, "the request")
    screenshot(page, "service-request-phone")
    with page.expect_navigation():
        page.get_by_role("button", name="开始处理").click()
    expect(page.get_by_test_id("status")).to_have_text("处理中")
    page.fill("textarea[name=resolution]", "协调工厂加急补货")
    with page.expect_navigation():
        page.get_by_test_id("resolve-form").get_by_role("button", name="解决").click()
    expect(page.get_by_test_id("status")).to_have_text("已解决")
    expect(page.get_by_test_id("resolution")).to_contain_text("协调工厂加急补货")
    expect(page.get_by_test_id("follow-up")).to_contain_text("回访客户")
    assert ServiceRequest.get().status == "resolved"
    for path in ("/service-requests", "/service-requests/satisfaction", "/compliance"):
        page.goto(path)
        _fits(page, path)
