"""Customer allocation (客户分配): a branch's rules, its managers' workload, and bulk
reassignment with a preview."""
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from forms.allocation import BranchForm, ConfirmForm, ReassignForm, RuleForm
from forms.tiers import MoveTierForm
from models import AllocationRule, Branch, DomainError, Tier, User
from models.allocation import (
    PREVIEW_ROWS,
    confirm_reassignment,
    delete_rule,
    move_rule,
    plan_reassignment,
    rules_of,
    save_rule,
    workload,
)
from models.customers import INDUSTRIES, NATURES, VALUE_CLASSES
from services.formatting import translated

from .access import get_or_404, role_required

bp = Blueprint("allocation", __name__, url_prefix="/allocation")

# Who keeps the branch's book in balance; a branch manager only their own branch's.
ROLES = ("admin", "branch_manager", "sales_director")


def _labels():
    return {"industry": translated(INDUSTRIES), "nature": translated(NATURES),
            "value_class": translated(VALUE_CLASSES), "tiers": Tier.by_id()}


@bp.route("")
@role_required(*ROLES)
def index():
    """The branch's allocation rules in order, and each account manager's book by tier
    with its overdue service, out-of-balance books highlighted."""
    form = BranchForm(request.args, user=current_user)
    form.validate()
    branch_id = form.branch_id
    if branch_id is None:
        return render_template("allocation/index.html", form=form, branch=None)
    rows, average = workload(current_user, branch_id, form.imbalance())
    return render_template(
        "allocation/index.html", form=form, branch=Branch.get_by_id(branch_id),
        rules=rules_of(branch_id), rows=rows, average=average, tiers=Tier.in_order(),
        labels=_labels())


def _rule_page(form, branch, rule=None):
    return render_template("allocation/rule.html", form=form, branch=branch, rule=rule)


@bp.route("/rules/new", methods=["GET", "POST"])
@role_required(*ROLES)
def new_rule():
    """A new rule, last in the branch's order."""
    branch_id = BranchForm(request.args, user=current_user).branch_id
    if branch_id is None:  # no branch yet
        abort(404)
    branch = get_or_404(Branch, branch_id)
    form = RuleForm(branch_id=branch.id)
    if form.validate_on_submit():
        try:
            save_rule(None, current_user, branch.id, **form.values())
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The allocation rule was saved."), "success")
            return redirect(url_for("allocation.index", branch=branch.id), 303)
    return _rule_page(form, branch)


@bp.route("/rules/<int:rule_id>/edit", methods=["GET", "POST"])
@role_required(*ROLES)
def edit_rule(rule_id):
    """Change a rule's criteria or managers; its place in the order stays."""
    rule = get_or_404(AllocationRule, rule_id)
    form = RuleForm(obj=rule, branch_id=rule.branch_id)
    if not form.is_submitted():
        form.tier.data = str(rule.tier_id or "")
        form.managers.data = [link.manager_id for link in rule.manager_links]
    if form.validate_on_submit():
        try:
            save_rule(rule, current_user, rule.branch_id, **form.values())
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The allocation rule was saved."), "success")
            return redirect(url_for("allocation.index", branch=rule.branch_id), 303)
    return _rule_page(form, rule.branch, rule)


@bp.route("/rules/<int:rule_id>/delete", methods=["POST"])
@role_required(*ROLES)
def remove_rule(rule_id):
    """Remove a rule; the ones after it move up."""
    rule = get_or_404(AllocationRule, rule_id)
    delete_rule(rule, current_user)
    flash(_("The allocation rule was removed."), "success")
    return redirect(url_for("allocation.index", branch=rule.branch_id), 303)


@bp.route("/rules/<int:rule_id>/move", methods=["POST"])
@role_required(*ROLES)
def move(rule_id):
    """One place up or down in the branch's order: the first rule that matches wins."""
    rule = get_or_404(AllocationRule, rule_id)
    form = MoveTierForm()
    if form.validate_on_submit():
        move_rule(rule, current_user, -1 if form.to.data == "up" else 1)
    return redirect(url_for("allocation.index", branch=rule.branch_id), 303)


def _preview_page(form, plan, confirm=None, error=None):
    """The choice, and when made, what it would do: counts per new manager and tier,
    the first PREVIEW_ROWS moves, and the form that confirms exactly this plan."""
    names = {}
    if plan is not None:
        ids = set(plan.per_manager) | {m.customer.account_manager_id for m in
                                       plan.moves[:PREVIEW_ROWS]}
        ids |= {c.account_manager_id for c in plan.staying[:PREVIEW_ROWS]}
        names = dict(User.select(User.id, User.display_name)
                     .where(User.id.in_([i for i in ids if i])).tuples())
        if confirm is None:
            confirm = ConfirmForm(formdata=None, user=current_user)
            for name in ("branch", "from_manager", "tier", "industry", "value_class",
                         "to_manager"):
                confirm[name].data = form[name].data
        confirm.fingerprint.data = plan.fingerprint
    tiers = Tier.in_order()
    per_manager = sorted(plan.per_manager.items(),
                         key=lambda pair: names.get(pair[0], "")) if plan else []
    return render_template("allocation/reassign.html", form=form, plan=plan, confirm=confirm,
                           names=names, tiers=tiers, tier_by_id={t.id: t for t in tiers},
                           per_manager=per_manager, preview_rows=PREVIEW_ROWS, error=error)


@bp.route("/reassign")
@role_required(*ROLES)
def reassign():
    """Choose the branch's customers (by filter or by the manager who leaves) and who
    gets them; with `preview`, what would change, per new manager and tier."""
    form = ReassignForm(request.args, user=current_user)
    form.validate()
    if form.branch_id is None or "preview" not in request.args:
        return _preview_page(form, None)
    try:
        plan = plan_reassignment(form.branch_id, **form.choice())
    except DomainError as error:
        return _preview_page(form, None, error=str(error)), 422
    return _preview_page(form, plan)


@bp.route("/reassign", methods=["POST"])
@role_required(*ROLES)
def confirm():
    """Carry out the previewed reassignment as one audited change; when the customers
    changed since the preview, nothing changes and the new preview shows."""
    form = ConfirmForm(user=current_user)
    if not form.validate_on_submit():
        return _preview_page(form, None, error=_("The preview was not sent back whole; "
                                                  "preview again.")), 400
    try:
        plan = confirm_reassignment(current_user, form.branch_id, form.fingerprint.data,
                                    **form.choice())
    except DomainError as error:
        try:
            plan = plan_reassignment(form.branch_id, **form.choice())
        except DomainError:
            plan = None
        return _preview_page(form, plan, error=str(error)), 409
    flash(ngettext("%(num)s customer was reassigned.", "%(num)s customers were reassigned.",
                   len(plan.moves)), "success")
    return redirect(url_for("allocation.index", branch=form.branch_id), 303)
