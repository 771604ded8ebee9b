"""The audit trail, read-only, for administrators."""
import datetime

from flask import Blueprint, current_app, render_template, request

from extensions import htmx
from forms.audit import AuditFilterForm
from models import AuditEvent
from models.audit import ACTION_LABELS, OBJECT_LABELS
from services.formatting import translated

from .access import role_required

bp = Blueprint("audit", __name__)


@bp.route("/audit")
@role_required("admin")
def events():
    """Audit events, newest first, filtered by who, what and when."""
    form = AuditFilterForm(request.args)
    query = AuditEvent.select().order_by(AuditEvent.id.desc())
    if form.validate():
        if form.actor.data:
            query = query.where(AuditEvent.actor_name == form.actor.data.strip())
        if form.action.data:
            query = query.where(AuditEvent.action == form.action.data.strip())
        if form.object_type.data:
            query = query.where(AuditEvent.object_type == form.object_type.data.strip())
        if form.object_id.data:
            query = query.where(AuditEvent.object_id == form.object_id.data.strip())
        if form.since.data:
            query = query.where(AuditEvent.at >= form.since.data)
        if form.until.data:
            query = query.where(AuditEvent.at < form.until.data + datetime.timedelta(days=1))
    size = current_app.config["PAGE_SIZE"]
    page = form.page.data if form.page.data and not form.page.errors else 1
    total = query.count()
    rows = list(query.paginate(page, size))
    template = "audit/_table.html" if htmx else "audit/events.html"
    return render_template(template, form=form, events=rows, page=page, total=total, size=size,
                           action_labels=translated(ACTION_LABELS),
                           object_labels=translated(OBJECT_LABELS))
