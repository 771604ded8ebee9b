"""Logging in, the language switch and separate sessions, in a real browser."""
import re

from playwright.sync_api import expect

from models import User
from tests.live import log_in, log_out, problems_of, screenshot

LOGIN_URL = re.compile(r"/login(\?.*)?$")


def test_login_in_chinese(page, live_server, make):
    """The login page is Chinese; a wrong password stays there, the right one opens my tasks."""
    make.user("wang", roles=("admin",), display_name="王小明")
    page.goto("/login")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("heading", level=1)).to_have_text("登录客户分级管理系统")
    expect(page.locator("main button[type=submit]")).to_have_text("登录")

    log_in(page, "wang", "not-the-password")
    expect(page).to_have_url(LOGIN_URL)
    expect(page.locator(".flash")).to_have_text("用户名或密码错误。")
    expect(page.get_by_role("heading", level=1)).to_have_text("登录客户分级管理系统")
    expect(page.locator("header")).not_to_contain_text("王小明")

    log_in(page, "wang")
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("我的待办")
    expect(page.locator("header .who")).to_have_text("王小明")
    screenshot(page, "dashboard-zh")


def test_language_choice_is_kept_per_user(page, make):
    """English chosen in the header stays English after logging out and in again."""
    user = make.user("li", roles=("admin",), display_name="李雷")
    switch = page.get_by_test_id("language-switch")
    log_in(page, "li")
    expect(switch).to_have_text("English")

    with page.expect_navigation():
        switch.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My tasks")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(switch).to_have_text("中文")
    screenshot(page, "dashboard-en")
    assert User.get_by_id(user.id).language == "en"

    log_out(page)
    log_in(page, "li")
    expect(page.get_by_role("heading", level=1)).to_have_text("My tasks")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()

    with page.expect_navigation():
        switch.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("我的待办")
    expect(switch).to_have_text("English")
    assert User.get_by_id(user.id).language == "zh_CN"


def test_after_logout_back_and_reload_show_the_login_page(page, make):
    """Once logged out, neither Back nor typing / shows the dashboard again."""
    make.user("zhao", roles=("admin",), display_name="赵敏")
    log_in(page, "zhao")
    expect(page.get_by_role("heading", level=1)).to_have_text("我的待办")

    log_out(page)
    expect(page).to_have_url(LOGIN_URL)
    expect(page.locator(".flash")).to_have_text("您已退出登录。")

    page.go_back()
    expect(page).to_have_url(LOGIN_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text("登录客户分级管理系统")
    expect(page.locator("body")).not_to_contain_text("我的待办")
    expect(page.locator("body")).not_to_contain_text("赵敏")

    page.goto("/")
    expect(page).to_have_url(LOGIN_URL)
    expect(page.get_by_role("heading", level=1)).to_have_text("登录客户分级管理系统")
    expect(page.locator("body")).not_to_contain_text("赵敏")


def test_two_sessions_keep_to_their_own_user(new_page, make):
    """Two people logged in at once in separate browsers each see only themselves."""
    make.user("chen", roles=("admin",), display_name="陈静")
    make.user("liu", roles=("committee_member",), display_name="刘洋")
    chen, liu = new_page(), new_page()
    log_in(chen, "chen")
    log_in(liu, "liu")

    chen.reload()
    expect(chen.locator("header .who")).to_have_text("陈静")
    expect(chen.locator("body")).not_to_contain_text("刘洋")
    expect(liu.locator("header .who")).to_have_text("刘洋")
    expect(liu.locator("body")).not_to_contain_text("陈静")

    log_out(liu)
    chen.reload()
    expect(chen.get_by_role("heading", level=1)).to_have_text("我的待办")
    expect(chen.locator("header .who")).to_have_text("陈静")


def test_an_inline_script_is_blocked_and_reported(page, live_server):
    """The app's CSP blocks inline script, and the browser watch turns that into a problem."""
    def add_inline_script(route):
        response = route.fetch()
        body = response.text().replace(
            "</body>", "<script>document.body.dataset.ran = 'yes'</script></body>")
        route.fulfill(response=response, body=body)

    page.route("**/login", add_inline_script)
    page.goto("/login")
    expect(page.get_by_role("heading", level=1)).to_have_text("登录客户分级管理系统")
    assert page.evaluate("document.body.dataset.ran") is None
    problems = problems_of(page)
    assert any(p.startswith("CSP violation") for p in problems), problems
    problems.clear()

