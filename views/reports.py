"""Printed documents: assessment sheets and blank sheets as PDF, the committee
report (always rendered in the background), and the committee signing the cycle's
results."""
from pathlib import Path

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, logout_user

from extensions import htmx
from forms.reports import ReopenForm, SignForm
from models import (
    Assessment,
    DomainError,
    GradingCycle,
    ReportJob,
    ScorecardTemplate,
)
from models.login_limits import SessionsRevoked, TooManyFailures
from models.phases import reopen_cycle
from models.reports import current_report_job
from models.signing import report_signatures, results_fingerprint, sign, unsigned_signers
from services import reports
from services.jobs import queue_report, requeue_report
from services.pdf import pdf_response

from .access import get_or_404, role_required

bp = Blueprint("reports", __name__)

# Who may read a whole cycle's report: every branch's sheets are in it.
REPORT_ROLES = ("admin", "committee_chair", "committee_member", "sales_director",
                "general_manager")


@bp.app_context_processor
def report_roles():
    """The cycle page shows the report's buttons to the roles that may open them."""
    return {"REPORT_ROLES": REPORT_ROLES}


@bp.route("/assessments/<int:assessment_id>/sheet.pdf")
def sheet_pdf(assessment_id):
    """The filled assessment sheet as PDF; another branch's sheet is a 404."""
    sheet = get_or_404(Assessment, assessment_id)
    return pdf_response(reports.sheet_pdf(sheet), f"assessment-{sheet.id}.pdf")


@bp.route("/scorecards/<int:template_id>/sheet.pdf")
def blank_sheet_pdf(template_id):
    """The blank sheet of one template version as PDF."""
    template = get_or_404(ScorecardTemplate, template_id)
    return pdf_response(reports.blank_sheet_pdf(template), f"blank-sheet-{template.id}.pdf")


@bp.route("/cycles/<int:cycle_id>/report.pdf")
@role_required(*REPORT_ROLES)
def report_pdf(cycle_id):
    """The committee report, never rendered here: the file of a finished render that
    still shows the cycle as it is, or else the report page, with a render started in
    the background (or the one under way) whose progress it shows. A report to be
    signed while PUBLIC_URL is unset is refused on that page, with why."""
    cycle = get_or_404(GradingCycle, cycle_id, where=GradingCycle.phase != "draft")
    fingerprint = results_fingerprint(cycle)
    signed = reports.will_be_signed(cycle, fingerprint)
    try:
        reports.ensure_public_url(signed)
    except reports.PublicURLMissing as error:
        flash(str(error), "error")
        return redirect(url_for("reports.report_page", cycle_id=cycle.id), 303)
    job = current_report_job(cycle, fingerprint, signed)
    if job is not None and job.state == "done":
        return pdf_response(Path(job.path), f"cycle-{cycle.id}-report.pdf")
    if job is None:
        queue_report(cycle, current_user)
    return redirect(url_for("reports.report_page", cycle_id=cycle.id), 303)


@bp.route("/cycles/<int:cycle_id>/signing", methods=["GET", "POST"])
@role_required(*REPORT_ROLES)
def signing(cycle_id):
    """The signatures so far, and the form for a committee member to sign.

    While the user's password guesses are limited the answer is 429; when a wrong
    password ended the user's sessions, this one ends too and the login page follows.
    """
    cycle = get_or_404(GradingCycle, cycle_id, where=GradingCycle.phase != "draft")
    form = SignForm()
    status = 200
    if form.validate_on_submit():
        user = current_user._get_current_object()
        try:
            sign(cycle, user, form.password.data, address=request.remote_addr)
        except SessionsRevoked as error:
            logout_user()
            session.clear()
            session["language"] = user.language  # the login page keeps speaking it
            flash(str(error), "error")
            return redirect(url_for("auth.login"), 303)
        except TooManyFailures as error:
            flash(str(error), "error")
            status = 429
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("You signed the results of %(name)s.", name=cycle.name), "success")
            return redirect(url_for("reports.signing", cycle_id=cycle.id), 303)
    signatures = report_signatures(cycle)
    signed_ids = {s.user_id for s in signatures}
    waiting = unsigned_signers(cycle) if cycle.phase == "signing" else []
    return render_template(
        "reports/signing.html", cycle=cycle, form=form, signatures=signatures,
        waiting=waiting, fingerprint=results_fingerprint(cycle),
        can_sign=(cycle.phase == "signing" and cycle.is_on_committee(current_user)
                  and current_user.id not in signed_ids),
        can_reopen=cycle.may_reopen(current_user),
        reopen_form=ReopenForm()), status


@bp.route("/cycles/<int:cycle_id>/reopen", methods=["POST"])
@role_required("admin", "committee_chair")
def reopen(cycle_id):
    """Take the cycle back to the committee review; every signature is cleared."""
    cycle = get_or_404(GradingCycle, cycle_id, where=GradingCycle.phase != "draft")
    form = ReopenForm()
    if not form.validate_on_submit():
        flash(_("Give a reason for reopening the cycle."), "error")
    else:
        try:
            reopen_cycle(cycle, current_user, form.reason.data.strip())
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The cycle is back in committee review; the signatures were cleared."),
                  "success")
            return redirect(url_for("cycles.detail", cycle_id=cycle.id), 303)
    return redirect(url_for("reports.signing", cycle_id=cycle.id), 303)


# --- Reports rendered in the background --------------------------------------------

@bp.route("/cycles/<int:cycle_id>/report")
@role_required(*REPORT_ROLES)
def report_page(cycle_id):
    """The report's background renders: start one, watch its progress, download it;
    a finished file that no longer shows the cycle as it is says so."""
    cycle = get_or_404(GradingCycle, cycle_id, where=GradingCycle.phase != "draft")
    jobs = list(ReportJob.select().where(ReportJob.cycle == cycle)
                .order_by(ReportJob.id.desc()).limit(5))
    job = jobs[0] if jobs else None
    outdated = False
    if job is not None and job.state == "done":
        fingerprint = results_fingerprint(cycle)
        current = current_report_job(cycle, fingerprint,
                                     reports.will_be_signed(cycle, fingerprint))
        outdated = current is None or current.id != job.id
    return render_template("reports/report.html", cycle=cycle, jobs=jobs, job=job,
                           outdated=outdated)


@bp.route("/cycles/<int:cycle_id>/report/jobs", methods=["POST"])
@role_required(*REPORT_ROLES)
def start_report(cycle_id):
    """Queue a render of the report, audited; htmx gets the progress panel."""
    cycle = get_or_404(GradingCycle, cycle_id, where=GradingCycle.phase != "draft")
    job = queue_report(cycle, current_user)
    if htmx:
        return render_template("reports/_job.html", job=ReportJob.get_by_id(job.id))
    return redirect(url_for("reports.report_page", cycle_id=cycle.id), 303)


@bp.route("/report-jobs/<int:job_id>")
@role_required(*REPORT_ROLES)
def job_status(job_id):
    """The job's progress panel (polled by htmx until it is done or failed)."""
    job = get_or_404(ReportJob, job_id)
    if not htmx:
        return redirect(url_for("reports.report_page", cycle_id=job.cycle_id), 303)
    return render_template("reports/_job.html", job=job)


@bp.route("/report-jobs/<int:job_id>/report.pdf")
@role_required(*REPORT_ROLES)
def job_file(job_id):
    """The rendered report of a finished job."""
    job = get_or_404(ReportJob, job_id)
    if job.state != "done" or not job.path or not Path(job.path).is_file():
        abort(404)
    return pdf_response(Path(job.path), f"cycle-{job.cycle_id}-report.pdf")


@bp.route("/report-jobs/<int:job_id>/retry", methods=["POST"])
@role_required(*REPORT_ROLES)
def retry_job(job_id):
    """Run a failed or stopped job again, audited."""
    job = get_or_404(ReportJob, job_id)
    if job.may_retry:
        requeue_report(job)
    if htmx:
        return render_template("reports/_job.html", job=ReportJob.get_by_id(job.id))
    return redirect(url_for("reports.report_page", cycle_id=job.cycle_id), 303)
