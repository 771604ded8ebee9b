"""Background jobs (huey): long report renders, and the reading of uploaded customer
files, run in a worker, not in a request.

Storage is a SQLite file under instance/ by default, Redis when REDIS_URL is
set. Run the worker beside the web server:

    huey_consumer services.jobs.huey --workers 1

(`make run` starts it for you.) The worker builds the Flask app once per
process from the same environment as the web server (DATABASE_URL, …).
"""
import os
import threading
import traceback
from pathlib import Path

from flask import current_app, has_app_context
from huey import RedisHuey, SqliteHuey

BASE_DIR = Path(__file__).resolve().parent.parent


def _make_huey():
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        return RedisHuey("tierdesk", url=redis_url)
    from models.base import private_sqlite_file
    path = os.environ.get("HUEY_DB") or str(BASE_DIR / "instance" / "huey.db")
    Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_sqlite_file(path)  # the queue holds job arguments: this user's alone
    return SqliteHuey("tierdesk", filename=path)


huey = _make_huey()
_worker_app = None
_worker_app_lock = threading.Lock()


def _worker():
    """The Flask app of this worker process, built once."""
    global _worker_app
    with _worker_app_lock:
        if _worker_app is None:
            from app import create_app
            _worker_app = create_app()
    return _worker_app


@huey.on_startup()
def _build_worker_app():
    """Build the app as the worker starts (about 1.5 s), not on its first job: the
    first upload after a restart would wait for it."""
    _worker()


def reports_dir(app):
    """Where finished reports are kept; made readable by this user alone (0700)."""
    path = Path(app.config.get("REPORTS_DIR") or Path(app.instance_path) / "reports")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def write_private(path, data):
    """Write `data` to `path`, readable and writable by this user alone (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)  # a file left from before keeps its mode otherwise
        out.write(data)


def _in_app(function, *args):
    """Run `function(*args)` in the app: at once when called inside it (huey's
    immediate mode: tests, or no worker configured), else in this worker's app
    with a database connection of its own."""
    if has_app_context():
        function(*args)
        return
    from models import db
    app = _worker()
    # A stand-in request for url_for and the catalog. No address it carries is ever
    # printed: a report's verification address comes from PUBLIC_URL alone.
    with app.app_context(), app.test_request_context(base_url=app.config.get("PUBLIC_URL")):
        db.connect(reuse_if_open=True)
        try:
            function(*args)
        finally:
            db.close()


@huey.task()
def render_report(job_id):
    """Render the committee report of a ReportJob (see run_report_job)."""
    _in_app(run_report_job, job_id)


@huey.task()
def read_import(batch_id):
    """Read an uploaded customer file into its preview (see customer_io.read_upload)."""
    from services.customer_io import read_upload
    _in_app(read_upload, batch_id)


def run_report_job(job_id):
    """Render the report of a ReportJob inside an app context, recording progress,
    the file and whether it is signed, or the reason it failed."""
    from models import DomainError, GradingCycle, ReportJob, utcnow
    from models.reports import prune_report_files
    from models.signing import results_fingerprint
    from services.reports import SHEET_BATCH, signed_report_pdf, will_be_signed

    app = current_app
    job = ReportJob.get_or_none(ReportJob.id == job_id)
    if job is None:
        return
    ReportJob.update(state="running", done=0, error="").where(ReportJob.id == job.id).execute()

    def progress(done, total):
        ReportJob.update(done=done, total=total).where(ReportJob.id == job.id).execute()

    try:
        cycle = GradingCycle.get_by_id(job.cycle_id)
        fingerprint = results_fingerprint(cycle)
        signed = will_be_signed(cycle, fingerprint)
        data = signed_report_pdf(cycle, progress, app.config.get("REPORT_BATCH", SHEET_BATCH))
        path = reports_dir(app) / f"report-{job.id}.pdf"
        write_private(path, data)
    except DomainError as error:  # a refusal (no PUBLIC_URL for a signed report), not a bug
        ReportJob.update(state="failed", error=str(error)[:1000],
                         finished_at=utcnow()).where(ReportJob.id == job.id).execute()
        return
    except Exception as error:  # noqa: BLE001 — the user is told why and may retry
        app.logger.error("report job %s failed\n%s", job.id, traceback.format_exc())
        ReportJob.update(state="failed", error=f"{type(error).__name__}: {error}"[:1000],
                         finished_at=utcnow()).where(ReportJob.id == job.id).execute()
        return
    ReportJob.update(state="done", path=str(path), fingerprint=fingerprint, signed=int(signed),
                     finished_at=utcnow()).where(ReportJob.id == job.id).execute()
    prune_report_files(job.cycle_id)
