"""Background jobs (huey): long report renders, the reading of uploaded customer
files, and the delivery of notices run in a worker, not in a request. Every job is
queued from here (queue_preview, queue_report, queue_report_part, requeue_report);
deliver_due_notices runs every minute by itself and sends what the outbox holds, and
the weekly work (the funnel's rollover, the notices before it) runs on the company's
clock. A
web request never queues a notice: queueing inside the change's transaction could
send before the commit (or, in huey's immediate mode, inside it), and a queue that
is down would fail a request whose change had committed.

Storage is a SQLite file under instance/ by default, Redis when REDIS_URL is
set. Run the worker beside the web server through its own entry, worker.py:

    huey_consumer worker.huey --workers 1

(`make run` starts it for you.) worker.py builds the Flask app once per process
from the same environment as the web server (DATABASE_URL, …) and hands it over
here (build_app_with), so that services never import app.py.
"""
import datetime
import os
import threading
import traceback
from pathlib import Path

from flask import current_app, has_app_context
from huey import RedisHuey, SqliteHuey, crontab

from i18n import company_zone
from models import DomainError, GradingCycle, ReportJob, audit, db, utcnow
from models.approvals import chase_waiting
from models.base import private_sqlite_file
from models.compliance import notify_overdue_digest
from models.funnel import notify_stale, rollover
from models.notices import due_ids, sweep_interrupted
from models.phases import notify_deadlines
from models.reports import prune_report_files
from models.service_requests import notify_breaches
from models.signing import results_fingerprint
from services import notify, reports
from services.customer_io import keep_upload, read_upload

BASE_DIR = Path(__file__).resolve().parent.parent


def _make_huey():
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        return RedisHuey("tierdesk", url=redis_url)
    path = os.environ.get("HUEY_DB") or str(BASE_DIR / "instance" / "huey.db")
    Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_sqlite_file(path)  # the queue holds job arguments: this user's alone
    return SqliteHuey("tierdesk", filename=path)


huey = _make_huey()
_app_factory = None
_worker_app = None
_worker_app_lock = threading.Lock()


def build_app_with(factory):
    """Run this process's jobs in the app `factory()` builds (worker.py hands over
    app.create_app)."""
    global _app_factory
    _app_factory = factory


def worker_app():
    """The Flask app of this worker process, built once. Raises RuntimeError in a
    process that was not started through worker.py."""
    global _worker_app
    with _worker_app_lock:
        if _worker_app is None:
            if _app_factory is None:
                raise RuntimeError("No app to run jobs in: start the worker with "
                                   "`huey_consumer worker.huey`.")
            _worker_app = _app_factory()
    return _worker_app


def _in_app(function, *args):
    """Run `function(*args)` in the app: at once when called inside it (huey's
    immediate mode: tests, or no worker configured), else in this worker's app
    with a database connection of its own."""
    if has_app_context():
        function(*args)
        return
    app = worker_app()
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
def render_report_part(cycle_id, assessment_id):
    """Render ahead the part of the report holding a settled sheet (reports.warm_part)."""
    _in_app(_warm_part, cycle_id, assessment_id)


def _warm_part(cycle_id, assessment_id):
    app = current_app
    cycle = GradingCycle.get_or_none(GradingCycle.id == cycle_id)
    if cycle is None:
        return
    try:
        reports.warm_part(cycle, assessment_id, app.config.get("REPORT_BATCH", reports.SHEET_BATCH))
    except Exception:  # noqa: BLE001 — only a head start: the report renders what is missing
        app.logger.error("rendering ahead for cycle %s failed\n%s", cycle_id,
                         traceback.format_exc())


@huey.task()
def deliver_notice(notice_id):
    """Send one notice of the outbox (services/notify.py: claim, send, mark)."""
    _in_app(notify.deliver, notice_id)


@huey.periodic_task(crontab(minute="*"))
def deliver_due_notices():
    """Every minute: mark failed the notices whose worker stopped mid-send, then send
    the pending ones whose time has come (new ones, and retries after their back-off).
    Each is claimed before it is sent, so a second worker doing the same skips it."""
    _in_app(send_due_notices)


def send_due_notices(batch=200):
    """Sweep interrupted notices, then deliver every notice due when this starts, `batch`
    at a time, however many there are (a cycle's publication writes hundreds): a run
    that outlasts its minute goes on while the next minute's run, in the other worker
    thread, claims the rest beside it. Returns {state: count}."""
    sweep_interrupted()
    started = utcnow()
    done = {}
    while True:
        ids = due_ids(batch, now=started)
        states = [notify.deliver(notice_id) for notice_id in ids]
        for state in states:
            done[state] = done.get(state, 0) + 1
        if len(ids) < batch or not any(states):  # all taken, or taken by others
            return done


# The company's clock, the one its people keep (the server's may be UTC). The same
# setting as the pages' times.
COMPANY_TIME = company_zone()


def company_time(schedule):
    """A huey schedule (a crontab) read on the company's clock: huey hands a periodic
    task's check the time in UTC."""
    def validate(timestamp):
        return schedule(timestamp.replace(tzinfo=datetime.UTC).astimezone(COMPANY_TIME))
    return validate


def company_today():
    return datetime.datetime.now(COMPANY_TIME).date()


@huey.periodic_task(company_time(crontab(minute="0", hour="16", day_of_week="5")))
def stale_opportunity_notices():
    """Fridays at 16:00: each rep hears which opportunities Monday's rollover will send
    back to the first stage (models.funnel.notify_stale)."""
    _in_app(lambda: notify_stale(company_today()))


@huey.periodic_task(company_time(crontab(minute="0", hour="6", day_of_week="1")))
def weekly_rollover():
    """Mondays at 06:00: the funnel's weekly rollover (models.funnel.rollover). Run twice
    in one week, the second run moves nothing: what the first moved is in the first
    stage, which never goes stale."""
    _in_app(lambda: rollover(company_today()))


@huey.periodic_task(company_time(crontab(minute="0", hour="8", day_of_week="1")))
def overdue_digest():
    """Mondays at 08:00: the weekly digest of overdue service to each branch manager and
    account manager (models.compliance.notify_overdue_digest)."""
    _in_app(lambda: notify_overdue_digest(company_today()))


@huey.periodic_task(company_time(crontab(minute="0", hour="9")))
def cycle_deadlines():
    """Daily at 09:00: branch managers with preliminary sheets open three days and one
    day before the meeting hear of it (models.phases.notify_deadlines)."""
    _in_app(lambda: notify_deadlines(company_today()))


@huey.periodic_task(crontab(minute="15"))
def chase_approvals():
    """Every hour: approval steps waiting past their rule's limits remind their
    approvers, then go to the role above (models.approvals.chase_waiting)."""
    _in_app(chase_waiting)


@huey.periodic_task(crontab(minute="*/5"))
def service_request_breaches():
    """Every five minutes: the owner and branch managers of each service request that
    went past its response time hear of it, once (models.service_requests.notify_breaches)."""
    _in_app(notify_breaches)


@huey.task()
def read_import(batch_id):
    """Read an uploaded customer file into its preview (see customer_io.read_upload)."""
    _in_app(read_upload, batch_id)


# --- Queueing: the one place that hands work to the worker ------------------------

def queue_preview(filename, data, user):
    """Keep an upload (customer_io.keep_upload) and have the worker read it into its
    preview. Returns the batch, whose page shows the progress and then the preview.
    Raises SpreadsheetError for a file refused at once."""
    batch = keep_upload(filename, data, user)
    read_import(batch.id)
    return batch


def queue_report(cycle, user):
    """A new render of the cycle's report for `user`, audited and queued. Returns the
    ReportJob."""
    job = ReportJob.create(cycle=cycle, requested_by=user.id)
    audit("report_job", cycle, after={"job": job.id})
    render_report(job.id)
    return job


def queue_report_part(assessment):
    """After the chair settled `assessment`: render its part of the report ahead, once
    all the part's sheets are settled, so the report is only joined when asked for."""
    render_report_part(assessment.cycle_id, assessment.id)


def requeue_report(job):
    """Queue a failed or stopped ReportJob again, from the start, audited."""
    ReportJob.update(state="queued", done=0, error="", finished_at=None,
                     created_at=utcnow()).where(ReportJob.id == job.id).execute()
    audit("report_job", job.cycle, after={"job": job.id, "retry": True})
    render_report(job.id)


def run_report_job(job_id):
    """Render the report of a ReportJob inside an app context, recording progress,
    the file and whether it is signed, or the reason it failed."""
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
        signed = reports.will_be_signed(cycle, fingerprint)
        path = reports.signed_report_pdf(cycle, reports.reports_dir() / f"report-{job.id}.pdf",
                                         progress,
                                         app.config.get("REPORT_BATCH", reports.SHEET_BATCH))
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
