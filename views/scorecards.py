"""Scorecard templates: the list, one version, the editor, the history of a
template's versions and the printable blank sheet."""
from flask import Blueprint, flash, make_response, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from peewee import JOIN

from extensions import htmx
from forms.scorecards import TemplateForm
from models import AuditEvent, DomainError, ScorecardTemplate, Tier, User
from models.scorecards import (
    TEMPLATE_KINDS,
    TemplateInvalid,
    describe_changes,
    save_template,
    template_families,
    validate_template,
)

from .access import get_or_404, role_required

bp = Blueprint("scorecards", __name__, url_prefix="/scorecards")


@bp.context_processor
def labels():
    return {"template_kinds": TEMPLATE_KINDS}


@bp.route("")
def index():
    """Every template with its latest version, whom it grades and whether it is in use."""
    return render_template("scorecards/index.html", families=list(template_families()),
                           can_edit=current_user.has_role("admin"))


@bp.route("/<int:template_id>")
def detail(template_id):
    """One version: criteria with their levels, grade bands, max total."""
    template = get_or_404(ScorecardTemplate, template_id)
    return render_template("scorecards/detail.html", template=template,
                           criteria=template.criteria_with_levels(),
                           bands=template.band_ranges(), latest=template.latest_version(),
                           can_edit=current_user.has_role("admin"))


@bp.route("/new", methods=["GET", "POST"])
@role_required("admin")
def create():
    """A new template; nothing is saved until it passes every rule."""
    return _editor(None)


@bp.route("/<int:template_id>/edit", methods=["GET", "POST"])
@role_required("admin")
def edit(template_id):
    """Change the latest version: in place, or as the next version when it is frozen."""
    template = get_or_404(ScorecardTemplate, template_id)
    latest = template.latest_version()
    if latest.id != template.id:
        flash(_("Version %(version)s is the latest; changes start from it.",
                version=latest.version), "info")
        return redirect(url_for("scorecards.edit", template_id=latest.id), 303)
    return _editor(template)


def _blank_data():
    tiers = list(Tier.ordered())
    return {
        "name": "", "kind": "existing", "description": "",
        "criteria": [{"name": "", "guidance": "", "max_points": None,
                      "levels": [{"name": "", "min_points": None, "max_points": None}]}],
        "bands": [{"tier": t.code, "min_total": 0 if i == len(tiers) - 1 else None}
                  for i, t in enumerate(tiers)],
    }


def _editor(template):
    """GET shows the form; a row button re-renders it with a row more or less
    (nothing saved); Save validates and saves, or shows every error."""
    form = TemplateForm()
    if not form.is_submitted():
        form = TemplateForm(data=template.as_data() if template else _blank_data())
    elif not form.apply_row_action():
        form.validate()
        form.add_errors(validate_template(form.values()))
        if not form.error_summary():
            try:
                saved = save_template(template, form.values(), current_user)
            except TemplateInvalid as error:
                form.add_errors(error.errors)
            except DomainError as error:
                flash(str(error), "error")
            else:
                return _saved(template, saved)
    context = dict(form=form, template=template, errors=form.error_summary())
    if htmx:
        response = make_response(render_template("scorecards/_form.html", **context))
        # Bring into view what changed: the row's criterion, or the error summary.
        show = f"#{form.changed}:top" if form.changed else "top" if form.is_submitted() else None
        if show:
            response.headers["HX-Reswap"] = f"outerHTML show:{show}"
        return response
    return render_template("scorecards/form.html", **context)


def _saved(template, saved):
    if template is None:
        flash(_("The template %(name)s was created.", name=saved.name), "success")
    elif saved.id != template.id:
        flash(_("Saved as version %(new)s. Version %(old)s stays as it was, for the cycles "
                "that use it.", new=saved.version, old=template.version), "success")
    else:
        flash(_("The changes were saved."), "success")
    url = url_for("scorecards.detail", template_id=saved.id)
    if htmx:
        return make_response("", 204, {"HX-Redirect": url})
    return redirect(url, 303)


@bp.route("/<int:template_id>/history")
def history(template_id):
    """Every version of the template: who made it, when, what changed."""
    template = get_or_404(ScorecardTemplate, template_id)
    versions = list(template.versions())
    events = (AuditEvent.select(AuditEvent, User)
              .join(User, JOIN.LEFT_OUTER, on=(AuditEvent.actor == User.id), attr="actor")
              .where(AuditEvent.object_type == ScorecardTemplate._meta.table_name,
                     AuditEvent.object_id.in_([str(v.id) for v in versions]))
              .order_by(AuditEvent.at, AuditEvent.id))
    by_version = {}
    for event in events:
        changes = []
        if event.action in ("scorecard_updated", "scorecard_versioned"):
            changes = describe_changes(event.before_data, event.after_data)
        by_version.setdefault(event.object_id, []).append((event, changes))
    return render_template("scorecards/history.html", template=template, versions=versions,
                           events=by_version, can_edit=current_user.has_role("admin"))


@bp.route("/<int:template_id>/sheet")
def sheet(template_id):
    """The blank assessment sheet of one version, to print and fill in by hand."""
    template = get_or_404(ScorecardTemplate, template_id)
    return render_template("scorecards/sheet.html", template=template,
                           criteria=template.criteria_with_levels(),
                           bands=template.band_ranges())
