"""Tier change requests, the approval queue and the approval rules."""
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from extensions import htmx
from forms.approvals import (
    BulkDecisionForm,
    DecisionForm,
    QueueFilterForm,
    RemindForm,
    RequestForm,
    RuleForm,
    WithdrawForm,
)
from models import ApprovalStep, Customer, DomainError, NotFound, Tier, TierChangeRequest
from models.approvals import (
    SOURCES,
    decide,
    decide_many,
    decision_right,
    file_request,
    last_reminded,
    may_file,
    pending_count,
    pending_page,
    provisional_due,
    remind,
    requests_of,
    reset_rule,
    rule_keys,
    rule_table,
    save_rule,
    withdraw,
)
from models.customers import tier_history_of, years_of
from models.notices import notices_about
from models.people import ROLES
from services.formatting import translated
from services.reports import sheets_data

from .access import get_or_404, role_required

bp = Blueprint("approvals", __name__)


@bp.app_context_processor
def tier_change_helpers():
    """What the customer page shows of its requests, and whether the user may file one."""
    return {"tier_change_requests_of": requests_of, "may_file_tier_change": may_file}


@bp.context_processor
def labels():
    return {"sources": translated(SOURCES), "role_labels": translated(ROLES)}


@bp.route("/approvals")
def queue_page():
    """My pending approval steps (my branch's when I am a branch manager), filtered,
    oldest first, with bulk decisions."""
    form = QueueFilterForm(request.args, user=current_user)
    form.validate()
    filters = form.filters()
    size, page = current_app.config["PAGE_SIZE"], form.current_page()
    total, rows = pending_page(current_user, page, size, **filters)
    if not any(filters.values()):
        g.pending_count = total  # the navigation's badge
    args = {k: v for k, v in request.args.items() if v and k != "page"}
    context = dict(form=form, rows=rows, total=total, page=page,
                   size=size, args=args, tiers={t.id: t for t in form.tiers},
                   bulk=BulkDecisionForm())
    if htmx:
        response = make_response(render_template("approvals/_queue.html", **context))
        response.headers["HX-Push-Url"] = url_for(
            "approvals.queue_page", page=page if page > 1 else None, **args)
        return response
    return render_template("approvals/queue.html", **context)


@bp.route("/approvals/decide", methods=["POST"])
def decide_bulk():
    """Approve or reject every ticked step with one comment; says what was refused."""
    form = BulkDecisionForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
    else:
        done, refused = decide_many(form.steps.data, current_user, form.decision.data,
                                    form.comment.data)
        if done:
            message = ngettext("%(num)s request approved or passed on.",
                               "%(num)s requests approved or passed on.", len(done)) \
                if form.decision.data == "approve" else ngettext(
                "%(num)s request rejected.", "%(num)s requests rejected.", len(done))
            flash(message, "success")
        for _step, reason in refused[:10]:
            flash(reason, "error")
        if len(refused) > 10:
            flash(_("%(num)s more were refused.", num=len(refused) - 10), "error")
    return redirect(request.referrer if _same_site(request.referrer)
                    else url_for("approvals.queue_page"), 303)


def _same_site(url):
    return bool(url) and url.startswith(request.host_url + "approvals")


@bp.route("/tier-changes/<int:request_id>")
def detail(request_id):
    """One request: customer, from → to, reason, the assessment behind it, every step
    with who, when, decision and comment. htmx gets the inline panel."""
    change = get_or_404(TierChangeRequest, request_id)
    context = _detail_context(change)
    if htmx:
        return render_template("approvals/_request.html", inline=True, **context)
    return render_template("approvals/detail.html", inline=False, **context)


def _detail_context(change, form=None):
    pending = change.pending_step()
    customer = Customer.get_by_id(change.customer_id)
    refusal, standing_in_for = (decision_right(pending, current_user, change)
                                if pending is not None else (True, None))
    can_decide = refusal is None
    if form is None and pending is not None:
        form = DecisionForm(step=pending.id)
    # What the approver judges by: how the customer was graded before, its latest
    # year's figures, and the assessment's scores when the request came from a cycle.
    years = list(years_of(customer=customer.id))
    return dict(change=change, customer=customer, steps=change.steps(), pending=pending,
                history=list(tier_history_of(customer=customer.id)),
                last_year=years[-1] if years else None,
                sheet=sheets_data([change.assessment])[0] if change.assessment_id else None,
                notices=notices_about(change),
                can_decide=can_decide, standing_in_for=standing_in_for, form=form,
                withdraw_form=WithdrawForm(),
                remind_form=RemindForm(), last_reminded=last_reminded(change),
                can_withdraw=change.status == "open"
                and change.requested_by_id == current_user.id)


@bp.route("/tier-changes/<int:request_id>/decide", methods=["POST"])
def decide_one(request_id):
    """Approve or reject the request's pending step."""
    change = get_or_404(TierChangeRequest, request_id)
    form = DecisionForm()
    ok = False
    if form.validate_on_submit():
        try:
            step_id = int(form.step.data)
        except ValueError:
            abort(400)
        if not ApprovalStep.select().where(ApprovalStep.id == step_id,
                                           ApprovalStep.request == change.id).exists():
            abort(404)
        try:
            decide(step_id, current_user, form.decision.data, form.comment.data)
        except NotFound:
            abort(404)
        except DomainError as error:
            flash(str(error), "error")
        else:
            ok = True
            flash(_("Your decision was saved."), "success")
    else:
        flash(_("Approve or reject."), "error")
    change = TierChangeRequest.get_by_id(change.id)
    if htmx:
        # The navigation's count follows the decision (out of band).
        response = make_response(render_template(
            "approvals/_request.html", inline=True, badge=pending_count(current_user),
            **_detail_context(change)))
        if ok:
            response.headers["HX-Trigger"] = "approvals-changed"
        return response
    return redirect(url_for("approvals.detail", request_id=change.id), 303)


@bp.route("/tier-changes/<int:request_id>/remind", methods=["POST"])
def remind_one(request_id):
    """The requester reminds (催办) the people the open request waits for."""
    change = get_or_404(TierChangeRequest, request_id)
    if RemindForm().validate_on_submit():
        try:
            people = remind(change, current_user)
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(ngettext("%(num)s approver was reminded.", "%(num)s approvers were reminded.",
                           len(people)), "success")
    return redirect(url_for("approvals.detail", request_id=change.id), 303)


@bp.route("/tier-changes/<int:request_id>/withdraw", methods=["POST"])
def withdraw_one(request_id):
    """The requester withdraws the open request."""
    change = get_or_404(TierChangeRequest, request_id)
    form = WithdrawForm()
    if form.validate_on_submit():
        try:
            withdraw(change, current_user, form.comment.data)
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The request was withdrawn."), "success")
    return redirect(url_for("approvals.detail", request_id=change.id), 303)


@bp.route("/customers/<int:customer_id>/tier-change", methods=["GET", "POST"])
@role_required("branch_manager", "sales_rep")
def file(customer_id):
    """A mid-year tier change for the customer, with a reason, by its account manager
    or branch manager."""
    customer = get_or_404(Customer, customer_id)
    due = provisional_due(customer)
    form = RequestForm(customer=customer, provisional_due=due)
    returned = _returned_request(customer, request.args.get("again", type=int))
    if returned is not None and not form.is_submitted():
        # Filing again what was returned for changes: as it was, to change.
        form.to_tier.data, form.reason.data = returned.to_tier_id, returned.reason
        form.source.data = returned.source if returned.source != "cycle" else "mid_year"
    if form.validate_on_submit():
        try:
            change = file_request(customer, current_user, Tier.get_or_none(
                Tier.id == form.to_tier.data), form.reason.data, form.effective_on.data,
                source=form.source.data)
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The request was filed; it now waits for approval."), "success")
            return redirect(url_for("approvals.detail", request_id=change.id), 303)
    return render_template("approvals/file.html", form=form, customer=customer,
                           provisional_due=due, returned=returned)


def _returned_request(customer, request_id):
    """The current user's request `request_id` about `customer` that was returned for
    changes, or None."""
    if not request_id:
        return None
    return TierChangeRequest.get_or_none(
        TierChangeRequest.id == request_id, TierChangeRequest.customer == customer.id,
        TierChangeRequest.status == "returned",
        TierChangeRequest.requested_by == current_user.id)


# --- Rules --------------------------------------------------------------------

@bp.route("/approvals/rules")
@role_required("admin")
def rules():
    """Who approves which change, in order; the defaults until an admin sets a rule."""
    rows = [(key, label, roles, stored, limits,
             RuleForm(prefix=key, roles=roles, limits=limits))
            for key, label, roles, stored, limits in rule_table()]
    return render_template("approvals/rules.html", rows=rows)


@bp.route("/approvals/rules/<key>", methods=["POST"])
@role_required("admin")
def save_rule_view(key):
    """Store one rule's ordered approvers, or reset it to the default."""
    if key not in dict(rule_keys()):
        abort(404)
    form = RuleForm(prefix=key)
    if form.validate_on_submit():
        try:
            if form.action.data == "reset":
                reset_rule(key, current_user)
                flash(_("The rule is back to its default."), "success")
            else:
                save_rule(key, current_user, form.roles(), **form.limits())
                flash(_("The rule was saved. Requests filed before keep their steps."),
                      "success")
        except DomainError as error:
            flash(str(error), "error")
    else:
        flash(next((error for errors in form.errors.values() for error in errors),
                   _("Choose roles from the list.")), "error")
    return redirect(url_for("approvals.rules"), 303)
