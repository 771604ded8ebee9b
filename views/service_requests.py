"""Service requests (服务请求): the list, logging one, its page with the moves, the
resolution and the follow-up call, and satisfaction per tier, branch and owner."""
from flask import (
    Blueprint,
    abort,
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
from forms.service_requests import (
    FollowUpForm,
    MoveRequestForm,
    SatisfactionFilterForm,
    ServiceRequestFilterForm,
    ServiceRequestForm,
    WorkingHoursForm,
)
from i18n import company_zone
from models import Branch, Customer, DomainError, Tier, User, utcnow
from models.service_requests import (
    CHANNELS,
    KINDS,
    MOVE_LABELS,
    REOPEN_LABEL,
    SETTING_ID,
    STATUSES,
    TIMER_STATES,
    WEEKDAYS,
    ServiceRequest,
    WorkingHours,
    clear_working_hours,
    clock_text,
    countdown,
    find_requests,
    log_request,
    move_request,
    record_follow_up,
    request_rows,
    satisfaction_by,
    save_working_hours,
    timer,
)
from services.formatting import translated

from .access import get_or_404, role_required

bp = Blueprint("service_requests", __name__, url_prefix="/service-requests")

# The largest id a table holds (PostgreSQL's integer): a larger one would not reach it.
MAX_ID = 2**31 - 1
# Who logs and works requests; branch-scoped roles only their branch's.
EDIT_ROLES = ("admin", "branch_manager", "sales_rep", "sales_director")


@bp.context_processor
def labels():
    """The label tables, translated once rather than once per row, and the clock."""
    return {"request_kinds": translated(KINDS), "request_channels": translated(CHANNELS),
            "request_statuses": translated(STATUSES), "timer_states": translated(TIMER_STATES),
            "timer": timer, "countdown": countdown}


@bp.route("")
def index():
    """The requests the user may see, filtered by status, kind, response time and (for
    those who see every branch) branch, searched by customer, newest first, a page at a
    time. htmx requests get only the results; the URL carries the whole state."""
    form = ServiceRequestFilterForm(request.args, user=current_user)
    form.validate()
    now = utcnow()
    query = find_requests(current_user, now=now, **form.filters())
    size, page = current_app.config["PAGE_SIZE"], form.current_page()
    total = query.count()
    rows = list(request_rows(query).paginate(page, size))
    args = {k: v for k, v in request.args.items() if v and k != "page"}
    context = dict(form=form, rows=rows, total=total, page=page, size=size, args=args, now=now,
                   can_edit=current_user.has_role(*EDIT_ROLES),
                   is_admin=current_user.has_role("admin"))
    if htmx:
        response = make_response(render_template("service_requests/_results.html", **context))
        response.headers["HX-Push-Url"] = url_for("service_requests.index",
                                                  page=page if page > 1 else None, **args)
        return response
    return render_template("service_requests/index.html", **context)


@bp.route("/new", methods=["GET", "POST"])
@role_required(*EDIT_ROLES)
def create():
    """Log a request of a customer of the user's branch (`?customer=` fills it in from
    the customer's page; another branch's customer is a 404)."""
    form = ServiceRequestForm(user=current_user)
    customer_id = request.args.get("customer", type=int)
    if customer_id is not None and not 1 <= customer_id <= MAX_ID:  # no such record
        abort(404)
    customer = get_or_404(Customer, customer_id) if customer_id else None
    if request.method == "GET" and customer is not None:
        form.customer_code.data = customer.code
        if customer.account_manager_id and any(
                c.value == str(customer.account_manager_id) for c in form.owner.choices):
            form.owner.data = str(customer.account_manager_id)
    if form.validate_on_submit():
        try:
            service_request = log_request(form.customer, current_user, **form.values())
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The request was logged."), "success")
            return redirect(url_for("service_requests.detail",
                                    service_request_id=service_request.id), 303)
    return render_template("service_requests/form.html", form=form, customer=customer)


def _detail_context(service_request, move_form=None, follow_up_form=None):
    customer = Customer.get_by_id(service_request.customer_id)
    people = {u.id: u for u in User.select().where(User.id.in_(
        [i for i in (service_request.owner_id, service_request.created_by_id,
                     service_request.followed_up_by_id) if i]))}
    return dict(
        item=service_request, customer=customer,
        branch=Branch.get_by_id(customer.branch_id),
        tier=Tier.get_or_none(Tier.id == service_request.tier_id)
        if service_request.tier_id else None,
        people=people, clock=timer(service_request),
        move_form=move_form or MoveRequestForm(), follow_up_form=follow_up_form or FollowUpForm(),
        move_labels={**translated(MOVE_LABELS), "reopen": str(REOPEN_LABEL)},
        can_edit=current_user.has_role(*EDIT_ROLES))


@bp.route("/<int:service_request_id>")
def detail(service_request_id):
    """One request: the customer, the response clock, the resolution and the follow-up
    call, with the moves the status allows."""
    service_request = get_or_404(ServiceRequest, service_request_id)
    return render_template("service_requests/detail.html", **_detail_context(service_request))


@bp.route("/<int:service_request_id>/move", methods=["POST"])
@role_required(*EDIT_ROLES)
def move(service_request_id):
    """Move the request on (start, resolve with its resolution, reopen, close); a
    refusal shows on the page, nothing saved."""
    service_request = get_or_404(ServiceRequest, service_request_id)
    form = MoveRequestForm()
    if form.validate_on_submit():
        try:
            move_request(service_request, current_user, form.to.data, form.resolution.data)
        except DomainError as error:
            flash(str(error), "error")
            return render_template("service_requests/detail.html", **_detail_context(
                service_request, move_form=form)), 422
        flash(_("The request is now %(status)s.", status=STATUSES[form.to.data]), "success")
        return redirect(url_for("service_requests.detail",
                                service_request_id=service_request.id), 303)
    return render_template("service_requests/detail.html",
                           **_detail_context(service_request, move_form=form)), 422


@bp.route("/<int:service_request_id>/follow-up", methods=["POST"])
@role_required(*EDIT_ROLES)
def follow_up(service_request_id):
    """Record the follow-up call of a resolved complaint with the customer's
    satisfaction (1–5) and a note."""
    service_request = get_or_404(ServiceRequest, service_request_id)
    form = FollowUpForm()
    if form.validate_on_submit():
        try:
            record_follow_up(service_request, current_user, form.score(), form.note.data)
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The follow-up call was recorded."), "success")
            return redirect(url_for("service_requests.detail",
                                    service_request_id=service_request.id), 303)
    return render_template("service_requests/detail.html",
                           **_detail_context(service_request, follow_up_form=form)), 422


@bp.route("/satisfaction")
def satisfaction():
    """The year's follow-up calls: how many, the average satisfaction and the share
    satisfied (4–5), per tier, branch and owner, over the requests the user may see."""
    form = SatisfactionFilterForm(request.args)
    form.validate()
    year = form.chosen_year()
    groups = {group: satisfaction_by(current_user, year, group)
              for group in ("tier", "branch", "owner")}
    names = {
        "tier": {t.id: t.display_name for t in Tier.in_order()},
        "branch": dict(Branch.names_for(current_user)),
        "owner": dict(User.select(User.id, User.display_name).where(
            User.id.in_([key for key, *_rest in groups["owner"] if key])).tuples()),
    }
    total = sum(row[1] for row in groups["tier"])
    average = (sum(row[1] * row[2] for row in groups["tier"]) / total) if total else None
    satisfied = sum(row[3] for row in groups["tier"])
    return render_template("service_requests/satisfaction.html", form=form, year=year,
                           groups=groups, names=names, total=total, average=average,
                           satisfied=satisfied)


@bp.route("/working-hours", methods=["GET", "POST"])
@role_required("admin")
def working_hours():
    """The company's working hours that response times count in, or calendar hours;
    requests logged from then on follow it. A refusal re-renders the form, nothing
    saved."""
    hours = WorkingHours.get_or_none(WorkingHours.id == SETTING_ID)
    form = WorkingHoursForm()
    if not form.is_submitted():
        form.fill(hours)
    if form.validate_on_submit():
        try:
            if form.counted.data == "working":
                save_working_hours(current_user, form.days.data, form.starts.data,
                                   form.ends.data)
            else:
                clear_working_hours(current_user)
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The working hours were saved."), "success")
            return redirect(url_for("service_requests.working_hours"), 303)
    return _working_hours_page(form, hours), 422 if form.is_submitted() else 200


def _working_hours_page(form, hours):
    def day_names(days):
        return _(", ").join(str(WEEKDAYS[d]) for d in days)
    return render_template("service_requests/working_hours.html", form=form, hours=hours,
                           day_names=day_names, clock=clock_text, zone=company_zone().key)
