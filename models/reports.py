"""Report jobs: a committee report rendered in the background (huey), with its
progress, its file when done, or why it failed."""
import datetime
from pathlib import Path

from peewee import CharField, DateTimeField, ForeignKeyField, IntegerField, TextField

from i18n import lazy_gettext as _l

from .audit import AuditEvent
from .base import BaseModel, utcnow
from .cycles import Assessment, GradingCycle, Score
from .people import User

JOB_STATES = {"queued": _l("Waiting to start"), "running": _l("Rendering"),
              "done": _l("Done"), "failed": _l("Failed")}
# A render takes seconds when its sheets were rendered ahead, a few minutes when not (a
# thousand sheets, about two); one queued or running for this long has lost its worker
# (stopped or restarted) and may be started again.
STALLED_AFTER = datetime.timedelta(minutes=30)
# Finished reports kept on disk per cycle: the page lists as many.
KEPT_FILES = 5


class ReportJob(BaseModel):
    cycle = ForeignKeyField(GradingCycle, backref="report_jobs", on_delete="CASCADE")
    requested_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    state = CharField(max_length=16, default="queued")
    done = IntegerField(default=0)  # parts rendered
    total = IntegerField(default=0)  # parts in all
    error = TextField(default="")
    path = CharField(max_length=500, default="")  # the PDF under instance/reports/
    signed = IntegerField(default=0)  # 1 when the PDF carries the organisation's signature
    fingerprint = CharField(max_length=64, default="")
    created_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)

    @property
    def state_label(self):
        if self.stalled:
            return _l("Stopped")
        return JOB_STATES.get(self.state, self.state)

    @property
    def stalled(self):
        return self.state in ("queued", "running") and \
            self.created_at < utcnow() - STALLED_AFTER

    @property
    def percent(self):
        if self.state == "done":
            return 100
        return int(100 * self.done / self.total) if self.total else 0

    @property
    def finished(self):
        return self.state in ("done", "failed") or self.stalled

    @property
    def may_retry(self):
        return self.state == "failed" or self.stalled


# What changes a report's content besides the committee's scores (Score.updated_at): the
# phase, results and signatures, and the names it prints. Scores are not audited.
REPORT_CHANGES = ("cycle_updated", "cycle_phase", "preliminary_submitted",
                  "assessment_finalised", "assessment_reopened", "cycle_signed",
                  "cycle_reopened", "customer_updated", "customer_import", "branch_updated",
                  "tier_created", "tier_updated", "tier_moved", "user_updated")


def current_report_job(cycle, fingerprint, signed):
    """The newest of the cycle's report jobs that shows the cycle as it is now: queued,
    running or done (not failed or stopped), requested after the last change a report
    shows, and, when done, rendered from these results (`fingerprint`), signed or not
    as `signed` says, with its file still on disk. None when there is none."""
    job = (ReportJob.select().where(ReportJob.cycle == cycle.id,
                                    ReportJob.state.in_(("queued", "running", "done")))
           .order_by(ReportJob.id.desc()).first())
    if job is None or job.stalled:
        return None
    if job.state == "done" and (job.fingerprint != fingerprint or bool(job.signed) != signed
                                or not job.path or not Path(job.path).is_file()):
        return None
    changed = (AuditEvent.select().where(AuditEvent.at >= job.created_at,
                                         AuditEvent.action.in_(REPORT_CHANGES)).exists()
               or Score.select().join(Assessment, on=(Score.assessment == Assessment.id))
               .where(Assessment.cycle == cycle.id, Score.updated_at >= job.created_at)
               .exists())
    return None if changed else job


def prune_report_files(cycle_id, keep=KEPT_FILES):
    """Delete the files of a cycle's finished reports older than the `keep` newest."""
    old = (ReportJob.select().where(ReportJob.cycle == cycle_id, ReportJob.path != "")
           .order_by(ReportJob.id.desc()).offset(keep))
    for job in old:
        Path(job.path).unlink(missing_ok=True)
        ReportJob.update(path="").where(ReportJob.id == job.id).execute()
