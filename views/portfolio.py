"""The share × upcoming-volume portfolio (客户组合): the chart, the counts and the
lists per quadrant; the administrator's thresholds and strategies."""
import datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from forms.portfolio import PortfolioFilterForm, PortfolioSettingForm, ValueClassRulesForm
from models import DomainError
from models.customers import VALUE_CLASSES, find_customers
from models.portfolio import (
    QUADRANTS,
    counts,
    grid_counts,
    placed_customers,
    save_setting,
    setting_history,
    setting_in_force,
    volume_range,
)
from models.value_classes import (
    GROWTH_SPAN,
    latest_year,
    rule_history,
    rules_in_force,
    save_rules,
    stored_counts,
)
from services.formatting import translated
from services.portfolio_chart import ScatterChart

from .access import role_required
from .main import id_url

bp = Blueprint("portfolio", __name__, url_prefix="/portfolio")

# The most customers each quadrant's list shows, largest volume first; the counts hold
# them all. Twenty-five keep the page (and its print) readable: a quadrant's long tail is
# found by narrowing the filters.
LIST_LIMIT = 25


@bp.route("")
def index():
    """The visible customers placed by share and upcoming volume, filtered by branch
    (for those who see every branch), tier and industry from the query string."""
    form = PortfolioFilterForm(request.args, user=current_user)
    form.validate()
    setting = setting_in_force()
    customers = find_customers(current_user, **form.filters())
    tiers = {tier.id: tier for tier in form.tiers}
    table, totals, unplaced = counts(customers, setting, list(tiers))
    lists = {q: placed_customers(customers, setting, q, limit=LIST_LIMIT) for q in QUADRANTS}
    chart = ScatterChart(setting, tiers, *volume_range(customers))
    if chart.shades_cells(totals["all"]):
        chart.draw_cells(grid_counts(customers, chart.share_edges(), chart.volume_edges()))
    else:
        chart.draw_dots(customers, id_url("customers.detail", "customer_id"))
    return render_template(
        "portfolio/index.html", form=form, setting=setting, lists=lists, counts=table,
        totals=totals, tiers=tiers, unplaced=unplaced,
        chart=chart, list_limit=LIST_LIMIT,
        args={k: v for k, v in request.args.items() if v})


@bp.route("/settings", methods=["GET", "POST"])
@role_required("admin")
def settings():
    """A new version of the thresholds and strategies, from its effective date; the
    earlier versions stay, listed below the form."""
    history = setting_history()
    form = PortfolioSettingForm(obj=(history[0] if history else setting_in_force())
                                if request.method == "GET" else None)
    if request.method == "GET":
        form.effective_on.data = datetime.date.today()
    if form.validate_on_submit():
        try:
            save_setting(current_user, **form.values())
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The thresholds and strategies were saved as a new version."), "success")
            return redirect(url_for("portfolio.settings"), 303)
    return render_template("portfolio/settings.html", form=form, history=history,
                           in_force=setting_in_force())


@bp.route("/value-classes", methods=["GET", "POST"])
@role_required("admin")
def value_classes():
    """The value classes' rules (客户价值分类): a new version is in force at once and
    every customer's classes are recomputed; the earlier versions stay, listed below
    the form with how many customers each class holds now."""
    history = rule_history()
    form = ValueClassRulesForm(obj=rules_in_force() if request.method == "GET" else None)
    if form.validate_on_submit():
        try:
            save_rules(current_user, **form.values())
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The value class rules were saved as a new version, and every "
                    "customer's classes were recomputed."), "success")
            return redirect(url_for("portfolio.value_classes"), 303)
    year = latest_year()
    return render_template("portfolio/value_classes.html", form=form, history=history,
                           in_force=rules_in_force(), year=year,
                           growth_from=year - GROWTH_SPAN if year else None,
                           counts=stored_counts(),
                           value_class_labels=translated(VALUE_CLASSES))
