"""A live HTTP server for the `app` fixture and Debian's Chromium to drive it.

conftest.py registers this module as a plugin, so every test module can ask
for the fixtures `live_server`, `browser`, `page` and `new_page`; browser tests
live in tests/test_<domain>_browser.py. `page` is one user's browser session;
`new_page()` opens another one in a separate browser context (its own
cookies), so each committee member, say, can sit in a session of their own.
Every page opened here is watched: a CSP violation, a JavaScript error or a
failed sub-resource (a script, a stylesheet, an htmx request answering
4xx/5xx) fails the test at teardown. A test that
provokes one on purpose asserts on `problems_of(page)` and clears it.
"""
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

from tests.conftest import PASSWORD

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking switches Chromium reaches for Google's
# servers, and on a closed network its connections get refused in bursts.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# Generous: a 2-core CI machine running gunicorn tests beside the browser is slow at
# times, and a wait that ends early is a flaky test, not a finding.
TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)

# Duplicates what the response listener reports, with less detail.
_RESOURCE_NOISE = re.compile(r"^Failed to load resource\b")


@dataclass
class LiveServer:
    """The app served over HTTP on 127.0.0.1 in a background thread."""

    app: object
    url: str


@pytest.fixture
def live_server(app):
    """Serve this test's `app` (either backend) on a free port until teardown.

    CSRF protection is switched on, as in production: the browser fills the
    tokens in the way a user's browser does.
    """
    app.config["WTF_CSRF_ENABLED"] = True
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # A short poll interval lets shutdown() return at once rather than in 0.5 s.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(app=app, url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole test session (never downloaded)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


_problems = {}


def problems_of(page):
    """The CSP violations, JS errors and failed sub-resources seen on `page` so far."""
    return _problems[page]


def _watch(page, problems):
    def on_console(message):
        text = message.text
        if "Content Security Policy" in text:
            problems.append(f"CSP violation: {text}")
        elif message.type == "error" and not _RESOURCE_NOISE.match(text):
            problems.append(f"console error: {text}")

    def on_response(response):
        # A page the test visits may answer 404 on purpose; what it loads may not.
        if response.status >= 400 and response.request.resource_type != "document":
            problems.append(f"{response.status} for {response.request.resource_type} "
                            f"{response.request.method} {response.url}")

    def on_request_failed(request):
        # ERR_ABORTED is a load the page gave up on by moving on (a favicon, say).
        if "ERR_ABORTED" not in (request.failure or ""):
            problems.append(f"request failed: {request.method} {request.url} ({request.failure})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", on_response)
    page.on("requestfailed", on_request_failed)


@pytest.fixture
def new_page(browser, live_server):
    """new_page() opens a page in a fresh browser context: a separate user session.

    Relative URLs go to the live server. Each context is closed at teardown,
    and the test fails if any page logged a problem.
    """
    contexts, pages = [], []

    def _open():
        context = browser.new_context(base_url=live_server.url, locale="zh-CN",
                                      timezone_id="Asia/Shanghai")
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        _problems[page] = []
        _watch(page, _problems[page])
        pages.append(page)
        return page

    yield _open
    seen = {f"page {n}": list(_problems.pop(page)) for n, page in enumerate(pages, 1)}
    # Every page to rest first. Closing a context whose page is in the middle of a
    # navigation (a meeting page reloading as the chair sets the last grade) hung for
    # ever now and then: Chromium never answered the close, and Playwright's close has
    # no timeout; CI stopped after 90 minutes. about:blank ends any navigation and poll.
    for page in pages:
        try:
            page.goto("about:blank")
        except PlaywrightError:
            pass  # closed already, or would not leave: closed as it is below
    for context in contexts:
        context.close()
    seen = {name: problems for name, problems in seen.items() if problems}
    assert not seen, f"the browser reported problems: {seen}"


@pytest.fixture
def page(new_page):
    """One user's browser session on the live server."""
    return new_page()


def log_in(page, username, password=PASSWORD):
    """Log in through the login form, as a user does; waits for the next page."""
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("main form button[type=submit]")


def log_out(page):
    """Press the header's logout button; waits for the login page."""
    with page.expect_navigation():
        page.click("header form[action='/logout'] button")


def screenshot(page, name):
    """Save a full-page screenshot as SCREENSHOT_DIR/<name>.png when that variable is set."""
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        # caret="initial": hiding the caret makes Playwright inject a style, which our CSP
        # later reports (an inline style) when htmx swaps the page after the screenshot.
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True,
                        caret="initial")
