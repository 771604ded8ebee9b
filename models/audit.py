"""The append-only audit trail and the one helper that writes it."""
import datetime
import json

from flask import has_request_context, request
from flask_login import current_user
from peewee import CharField, DateTimeField, ForeignKeyField, TextField

from i18n import lazy_gettext as _l

from .base import BaseModel, utcnow
from .people import User

# What the trail calls each action and record type; a code without a label
# shows as the code itself. Domains add theirs here.
ACTION_LABELS = {
    "login": _l("Logged in"),
    "login_failed": _l("Failed login"),
    "login_throttled": _l("Login refused (too many failures)"),
    "sessions_revoked": _l("All sessions ended (too many wrong passwords)"),
    "logout": _l("Logged out"),
    "access_denied": _l("Access denied"),
    "user_created": _l("User created"),
    "user_updated": _l("User changed"),
    "user_language": _l("Language changed"),
    "branch_created": _l("Branch created"),
    "branch_updated": _l("Branch changed"),
    "demo_seeded": _l("Demo data loaded"),
    "customer_created": _l("Customer created"),
    "customer_updated": _l("Customer changed"),
    "customer_import": _l("Customers imported"),
    "customer_export": _l("Customers exported"),
    "activity_logged": _l("Contact logged"),
    "contact_added": _l("Contact person added"),
    "contact_removed": _l("Contact person removed"),
    "scorecard_created": _l("Scorecard template created"),
    "scorecard_updated": _l("Scorecard template changed"),
    "scorecard_versioned": _l("Scorecard template: new version"),
    "scorecard_frozen": _l("Scorecard template frozen"),
    "cycle_created": _l("Grading cycle created"),
    "cycle_updated": _l("Grading cycle changed"),
    "cycle_phase": _l("Grading cycle moved on"),
    "preliminary_submitted": _l("Preliminary sheet submitted"),
    "meeting_moved": _l("Meeting moved to a customer"),
    "assessment_finalised": _l("Final grade set"),
    "assessment_reopened": _l("Final grade reopened"),
    "assessment_to_discuss": _l("Customer marked to discuss again (or cleared)"),
    "tier_created": _l("Tier created"),
    "tier_updated": _l("Tier changed"),
    "tier_moved": _l("Tier moved in the order"),
    "tier_policy_saved": _l("Service policy: new version"),
    "approval_rule_saved": _l("Approval rule set"),
    "approval_rule_reset": _l("Approval rule back to default"),
    "tier_change_filed": _l("Tier change requested"),
    "tier_change_step_approved": _l("Tier change step approved"),
    "tier_change_approved": _l("Tier change approved"),
    "tier_change_rejected": _l("Tier change rejected"),
    "tier_change_withdrawn": _l("Tier change withdrawn"),
    "tier_change_returned": _l("Tier change returned for changes"),
    "tier_change_reminded": _l("Tier change approvers reminded"),
    "tier_change_escalated": _l("Tier change step escalated"),
    "delegation_saved": _l("Stand-in set for a period away"),
    "delegation_ended": _l("Period away ended"),
    "opportunity_created": _l("Opportunity added to the funnel"),
    "opportunity_updated": _l("Opportunity changed"),
    "opportunity_moved": _l("Opportunity moved"),
    "opportunity_rollover": _l("Opportunity sent back by the weekly rollover"),
    "funnel_export": _l("Funnel exported"),
    "cycle_signed": _l("Cycle results signed"),
    "cycle_reopened": _l("Cycle reopened, signatures cleared"),
    "report_job": _l("Committee report rendered"),
    "robot_saved": _l("Group robot set"),
    "robot_tested": _l("Group robot test message sent"),
    "smtp_tested": _l("Test e-mail sent"),
    "notice_resent": _l("Notice sent again"),
    "notice_preferences": _l("Notice channels chosen"),
    "portfolio_figures_saved": _l("Share and upcoming volume set"),
    "portfolio_setting_saved": _l("Portfolio thresholds: new version"),
    "service_request_logged": _l("Service request logged"),
    "service_request_moved": _l("Service request moved"),
    "service_request_followed_up": _l("Follow-up call recorded"),
    "service_request_breached": _l("Service request overdue: owner and branch manager told"),
    "allocation_rule_saved": _l("Allocation rule set"),
    "allocation_rule_deleted": _l("Allocation rule removed"),
    "allocation_rule_moved": _l("Allocation rule moved in the order"),
    "customers_reassigned": _l("Customers reassigned to other account managers"),
}
OBJECT_LABELS = {
    "user": _l("User"),
    "branch": _l("Branch"),
    "customer": _l("Customer"),
    "database": _l("Database"),
    "activity": _l("Contact log"),
    "contact": _l("Contact person"),
    "import_batch": _l("Import"),
    "scorecard_template": _l("Scorecard template"),
    "grading_cycle": _l("Grading cycle"),
    "assessment": _l("Assessment sheet"),
    "tier": _l("Tier"),
    "approval_rule": _l("Approval rule"),
    "tier_change_request": _l("Tier change request"),
    "opportunity": _l("Opportunity"),
    "robot": _l("Group robot"),
    "notice": _l("Notice"),
    "delegation": _l("Period away"),
    "portfolio_setting": _l("Portfolio thresholds"),
    "service_request": _l("Service request"),
    "allocation_rule": _l("Allocation rule"),
    "ip": _l("Address"),
}


class AuditIsAppendOnly(Exception):
    """Raised by any attempt to change or remove an audit row."""


class AuditEvent(BaseModel):
    at = DateTimeField(default=utcnow, index=True)
    actor = ForeignKeyField(User, null=True, backref="audit_events", on_delete="RESTRICT")
    actor_name = CharField(max_length=64, default="")
    action = CharField(max_length=64, index=True)
    object_type = CharField(max_length=64, default="", index=True)
    object_id = CharField(max_length=64, default="")
    before = TextField(null=True)
    after = TextField(null=True)
    ip = CharField(max_length=64, default="")

    class Meta:
        indexes = ((("object_type", "object_id"), False), (("action", "object_id", "at"), False))

    # The app never changes history: these refuse instead of writing.
    def save(self, *args, **kwargs):
        if self.id is not None:
            raise AuditIsAppendOnly("audit events cannot be changed")
        return super().save(*args, **kwargs)

    def delete_instance(self, *args, **kwargs):
        raise AuditIsAppendOnly("audit events cannot be deleted")

    @classmethod
    def update(cls, *args, **kwargs):
        raise AuditIsAppendOnly("audit events cannot be changed")

    @classmethod
    def delete(cls, *args, **kwargs):
        raise AuditIsAppendOnly("audit events cannot be deleted")

    @property
    def action_label(self):
        return ACTION_LABELS.get(self.action, self.action)

    @property
    def object_label(self):
        return OBJECT_LABELS.get(self.object_type, self.object_type)

    @property
    def before_data(self):
        return json.loads(self.before) if self.before else None

    @property
    def after_data(self):
        return json.loads(self.after) if self.after else None

    def changes(self):
        """(field, before, after) for each field that differs."""
        before, after = self.before_data or {}, self.after_data or {}
        keys = list(dict.fromkeys([*before, *after]))
        return [(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]


def _json(value):
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=_default)


def _default(value):
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return str(value)


def audit(action, obj=None, before=None, after=None, actor=None, object_type=None,
          object_id=None, ip=None):
    """Record one audit event. Every write in the app goes through here.

    `obj` is the model instance acted on (its table and id are recorded);
    `before` and `after` are plain dicts. The actor defaults to the logged-in
    user of the current request, `ip` to the request's client address.
    """
    if actor is None and has_request_context() and current_user and current_user.is_authenticated:
        actor = current_user._get_current_object()
    if ip is None and has_request_context():
        ip = request.remote_addr
    if obj is not None:
        object_type = object_type or obj._meta.table_name
        object_id = obj._pk if object_id is None else object_id
    return AuditEvent.create(
        actor=actor, actor_name=actor.username if actor else "",
        action=action, object_type=object_type or "", object_id=str(object_id or ""),
        before=_json(before), after=_json(after),
        ip=(ip or "")[:64],
    )


def recent_count(action, object_id, since, object_type=None):
    """How many `action` events touched `object_id` (of `object_type`, when given) since
    `since` (UTC)."""
    query = AuditEvent.select().where(AuditEvent.action == action,
                                      AuditEvent.object_id == str(object_id),
                                      AuditEvent.at >= since)
    if object_type is not None:
        query = query.where(AuditEvent.object_type == object_type)
    return query.count()
