"""Long reports render as background jobs (huey) with progress, the file, or why not."""
from pathlib import Path

import pytest

from models import AuditEvent, ReportJob
from tests.conftest import PASSWORD, login, run_in_huey_worker
from tests.pdf_helpers import pdf_text, signing_cycle
from tests.test_signing import login_at_evil


@pytest.fixture
def app(app, tmp_path):
    app.config.update(SIGNING_DIR=str(tmp_path / "signing"), REPORTS_DIR=str(tmp_path / "out"),
                      PUBLIC_URL="https://tierdesk.example.com")
    return app


@pytest.fixture
def graded(app, make):
    return signing_cycle(app, make)


def test_a_job_renders_the_report_and_offers_the_file(app, client, graded, immediate_jobs):
    """Starting a render queues a job (audited); when done the page offers the signed
    file once the committee has signed."""
    from models.signing import sign
    s, cycle = graded
    with app.test_request_context():
        for member in (*s["members"], s["chair"]):
            sign(cycle, member, PASSWORD)
    login(client, "chair")
    response = client.post(f"/cycles/{cycle.id}/report/jobs", headers={"HX-Request": "true"})
    assert response.status_code == 200
    job = ReportJob.get()
    assert job.state == "done" and job.signed == 1 and job.percent == 100
    assert 'data-state="done"' in response.get_data(as_text=True)
    assert AuditEvent.select().where(AuditEvent.action == "report_job").count() == 1
    page = client.get(f"/cycles/{cycle.id}/report").get_data(as_text=True)
    assert f"/report-jobs/{job.id}/report.pdf" in page
    pdf = client.get(f"/report-jobs/{job.id}/report.pdf")
    assert pdf.mimetype == "application/pdf" and cycle.name in pdf_text(pdf.data)
    with app.test_request_context():
        from services.signing import verify
        assert verify(pdf.data).valid


def test_a_running_job_is_polled_with_a_progress_bar(app, client, graded):
    """A job not finished shows a progress bar that htmx polls; a finished one stops."""
    s, cycle = graded
    job = ReportJob.create(cycle=cycle, state="running", done=3, total=12)
    login(client, "chair")
    fragment = client.get(f"/report-jobs/{job.id}", headers={"HX-Request": "true"}).get_data(
        as_text=True)
    assert 'hx-trigger="every 1s"' in fragment and 'value="25"' in fragment
    assert client.get(f"/report-jobs/{job.id}/report.pdf").status_code == 404


def test_a_failed_job_says_why_and_can_be_retried(app, client, graded, immediate_jobs, monkeypatch):
    """A render that fails shows the reason; Try again runs it anew."""
    from services import reports
    s, cycle = graded
    real = reports.signed_report_pdf

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(reports, "signed_report_pdf", broken)
    login(client, "chair")
    client.post(f"/cycles/{cycle.id}/report/jobs")
    job = ReportJob.get()
    assert job.state == "failed" and "disk full" in job.error
    page = client.get(f"/cycles/{cycle.id}/report").get_data(as_text=True)
    assert "disk full" in page and f"/report-jobs/{job.id}/retry" in page
    monkeypatch.setattr(reports, "signed_report_pdf", real)
    client.post(f"/report-jobs/{job.id}/retry")
    assert ReportJob.get_by_id(job.id).state == "done"


def test_report_pdf_never_renders_in_the_request(app, client, graded, monkeypatch):
    """However small the cycle, report.pdf renders nothing itself: it queues one render
    (reused when asked again) and sends the user to the report page's progress bar."""
    from services import reports
    queued = []
    monkeypatch.setattr("services.jobs.render_report", queued.append)

    def no_render(*args, **kwargs):
        raise AssertionError("the report was rendered in the request")
    monkeypatch.setattr(reports, "report_pdf", no_render)
    monkeypatch.setattr(reports, "warm_part", no_render)
    s, cycle = graded
    login(client, "chair")
    response = client.get(f"/cycles/{cycle.id}/report.pdf")
    assert response.status_code == 303 and response.mimetype != "application/pdf"
    assert response.headers["Location"].endswith(f"/cycles/{cycle.id}/report")
    job = ReportJob.get()
    assert queued == [job.id] and job.state == "queued"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in page and "<progress" in page
    assert client.get(f"/cycles/{cycle.id}/report.pdf").status_code == 303
    assert queued == [job.id] and ReportJob.select().count() == 1  # the same render


def test_report_pdf_serves_a_current_file_and_renders_again_after_a_change(
        app, client, graded, immediate_jobs):
    """A finished render that still shows the cycle as it is comes straight from
    report.pdf; once anything in it changes, the page says the file is outdated and
    report.pdf starts a new render."""
    from models.signing import sign
    s, cycle = graded
    login(client, "chair")
    assert client.get(f"/cycles/{cycle.id}/report.pdf").status_code == 303
    response = client.get(f"/cycles/{cycle.id}/report.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert cycle.name in pdf_text(response.data) and ReportJob.select().count() == 1
    assert "data-testid=\"outdated\"" not in client.get(f"/cycles/{cycle.id}/report").get_data(
        as_text=True)
    with app.test_request_context():
        sign(cycle, s["members"][0], PASSWORD)  # the signature page changes
    page = client.get(f"/cycles/{cycle.id}/report").get_data(as_text=True)
    assert "此文件生成后评级周期又有变动" in page
    assert client.get(f"/cycles/{cycle.id}/report.pdf").status_code == 303
    assert ReportJob.select().count() == 2
    assert "用户" in pdf_text(client.get(f"/cycles/{cycle.id}/report.pdf").data)


def test_the_huey_worker_renders_a_queued_job(app, graded, tmp_path):
    """A real huey consumer (SQLite storage) picks up the job and renders the file."""
    s, cycle = graded
    job = ReportJob.create(cycle=cycle)
    run_in_huey_worker(
        app, tmp_path, f"from services.jobs import render_report; render_report({job.id})",
        queued=lambda: ReportJob.get_by_id(job.id).state == "queued",
        finished=lambda: ReportJob.get_by_id(job.id).state == "done",
        SIGNING_DIR=str(tmp_path / "signing"), REPORTS_DIR=str(tmp_path / "out"))
    job = ReportJob.get_by_id(job.id)
    assert job.state == "done", job.error
    assert cycle.name in pdf_text(Path(job.path).read_bytes())


def test_a_job_whose_worker_stopped_can_be_started_again(app, client, graded, immediate_jobs):
    """A job left running for longer than any render takes (its worker was restarted) stops
    polling, says so, and Try again renders it."""
    import datetime

    from models.base import utcnow
    s, cycle = graded
    old = utcnow() - datetime.timedelta(hours=2)
    job = ReportJob.create(cycle=cycle, state="running", done=3, total=12, created_at=old)
    fresh = ReportJob.create(cycle=cycle, state="running", done=3, total=12)
    login(client, "chair")
    page = client.get(f"/cycles/{cycle.id}/report").get_data(as_text=True)
    assert "job-error" not in page  # the newest job, still running, is the one shown
    panel = client.get(f"/report-jobs/{job.id}", headers={"HX-Request": "true"}).get_data(
        as_text=True)
    assert "every 1s" not in panel and "已中断" in panel and "后台任务进程可能已重启" in panel
    assert f"/report-jobs/{job.id}/retry" in panel
    client.post(f"/report-jobs/{fresh.id}/retry")  # a render still going is left alone
    assert ReportJob.get_by_id(fresh.id).state == "running"
    client.post(f"/report-jobs/{job.id}/retry")
    assert ReportJob.get_by_id(job.id).state == "done"


def test_only_the_newest_reports_files_are_kept(app, client, graded, immediate_jobs):
    """Each finished render leaves a file; the cycle keeps the five newest, as its page
    lists, and deletes the older ones."""
    s, cycle = graded
    login(client, "chair")
    for _ in range(7):
        client.post(f"/cycles/{cycle.id}/report/jobs")
    jobs_ = list(ReportJob.select().order_by(ReportJob.id))
    assert [j.state for j in jobs_] == ["done"] * 7
    kept = [j for j in jobs_ if j.path]
    assert [j.id for j in kept] == [j.id for j in jobs_[-5:]]
    assert all(Path(j.path).is_file() for j in kept)
    files = sorted(p.name for p in Path(app.config["REPORTS_DIR"]).iterdir() if p.is_file())
    assert files == sorted(Path(j.path).name for j in kept)
    assert client.get(f"/report-jobs/{jobs_[0].id}/report.pdf").status_code == 404


def _signed(app, s, cycle):
    from models.signing import sign
    with app.test_request_context():
        for member in (*s["members"], s["chair"]):
            sign(cycle, member, PASSWORD)


def test_a_jobs_report_names_public_url_never_the_requests_host(app, client, graded,
                                                                  immediate_jobs):
    """A report rendered as a job, started with `Host: evil.example`, names PUBLIC_URL/verify."""
    s, cycle = graded
    _signed(app, s, cycle)
    login_at_evil(client, "chair")
    client.post(f"/cycles/{cycle.id}/report/jobs", headers={"Host": "evil.example"})
    job = ReportJob.get()
    assert job.state == "done" and job.signed == 1
    text = pdf_text(Path(job.path).read_bytes())
    assert "evil.example" not in text and "https://tierdesk.example.com/verify" in text


def test_without_public_url_a_signed_job_fails_with_why_and_writes_nothing(app, client, graded,
                                                                           immediate_jobs):
    """Without PUBLIC_URL a job for a report to be signed fails, says why on the report
    page, and leaves no file; no address is made up for it."""
    s, cycle = graded
    _signed(app, s, cycle)
    app.config["PUBLIC_URL"] = None
    login_at_evil(client, "chair")
    client.post(f"/cycles/{cycle.id}/report/jobs", headers={"Host": "evil.example"})
    job = ReportJob.get()
    assert job.state == "failed" and not job.path
    assert "PUBLIC_URL" in job.error and "Error" not in job.error  # a refusal, not a crash
    assert not Path(app.config["REPORTS_DIR"]).exists() or not any(
        Path(app.config["REPORTS_DIR"]).iterdir())
    page = client.get(f"/cycles/{cycle.id}/report", headers={"Host": "evil.example"}).get_data(
        as_text=True)
    assert "暂时无法生成签字版报告" in page


def test_a_job_that_fails_while_signing_leaves_no_file_and_a_retry_serves_a_signed_one(
        app, client, graded, immediate_jobs, monkeypatch):
    """A render that breaks after half the signed report was written leaves nothing in
    the reports folder (no half file, no leftover); Try again serves a whole report
    whose signature checks out."""
    from services import signing
    s, cycle = graded
    _signed(app, s, cycle)
    real = signing.sign_pdf

    def breaks_midway(source, output, reason=""):
        output.write(source.read(1000))
        raise OSError("disk full")
    monkeypatch.setattr(signing, "sign_pdf", breaks_midway)
    login(client, "chair")
    client.post(f"/cycles/{cycle.id}/report/jobs")
    job = ReportJob.get()
    assert job.state == "failed" and "disk full" in job.error and not job.path
    folder = Path(app.config["REPORTS_DIR"])
    assert [p.name for p in folder.iterdir() if p.is_file()] == []
    assert client.get(f"/report-jobs/{job.id}/report.pdf").status_code == 404
    monkeypatch.setattr(signing, "sign_pdf", real)
    client.post(f"/report-jobs/{job.id}/retry")
    job = ReportJob.get_by_id(job.id)
    assert job.state == "done" and job.signed == 1
    assert [p.name for p in folder.iterdir() if p.is_file()] == [Path(job.path).name]
    response = client.get(f"/report-jobs/{job.id}/report.pdf")
    assert response.status_code == 200 and cycle.name in pdf_text(response.data)
    with app.test_request_context():
        verdict = signing.verify(response.data)
    assert verdict.valid and verdict.cycle_id == cycle.id


def test_reports_and_the_job_queue_are_this_users_alone(app, client, graded, immediate_jobs,
                                                        tmp_path, monkeypatch):
    """The reports folder a job makes is 0700 and the report it writes 0600; the huey
    queue's SQLite file (and the folder made for it) are 0600 and 0700."""
    from services import jobs
    from tests.test_db import mode
    s, cycle = graded
    login(client, "chair")
    client.post(f"/cycles/{cycle.id}/report/jobs")
    job = ReportJob.get()
    assert job.state == "done"
    assert (mode(Path(app.config["REPORTS_DIR"])), mode(Path(job.path))) == ("0o700", "0o600")
    monkeypatch.setenv("HUEY_DB", str(tmp_path / "queue" / "huey.db"))
    queue = jobs._make_huey()
    queue.storage.enqueue(b"job")
    files = [tmp_path / "queue" / name for name in ("huey.db", "huey.db-wal", "huey.db-shm")]
    assert mode(tmp_path / "queue") == "0o700"
    assert {f.name: mode(f) for f in files if f.exists()} == {f.name: "0o600" for f in files}
