"""Tiers and their service policies; service compliance (who is overdue)."""
import datetime

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from extensions import htmx
from forms import chosen_id
from forms.tiers import ComplianceFilterForm, MoveTierForm, PolicyForm, TierForm
from models import DomainError, Tier, User
from models.compliance import SERVICE_KINDS, due_soon, overdue_counts, overdue_page, tier_counts
from models.customers import ACTIVITY_KINDS
from models.service_requests import KINDS as REQUEST_KINDS
from models.service_requests import breached, countdown, timer
from models.tiers import (
    POLICY_LABELS,
    PRIORITIES,
    current_policies,
    current_policy,
    move_tier,
    policy_history,
    save_policy,
    save_tier,
)
from services import markdown_text, reports
from services.formatting import translated
from services.pdf import pdf_response

from .access import get_or_404, role_required

bp = Blueprint("tiers", __name__)


@bp.app_template_filter("markdown")
def markdown_filter(text):
    return markdown_text.render(text)


SERVICE_KIND_NAMES = {kind: terms[0] for kind, terms in SERVICE_KINDS.items()}


@bp.context_processor
def labels():
    return {"policy_labels": translated(POLICY_LABELS), "priorities": translated(PRIORITIES),
            "service_kinds": translated(SERVICE_KIND_NAMES),
            "activity_kinds": translated(ACTIVITY_KINDS)}


@bp.route("/tiers")
def index():
    """Every tier in order with its current policy, holders and overdue customers."""
    return render_template("tiers/index.html", tiers=list(Tier.ordered()),
                           policies=current_policies(), counts=tier_counts(current_user),
                           can_edit=current_user.has_role("admin"))


@bp.route("/tiers/handbook.pdf")
def handbook_pdf():
    """The tier policy handbook as PDF: every tier's service policy in force, and the
    year's satisfaction per tier over the requests the user may see."""
    return pdf_response(reports.tier_handbook_pdf(current_user), "tier-handbook.pdf")


@bp.route("/tiers/<code>")
def detail(code):
    """One tier's policy in force, its history with what changed, and how many customers
    hold the tier and are overdue. Prints as a one-tier handbook page."""
    tier = get_or_404(Tier, where=Tier.code == code)
    policies = current_policies()
    holders, late = tier_counts(current_user, tier_id=tier.id).get(tier.id, (0, 0))
    return render_template("tiers/detail.html", tier=tier, policy=current_policy(tier),
                           history=policy_history(tier), holders=holders, late=late,
                           late_by_kind=_late_by_kind(tier, policies),
                           service_terms=SERVICE_KINDS,
                           today=datetime.date.today(), can_edit=current_user.has_role("admin"))


def _late_by_kind(tier, policies):
    counts = overdue_counts(current_user, policies={tier.id: policies[tier.id]}) \
        if tier.id in policies else {}
    return counts


@bp.route("/tiers/new", methods=["GET", "POST"])
@role_required("admin")
def create():
    """A new tier at the bottom of the list."""
    return _tier_form(None)


@bp.route("/tiers/<code>/edit", methods=["GET", "POST"])
@role_required("admin")
def edit(code):
    """Change a tier's code, names or colour."""
    return _tier_form(get_or_404(Tier, where=Tier.code == code))


def _tier_form(tier):
    form = TierForm(obj=tier)
    if form.validate_on_submit():
        try:
            tier = save_tier(tier, current_user, **form.values())
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("Tier %(tier)s was saved.", tier=tier.display_name), "success")
            return redirect(url_for("tiers.detail", code=tier.code), 303)
    return render_template("tiers/tier_form.html", form=form, tier=tier)


@bp.route("/tiers/<code>/move", methods=["POST"])
@role_required("admin")
def move(code):
    """Move a tier one place up or down the list."""
    tier = get_or_404(Tier, where=Tier.code == code)
    form = MoveTierForm()
    if form.validate_on_submit():
        try:
            move_tier(tier, current_user, -1 if form.to.data == "up" else 1)
        except DomainError as error:
            flash(str(error), "error")
    return redirect(url_for("tiers.index"), 303)


@bp.route("/tiers/<code>/policy", methods=["GET", "POST"])
@role_required("admin")
def edit_policy(code):
    """A new version of the tier's policy, from its effective date; the old ones stay."""
    tier = get_or_404(Tier, where=Tier.code == code)
    latest = tier.policies.order_by(-tier.policies.model.version).first()
    form = PolicyForm(obj=latest if request.method == "GET" else None)
    if request.method == "GET":
        form.effective_on.data = datetime.date.today()
    if form.validate_on_submit():
        try:
            save_policy(tier, current_user, **form.values())
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The policy of %(tier)s was saved as a new version.",
                    tier=tier.display_name), "success")
            return redirect(url_for("tiers.detail", code=tier.code), 303)
    return render_template("tiers/policy_form.html", form=form, tier=tier)


# --- Compliance ---------------------------------------------------------------

@bp.route("/compliance")
def compliance():
    """Customers overdue for contact, visit or sales analysis per their tier's policy,
    per branch and account manager, most overdue first."""
    form = ComplianceFilterForm(request.args, user=current_user)
    form.validate()
    kind = form.chosen_kind()
    branch_id, manager_id = chosen_id(form.branch), chosen_id(form.manager)
    today = datetime.date.today()
    policies = current_policies(today)
    size, page = current_app.config["PAGE_SIZE"], form.current_page()
    args = {k: v for k, v in request.args.items() if v and k != "page"}
    context = dict(form=form, kind=kind, page=page, size=size, args=args, tiers=Tier.by_id())
    paging = htmx and htmx.target == "overdue"  # the pager redraws the list alone
    total = None
    if not paging:  # the whole page: its summary's counts give the list's total too
        context.update(_compliance_summary(form, branch_id, manager_id, today, policies))
        total = context["counts"][kind]
        # Service requests past their response time: overdue commitments too.
        context["breached_count"], context["breached_rows"] = breached(current_user, limit=5)
        context.update(request_kinds=translated(REQUEST_KINDS), timer=timer,
                       countdown=countdown)
    context["total"], context["rows"] = overdue_page(
        current_user, kind, today, branch_id=branch_id, manager_id=manager_id,
        policies=policies, page=page, size=size, total=total)
    if paging:
        response = make_response(render_template("tiers/_overdue.html", **context))
        response.headers["HX-Push-Url"] = url_for(
            "tiers.compliance", page=page if page > 1 else None, **args)
        return response
    return render_template("tiers/compliance.html", **context)


def _compliance_summary(form, branch_id, manager_id, today, policies):
    """Counts per kind (of the account manager chosen, or of all), and per branch
    (company-wide users) or per account manager (within one branch), from one grouped
    count."""
    by_manager = bool(current_user.is_branch_scoped or branch_id)
    grouped = overdue_counts(current_user, today, policies, branch_id=branch_id,
                             group_by="account_manager" if by_manager else "branch")
    if manager_id:  # the form offers a branch's managers: grouped by manager here
        counts = grouped.get(manager_id, dict.fromkeys(SERVICE_KINDS, 0))
    else:
        counts = {kind: sum(g[kind] for g in grouped.values()) for kind in SERVICE_KINDS}
    # The filter form offers the groups by name already: the branches the user may
    # read, or the branch's active account managers.
    offered = form.manager if by_manager else form.branch
    names = {int(choice.value): choice.label for choice in offered.choices if choice.value}
    unnamed = [key for key in grouped if key and key not in names]
    if by_manager and unnamed:  # deactivated, or moved on, and still holding customers
        names.update(User.select(User.id, User.display_name)
                     .where(User.id.in_(unnamed)).tuples())
    groups = sorted(((names.get(key, "—"), key, values) for key, values in grouped.items()),
                    key=lambda g: (-sum(g[2].values()), g[0]))
    return {"counts": counts, "groups": groups, "by_group": grouped, "by_manager": by_manager}


@bp.route("/compliance/due")
def due():
    """My customers whose contact, visit or sales analysis falls due this week, and how
    many of mine are overdue already."""
    today = datetime.date.today()
    return render_template("tiers/due.html", items=due_soon(current_user, today),
                           overdue=overdue_counts(current_user, today,
                                                  manager_id=current_user.id),
                           tiers=Tier.by_id())
