"""In the browser: the committee signs, the chair downloads the signed report, /verify
accepts it and rejects it after one byte is changed; a long report renders as a job."""
import pytest

from tests.live import log_in, log_out, screenshot
from tests.pdf_helpers import signing_cycle


@pytest.fixture
def app(app, tmp_path, immediate_jobs):
    app.config.update(SIGNING_DIR=str(tmp_path / "signing"), REPORTS_DIR=str(tmp_path / "out"),
                      PUBLIC_URL="https://tierdesk.example.com")
    return app


def _sign(page, cycle, username):
    log_in(page, username)
    page.goto(f"/cycles/{cycle.id}/signing")
    page.fill("#password", "correct-horse-1")
    with page.expect_navigation():
        page.click("[data-testid=sign-form] button[type=submit]")
    log_out(page)


def test_committee_signs_chair_downloads_and_verify_checks(app, make, page, tmp_path):
    """Members then the chair sign with their passwords; the chair's report verifies,
    and the same file with one byte changed does not."""
    s, cycle = signing_cycle(app, make)
    for member in s["members"]:
        _sign(page, cycle, member.username)
    log_in(page, "chair")
    page.goto(f"/cycles/{cycle.id}/signing")
    page.fill("#password", "correct-horse-1")
    with page.expect_navigation():
        page.click("[data-testid=sign-form] button[type=submit]")
    rows = page.locator("[data-testid=signatures] tbody tr")
    assert rows.count() == 3
    screenshot(page, "signing")
    page.request.get(f"/cycles/{cycle.id}/report.pdf")  # starts the render (jobs run at once)
    response = page.request.get(f"/cycles/{cycle.id}/report.pdf")
    assert response.headers["content-type"] == "application/pdf"
    signed = response.body()
    (tmp_path / "report.pdf").write_bytes(signed)
    page.goto("/verify")
    page.set_input_files("#file", str(tmp_path / "report.pdf"))
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    verdict = page.locator("[data-testid=verdict]")
    assert verdict.get_attribute("data-valid") == "yes"
    assert cycle.name in verdict.inner_text()
    screenshot(page, "verify-valid")
    bad = bytearray(signed)
    bad[len(bad) // 3] ^= 0x01
    (tmp_path / "bad.pdf").write_bytes(bytes(bad))
    page.set_input_files("#file", str(tmp_path / "bad.pdf"))
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert page.locator("[data-testid=verdict]").get_attribute("data-valid") == "no"
    screenshot(page, "verify-invalid")


def test_report_job_shows_progress_then_the_file(app, make, page):
    """Render the report from its page: the job panel ends with a download link."""
    s, cycle = signing_cycle(app, make)
    log_in(page, "chair")
    page.goto(f"/cycles/{cycle.id}/report")
    page.click("main form button[type=submit]")
    link = page.locator("[data-testid=job-file]")
    link.wait_for()
    screenshot(page, "report-job")
    assert page.request.get(link.get_attribute("href")).headers["content-type"] == \
        "application/pdf"
