"""Administration of users and branches."""
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
from flask_babel import ngettext
from peewee import fn

from extensions import htmx
from forms.admin import BranchForm, UserFilterForm, UserForm
from models import Branch, Customer, DomainError, User
from models.admin import find_users, save_branch, save_user
from models.people import LANGUAGES, ROLES
from services.formatting import translated

from .access import get_or_404, role_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/users")
@role_required("admin")
def users():
    """Users with roles and branch, filtered and a page at a time; htmx gets the table."""
    form = UserFilterForm(request.args)
    query = find_users(**form.filters())
    size, page = current_app.config["PAGE_SIZE"], form.value("page", 1)
    context = dict(form=form, users=list(query.paginate(page, size)), total=query.count(),
                   page=page, size=size, args=form.args(),
                   languages=translated(LANGUAGES), role_labels=translated(ROLES))
    if htmx:
        response = make_response(render_template("admin/_users.html", **context))
        response.headers["HX-Push-Url"] = url_for(
            "admin.users", page=page if page > 1 else None, **form.args())
        return response
    return render_template("admin/users.html", **context)


@bp.route("/users/new", methods=["GET", "POST"])
@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@role_required("admin")
def user_form(user_id=None):
    """Create or edit a user; errors re-render the form and save nothing."""
    user = get_or_404(User, user_id) if user_id else None
    form = UserForm(obj=user, creating=user is None)
    if user is not None and not form.is_submitted():
        form.roles.data = user.roles
        form.branch.data = user.branch_id or 0
    if form.validate_on_submit():
        try:
            saved = save_user(user, username=form.username.data.strip(),
                              display_name=form.display_name.data.strip(), roles=form.roles.data,
                              branch=form.selected_branch(), language=form.language.data,
                              active=form.active.data, password=form.password.data or None,
                              sales_cycle_days=form.sales_cycle_days.data,
                              email=(form.email.data or "").strip(),
                              mobile=(form.mobile.data or "").replace(" ", "").replace("-", ""))
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The user was saved."), "success")
            if not saved.active:
                held = Customer.select().where(Customer.account_manager == saved.id).count()
                if held:  # someone who left: their book goes to the reassignment's preview
                    flash(ngettext("%(name)s still holds %(num)s customer: choose who takes "
                                   "it over.", "%(name)s still holds %(num)s customers: "
                                   "choose who takes them over.", held,
                                   name=saved.display_name), "warning")
                    return redirect(url_for("allocation.reassign", branch=saved.branch_id,
                                            from_manager=saved.id, preview=1), 303)
            return redirect(url_for("admin.users"), 303)
    return render_template("admin/user_form.html", form=form, user=user)


@bp.route("/branches")
@role_required("admin")
def branches():
    """Every branch with its number of users."""
    users = User.select(fn.COUNT(User.id)).where(User.branch == Branch.id)
    customers = Customer.select(fn.COUNT(Customer.id)).where(Customer.branch == Branch.id)
    rows = Branch.select(Branch, users.alias("user_count"),
                         customers.alias("customer_count")).order_by(Branch.code)
    return render_template("admin/branches.html", branches=rows)


@bp.route("/branches/new", methods=["GET", "POST"])
@bp.route("/branches/<int:branch_id>", methods=["GET", "POST"])
@role_required("admin")
def branch_form(branch_id=None):
    """Create or edit a branch."""
    branch = get_or_404(Branch, branch_id) if branch_id else None
    form = BranchForm(obj=branch)
    if form.validate_on_submit():
        try:
            save_branch(branch, code=form.code.data.strip(), name=form.name.data.strip(),
                        region=(form.region.data or "").strip())
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The branch was saved."), "success")
            return redirect(url_for("admin.branches"), 303)
    return render_template("admin/branch_form.html", form=form, branch=branch)
