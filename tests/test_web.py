"""Web safety on every response, error pages, and the health check."""
import pytest

from services.health import harfbuzz_subsetting
from tests.conftest import login


@pytest.mark.parametrize("path", ["/login", "/", "/audit", "/no-such-page"])
def test_security_headers_on_every_response(client, make, path):
    """CSP without inline script, nosniff, no framing and a referrer policy, everywhere."""
    make.user("admin", roles=("admin",))
    login(client, "admin")
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"


HSTS = "max-age=31536000; includeSubDomains"


def test_hsts_on_every_response_only_when_cookies_are_secure(app, client):
    """With SESSION_COOKIE_SECURE every response, static files and errors too, tells the
    browser to use HTTPS only (HSTS); without it, none does."""
    paths = ["/login", "/", "/healthz", "/static/vendor/htmx/htmx.min.js", "/no-such-page"]
    assert [client.get(path).headers.get("Strict-Transport-Security") for path in paths] == \
        [None] * len(paths)
    app.config["SESSION_COOKIE_SECURE"] = True
    assert [client.get(path).headers.get("Strict-Transport-Security") for path in paths] == \
        [HSTS] * len(paths)


def test_exports_and_pdfs_are_never_stored(app, client, make):
    """Every answer but a static file says Cache-Control: no-store: pages, redirects, the
    customer exports (.xlsx, .csv) and PDFs, which carry customer data too."""
    from services.demo import ensure_reference_data
    with app.test_request_context():
        template = ensure_reference_data()
    branch = make.branch("E", "华东分公司")
    make.customer(branch, "上海浦江精密机械有限公司", code="C001")
    make.user("bm_e", roles=("branch_manager",), branch=branch)
    login(client, "bm_e")
    answers = {path: client.get(path) for path in (
        "/", "/customers/new", "/customers/export.xlsx", "/customers/export.csv",
        "/funnel/export.xlsx", f"/scorecards/{template.id}/sheet.pdf", "/no-such-page")}
    assert {path: answer.mimetype for path, answer in answers.items()
            if answer.status_code != 200 and path != "/no-such-page"} == {}
    assert {path: answer.headers.get("Cache-Control") for path, answer in answers.items()} == \
        {path: "no-store" for path in answers}
    static = client.get("/static/vendor/htmx/htmx.min.js")
    assert static.status_code == 200 and "no-store" not in static.headers.get("Cache-Control", "")


def test_pages_vary_on_hx_request(client, make):
    """A page that answers htmx with a fragment says so in Vary."""
    make.user("admin", roles=("admin",))
    login(client, "admin")
    full = client.get("/audit")
    fragment = client.get("/audit", headers={"HX-Request": "true"})
    assert "HX-Request" in full.headers["Vary"]
    assert "HX-Request" in fragment.headers["Vary"]
    assert "<html" in full.get_data(as_text=True)
    assert "<html" not in fragment.get_data(as_text=True)


HISTORY_RESTORE = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
LAYOUT = '<header class="topbar">'

# Pages whose filters or pager push their URL (hx-push-url): the address, what the
# page's filter form shows for it, and the headers under which htmx gets a fragment.
# A new such page is one more line here.
PUSHED_PAGES = [
    ("/customers?q=pj&page=2", 'type="search" value="pj"', {}),
    ("/approvals?q=pj&source=cycle", '<option value="cycle" selected>', {}),
    ("/funnel?week=2026-W10", "2026-W10", {}),
    ("/funnel/team?week=2026-W10", "2026-W10", {}),
    ("/audit?actor=zhang", 'name="actor" type="text" value="zhang"', {}),
    ("/compliance?kind=visit&page=2", '<option value="visit" selected>',
     {"HX-Target": "overdue"}),
]


@pytest.fixture
def page_reader(client, make):
    """Logged in as someone who may open every page that pushes its URL."""
    make.user("reader", roles=("admin", "branch_manager"))
    login(client, "reader")
    return client


@pytest.mark.parametrize("path, filled_in, fragment_headers", PUSHED_PAGES)
def test_history_restore_gets_the_whole_page(page_reader, path, filled_in, fragment_headers):
    """htmx restoring a pushed URL (HX-Request and HX-History-Restore-Request) gets the
    whole page, with the URL's filters filled in, and Vary names both headers."""
    response = page_reader.get(path, headers=dict(HISTORY_RESTORE, **fragment_headers))
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" in html and LAYOUT in html and 'aria-label="主导航"' in html
    assert filled_in in html
    assert {"HX-Request", "HX-History-Restore-Request"} <= set(response.vary)


@pytest.mark.parametrize("path, filled_in, fragment_headers", PUSHED_PAGES)
def test_a_filter_or_page_change_gets_the_fragment(page_reader, path, filled_in,
                                                   fragment_headers):
    """An ordinary htmx request (HX-Request alone) for the same URL gets only the part
    that changes, without the layout."""
    response = page_reader.get(path, headers=dict({"HX-Request": "true"},
                                                  **fragment_headers))
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html and LAYOUT not in html
    assert "HX-Request" in response.vary


# Never restored from history: files, which are slow to make and not pages.
NOT_PAGES = ("/healthz", "/logout")


def test_every_page_answers_a_history_restore_whole(app, page_reader):
    """Any page without URL parameters, asked for as a history restore, answers the
    whole layout or not a page at all: a view added later cannot forget it."""
    paths = sorted(rule.rule for rule in app.url_map.iter_rules()
                   if "GET" in rule.methods and not rule.arguments
                   and rule.rule not in NOT_PAGES
                   and not rule.rule.endswith((".pdf", ".xlsx", ".csv")))
    bare = [path for path in paths
            if (answer := page_reader.get(path, headers=HISTORY_RESTORE)).mimetype == "text/html"
            and answer.status_code == 200 and LAYOUT not in answer.get_data(as_text=True)]
    assert len(paths) > 20 and bare == []


def test_oversized_request_is_413(client, make):
    """A body over the limit is refused with 413 and a page in Chinese that gives the
    limit."""
    make.user("admin", roles=("admin",))
    login(client, "admin")
    response = client.post("/admin/branches/new", data={"code": "X" * (11 * 1024 * 1024)})
    assert response.status_code == 413
    assert "上传的文件超过 10 MB 的上限" in response.get_data(as_text=True)


def test_error_pages_are_generic_and_in_the_users_language(client, make):
    """A 404 says nothing technical and speaks the user's language."""
    make.user("ann", roles=("admin",), language="en")
    login(client, "ann")
    response = client.get("/no-such-page")
    page = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "This page does not exist" in page
    assert "Traceback" not in page and "werkzeug" not in page.lower()


def test_healthz_reports_database_schema_and_fonts(client):
    """/healthz answers JSON without login: database, schema version, PDF subsetting."""
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["database"] is True
    assert body["schema_version"] == body["schema_latest"]
    assert body["pdf_font_subsetting"] is harfbuzz_subsetting()
    assert body["status"] == ("ok" if harfbuzz_subsetting() else "degraded")


def test_healthz_warns_when_harfbuzz_subsetting_is_missing(client, monkeypatch):
    """Without libharfbuzz-subset0 the health check says so and why it matters."""
    monkeypatch.setattr("views.main.harfbuzz_subsetting", lambda: False)
    body = client.get("/healthz").get_json()
    assert body["status"] == "degraded"
    assert body["pdf_font_subsetting"] is False
    assert "libharfbuzz-subset0" in body["warnings"][0]


def test_this_machine_has_harfbuzz_subsetting():
    """Setup installs libharfbuzz-subset0, so WeasyPrint subsets fonts natively here."""
    assert harfbuzz_subsetting() is True


def test_htmx_is_vendored_unmodified(client):
    """The vendored htmx file matches the checksum recorded beside it."""
    import hashlib
    from pathlib import Path
    folder = Path(__file__).parent.parent / "static" / "vendor" / "htmx"
    recorded = (folder / "VERSION").read_text().split("sha256 ")[1].split()[0]
    assert hashlib.sha256((folder / "htmx.min.js").read_bytes()).hexdigest() == recorded
    assert client.get("/static/vendor/htmx/htmx.min.js").status_code == 200


def test_a_serving_process_freezes_what_it_loaded(tmp_path):
    """A serving app leaves the collector's full passes almost nothing to walk: what the
    process loaded at start lives as long as it does. Without the freeze every page view
    in about a hundred waited 80-110 ms for such a pass. A test app freezes nothing."""
    import subprocess
    import sys
    from pathlib import Path
    script = ("import gc, sys\n"
              "from app import create_app\n"
              "create_app({'SECRET_KEY': 'x', 'DATABASE_URL': sys.argv[1],"
              " 'TESTING': sys.argv[2] == 'test'})\n"
              "print(gc.get_freeze_count(), len(gc.get_objects()))\n")
    counts = {}
    for mode in ("serve", "test"):
        out = subprocess.run([sys.executable, "-c", script, f"sqlite:///{tmp_path}/{mode}.db",
                              mode], cwd=Path(__file__).resolve().parent.parent,
                             capture_output=True, text=True, check=True).stdout.split()
        counts[mode] = [int(n) for n in out]
    frozen, walked = counts["serve"]
    assert frozen > 100_000 and walked < 1_000
    assert counts["test"][0] == 0 and counts["test"][1] > 100_000
