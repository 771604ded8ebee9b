"""The customer book: list, detail, create and edit, contacts, activities,
import and export."""
import io

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from extensions import htmx
from forms.customers import (
    ActivityForm,
    ContactForm,
    CustomerFilterForm,
    CustomerForm,
    ImportForm,
    PortfolioFiguresForm,
)
from i18n import lazy_gettext as _l
from models import (
    Contact,
    Customer,
    DomainError,
    ImportBatch,
    audit,
)
from models.allocation import propose_manager
from models.customers import (
    INDUSTRIES,
    KINDS,
    NATURES,
    VALUE_CLASSES,
    VALUE_CLASSES_SHORT,
    activities_of,
    add_contact,
    contacts_of,
    count_found,
    customer_page,
    find_customers,
    log_activity,
    normalise_query,
    ownership_history,
    particulars,
    remove_contact,
    save_customer,
    save_portfolio_figures,
    search_page,
    tier_history_of,
    value_classes_of,
    years_of,
)
from models.cycles import sheets_of_customer
from models.portfolio import placement
from models.service_requests import KINDS as REQUEST_KINDS
from models.service_requests import STATUSES as REQUEST_STATUSES
from models.service_requests import TIMER_STATES, countdown, of_customer, timer
from services.customer_io import apply_import, discard_import, export_customers, load_preview
from services.formatting import number, translated
from services.jobs import queue_preview

from .access import get_or_404, role_required

bp = Blueprint("customers", __name__, url_prefix="/customers")

# How the import preview names what each row will do.
IMPORT_ACTIONS = {"create": _l("New"), "update": _l("Update"), "unchanged": _l("Unchanged"),
                  "error": _l("Error")}

# Who keeps the customer book; branch-scoped roles keep only their branch.
EDIT_ROLES = ("admin", "branch_manager", "sales_rep", "sales_director")


@bp.context_processor
def labels():
    """The label tables, translated once rather than once per row."""
    return {"kinds": translated(KINDS), "natures": translated(NATURES),
            "industries": translated(INDUSTRIES), "action_labels": translated(IMPORT_ACTIONS),
            "value_class_labels": translated(VALUE_CLASSES),
            "value_class_short": translated(VALUE_CLASSES_SHORT)}


def _filtered(form):
    return find_customers(current_user, **form.filters())


@bp.route("")
def index():
    """Search, filter, sort and page the customers the user may see.

    htmx requests get only the results; the URL carries the whole state.
    """
    form = CustomerFilterForm(request.args, user=current_user)
    form.validate()
    filters = form.filters()
    query = find_customers(current_user, **filters)
    size = current_app.config["PAGE_SIZE"]
    page = form.current_page()
    found = search_page(query, *form.ordering(), page, size,
                        current_app.config["SEARCH_COUNT_CAP"]) \
        if normalise_query(filters["q"]) else None
    if found:
        total, customers, capped = found
    else:
        total, capped = count_found(query), False
        customers = list(customer_page(query, *form.ordering()).paginate(page, size))
    # The state worth keeping in links and the URL: filters that are set.
    args = {k: v for k, v in request.args.items()
            if v and k != "page" and (k, v) not in (("sort", "code"), ("dir", "asc"))}
    context = dict(form=form, customers=customers, total=total, capped=capped, page=page,
                   size=size,
                   tiers={tier.id: tier for tier in form.tiers},
                   args=args, can_edit=current_user.has_role(*EDIT_ROLES))
    if htmx:
        # Push the URL without the empty filters the form sent along.
        response = make_response(render_template("customers/_results.html", **context))
        response.headers["HX-Push-Url"] = url_for("customers.index", page=page if page > 1
                                                  else None, **args)
        return response
    return render_template("customers/index.html", **context)


@bp.route("/<int:customer_id>")
def detail(customer_id):
    """One customer: particulars, contacts, tier history, figures, activities."""
    found = list(particulars(current_user.is_branch_scoped, customer=customer_id,
                             branch=current_user.branch_id))
    # Not visible: the one access check answers (404, and audited when it exists).
    customer = found[0] if found else get_or_404(Customer, customer_id)
    return render_template("customers/detail.html", **_detail_context(customer))


def _detail_context(customer, activity_form=None, contact_form=None, portfolio_form=None):
    years = list(years_of(customer=customer.id))
    return dict(
        customer=customer,
        contacts=list(contacts_of(customer=customer.id)),
        history=list(tier_history_of(customer=customer.id)),
        years=years,
        activities=_activities(customer),
        assessments=_assessments(customer),
        activity_form=activity_form or ActivityForm(),
        contact_form=contact_form or ContactForm(),
        portfolio_form=portfolio_form or PortfolioFiguresForm(),
        can_edit=current_user.has_role(*EDIT_ROLES),
        value_classes=value_classes_of([customer.id]).get(customer.id, []),
        placement=placement(years),
        ownership=ownership_history(customer),
        **_service_requests(customer),
    )


def _service_requests(customer):
    """The customer's latest service requests, with their response clocks."""
    count, rows = of_customer(customer.id)
    return {"service_requests": [(r, timer(r)) for r in rows], "service_request_count": count,
            "request_labels": {"kinds": translated(REQUEST_KINDS),
                               "statuses": translated(REQUEST_STATUSES),
                               "timers": translated(TIMER_STATES)},
            "countdown": countdown}


def _assessments(customer):
    """The customer's assessment sheets, newest cycle first, with the final grade."""
    return list(sheets_of_customer(current_user, customer.id))


def _activities(customer, limit=50):
    return list(activities_of(customer=customer.id, limit=limit))


def _propose(form):
    """Select the manager the branch's allocation rules propose for the customer the
    form describes; returns the rule that proposed them, or None."""
    for select in (form.branch, form.industry, form.nature):
        offered = [choice.value for choice in select.choices]
        if select.data not in offered:  # none chosen yet: the first, as the browser shows
            select.data = offered[0] if offered else None
    manager, rule = propose_manager(form.branch.data, form.region.data, form.industry.data,
                                    form.nature.data)
    if manager is not None:
        form.account_manager.data = manager.id
    return rule


@bp.route("/new", methods=["GET", "POST"])
@role_required(*EDIT_ROLES)
def create():
    """A new customer in one of the user's branches, with the account manager the
    allocation rules propose (which the user may change)."""
    form = CustomerForm(user=current_user)
    rule = None if form.is_submitted() else _propose(form)
    if form.validate_on_submit():
        try:
            customer = save_customer(None, current_user, **form.values())
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("Customer %(name)s was created.", name=customer.name), "success")
            return redirect(url_for("customers.detail", customer_id=customer.id), 303)
    return render_template("customers/form.html", form=form, customer=None, rule=rule)


@bp.route("/new/manager")
@role_required(*EDIT_ROLES)
def proposed_manager():
    """The new-customer form's account manager field, with the one the allocation rules
    propose for the branch, region, industry and nature filled in so far. Asked for as a
    page (a plain GET, a history restore), the whole form with those filled in."""
    form = CustomerForm(request.args, user=current_user)
    rule = _propose(form)
    if not htmx or htmx.history_restore_request:
        return render_template("customers/form.html", form=form, customer=None, rule=rule)
    return render_template("customers/_manager_field.html", form=form, rule=rule,
                           proposing=True)


@bp.route("/<int:customer_id>/edit", methods=["GET", "POST"])
@role_required(*EDIT_ROLES)
def edit(customer_id):
    """Change a customer's particulars; the tier is not one of them."""
    customer = get_or_404(Customer, customer_id)
    form = CustomerForm(obj=customer, user=current_user)
    if not form.is_submitted():
        form.branch.data = customer.branch_id
        form.account_manager.data = customer.account_manager_id or 0
    if form.validate_on_submit():
        try:
            save_customer(customer, current_user, **form.values())
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The changes were saved."), "success")
            return redirect(url_for("customers.detail", customer_id=customer.id), 303)
    return render_template("customers/form.html", form=form, customer=customer)


@bp.route("/<int:customer_id>/activities", methods=["POST"])
@role_required(*EDIT_ROLES)
def add_activity(customer_id):
    """Log a call, visit, e-mail… in one step; htmx gets the refreshed timeline."""
    customer = get_or_404(Customer, customer_id)
    form = ActivityForm()
    if form.validate_on_submit():
        try:
            log_activity(customer, current_user, form.kind.data, form.occurred_on.data,
                         form.notes.data)
        except DomainError as error:
            form.occurred_on.errors.append(str(error))
        else:
            if not htmx:
                flash(_("The contact was logged."), "success")
                return redirect(url_for("customers.detail", customer_id=customer.id), 303)
            form = ActivityForm(formdata=None)
    if htmx:
        return render_template("customers/_activities.html", customer=customer,
                               activities=_activities(customer), activity_form=form,
                               can_edit=True)
    return render_template("customers/detail.html",
                           **_detail_context(customer, activity_form=form))


@bp.route("/<int:customer_id>/portfolio", methods=["POST"])
@role_required(*EDIT_ROLES)
def save_portfolio(customer_id):
    """Set a year's share of wallet and upcoming purchase volume; a refused value is
    shown beside its field and nothing is saved."""
    customer = get_or_404(Customer, customer_id)
    form = PortfolioFiguresForm()
    if form.validate_on_submit():
        try:
            save_portfolio_figures(customer, current_user, **form.values())
        except DomainError as error:
            form.form_errors.append(str(error))
        else:
            flash(_("The share and upcoming volume for %(year)s were saved.",
                    year=form.year.data), "success")
            return redirect(url_for("customers.detail", customer_id=customer.id,
                                    _anchor="figures"), 303)
    found = list(particulars(current_user.is_branch_scoped, customer=customer.id,
                             branch=current_user.branch_id))
    return render_template("customers/detail.html",
                           **_detail_context(found[0], portfolio_form=form))


@bp.route("/<int:customer_id>/contacts", methods=["POST"])
@role_required(*EDIT_ROLES)
def add_contact_person(customer_id):
    """Add a contact person; htmx gets the refreshed contact list."""
    customer = get_or_404(Customer, customer_id)
    form = ContactForm()
    if form.validate_on_submit():
        add_contact(customer, name=form.name.data.strip(), title=form.title.data or "",
                    phone=form.phone.data or "", email=form.email.data or "")
        if not htmx:
            return redirect(url_for("customers.detail", customer_id=customer.id), 303)
        form = ContactForm(formdata=None)
    return _contacts_response(customer, form)


@bp.route("/<int:customer_id>/contacts/<int:contact_id>/delete", methods=["POST"])
@role_required(*EDIT_ROLES)
def delete_contact(customer_id, contact_id):
    """Remove a contact person of a customer the user may edit."""
    customer = get_or_404(Customer, customer_id)
    contact = get_or_404(Contact, contact_id, where=Contact.customer == customer)
    remove_contact(contact)
    if not htmx:
        return redirect(url_for("customers.detail", customer_id=customer.id), 303)
    return _contacts_response(customer, ContactForm(formdata=None))


def _contacts_response(customer, form):
    if htmx:
        return render_template("customers/_contacts.html", customer=customer,
                               contacts=list(contacts_of(customer=customer.id)),
                               contact_form=form, can_edit=True)
    return render_template("customers/detail.html",
                           **_detail_context(customer, contact_form=form))


@bp.route("/import", methods=["GET", "POST"])
@role_required(*EDIT_ROLES)
def import_upload():
    """Upload a spreadsheet; it is read in the background, and nothing is written yet."""
    form = ImportForm()
    if form.validate_on_submit():
        upload = form.file.data
        try:
            batch = queue_preview(upload.filename, upload.read(), current_user)
        except DomainError as error:
            form.file.errors.append(str(error))
        else:
            return redirect(url_for("customers.import_preview", batch_id=batch.id), 303)
    return render_template("customers/import.html", form=form)


@bp.route("/import/<int:batch_id>", methods=["GET", "POST"])
@role_required(*EDIT_ROLES)
def import_preview(batch_id):
    """GET shows the progress of reading an upload, then its preview (htmx polls the
    progress and reloads the page when the file is read); POST confirms it (all or
    nothing)."""
    batch = _own_batch(batch_id)
    if request.method == "POST":
        try:
            counts = apply_import(batch, current_user)
        except DomainError as error:
            flash(str(error), "error")
            target = url_for("customers.import_preview", batch_id=batch.id)
        else:
            flash(_("Import finished: %(created)s created, %(updated)s updated, "
                    "%(unchanged)s unchanged.", created=number(counts["create"]),
                    updated=number(counts["update"]), unchanged=number(counts["unchanged"])),
                  "success")
            target = url_for("customers.index")
        if htmx:  # the confirm button posts with htmx, to show that it is working
            return make_response("", 204, {"HX-Redirect": target})
        return redirect(target, 303)
    if htmx:
        if batch.reading:
            return render_template("customers/_import_progress.html", batch=batch)
        return make_response("", 200, {"HX-Refresh": "true"})
    preview = load_preview(batch) if batch.payload else None
    return render_template("customers/import_preview.html", batch=batch, preview=preview)


@bp.route("/import/<int:batch_id>/discard", methods=["POST"])
@role_required(*EDIT_ROLES)
def import_discard(batch_id):
    """Drop a previewed upload without importing it."""
    batch = _own_batch(batch_id)
    try:
        discard_import(batch, current_user)
    except DomainError as error:
        flash(str(error), "error")
    else:
        flash(_("The upload was discarded; nothing was imported."), "info")
    return redirect(url_for("customers.import_upload"), 303)


def _own_batch(batch_id):
    # Not the file itself (up to 10 MB), which only the background job reads.
    columns = [f for f in ImportBatch._meta.sorted_fields if f is not ImportBatch.upload]
    batch = ImportBatch.select(*columns).where(ImportBatch.id == batch_id,
                                               ImportBatch.user == current_user.id).first()
    if batch is None:
        abort(404)
    return batch


@bp.route("/export.<any(xlsx, csv):fmt>")
def export(fmt):
    """The current filtered list as a spreadsheet, within the user's scope."""
    form = CustomerFilterForm(request.args, user=current_user)
    form.validate()
    query = _filtered(form)
    data, mimetype, filename = export_customers(customer_page(query, *form.ordering()), fmt)
    audit("customer_export", object_type="customer", after={
        "format": fmt, "rows": count_found(query), "filters": request.args.to_dict()})
    return send_file(io.BytesIO(data), mimetype=mimetype, as_attachment=True,
                     download_name=filename)
