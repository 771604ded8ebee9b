"""The weekly funnel: my week, one opportunity, the team's tracking table,
conversion, and the .xlsx exports."""
import datetime
import io

from flask import (
    Blueprint,
    abort,
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
from markupsafe import Markup, escape
from peewee import JOIN

from extensions import htmx
from forms import choices
from forms.customers import visible_branches
from forms.funnel import (
    QUICK_ADD_LABELS,
    DetailsForm,
    LostForm,
    MoveForm,
    PeriodForm,
    QuickAddForm,
    WeekForm,
)
from i18n import lazy_gettext as _l
from models import Customer, DomainError, Opportunity, StageMove, User, audit
from models.funnel import (
    CHECKS,
    LADDER,
    STAGES,
    TEAM_COLUMN_LABELS,
    TEAM_COLUMNS,
    back,
    conversion,
    create_opportunity,
    forward,
    free_prospects,
    hints,
    member_prospects,
    monday_of,
    move,
    parse_week,
    signing_date_fits,
    stock,
    team_table,
    update_details,
    week_board,
    week_of,
)
from services import formatting, pdf
from services.formatting import is_chinese, money, translated
from services.pdf import pdf_response
from services.spreadsheets import XLSX_MIMETYPE, write_xlsx

from .access import get_or_404, role_required

bp = Blueprint("funnel", __name__, url_prefix="/funnel")

# Who keeps a funnel of their own, and who reads a team's.
FUNNEL_ROLES = ("sales_rep", "branch_manager")
TEAM_ROLES = ("branch_manager", "sales_director", "general_manager", "admin")
CONVERSION_ROLES = tuple(dict.fromkeys(FUNNEL_ROLES + TEAM_ROLES))


@bp.context_processor
def labels():
    return {"stages": translated(STAGES), "ladder": LADDER}


def _not_found(message):
    abort(make_response(render_template("errors/error.html", status=404, message=message),
                        404))


def _week(text):
    """(monday, "2027-W12") of the week asked for; this week when none is. A week
    that does not exist, or has not begun, answers 404 with a message."""
    today = datetime.date.today()
    if not text:
        monday = monday_of(today)
        return monday, week_of(monday)
    try:
        monday = parse_week(text)
    except ValueError:
        _not_found(_l("There is no week “%(week)s”. Weeks are written like 2027-W12, "
                      "and a year has 52 or 53 of them.", week=text[:20]))
    if monday > today:
        _not_found(_l("The week %(week)s has not begun yet.", week=formatting.week(monday)))
    return monday, week_of(monday)


def _week_context(monday):
    today = datetime.date.today()
    sunday = monday + datetime.timedelta(days=6)
    previous = monday - datetime.timedelta(days=7)
    following = monday + datetime.timedelta(days=7)
    return dict(monday=monday, sunday=sunday, week=week_of(monday),
                previous_week=week_of(previous),
                next_week=week_of(following) if following <= today else None,
                this_week=week_of(monday_of(today)), is_current=monday <= today <= sunday)


# The board's fixed words: my week is the page reps open most, and each lazy string
# is a catalog lookup per use; these are looked up once per process and language.
BOARD_LABELS = {
    "weeks": _l("Weeks"), "previous_week": _l("Previous week"), "next_week": _l("Next week"),
    "this_week_link": _l("This week"), "this_week": _l("this week"),
    "moved": _l("moved this week"),
    "stale_legend": _l("stale: in the stage longer than the sales cycle"),
    "past": _l("A past week: where each prospect stood at the week's end."),
    "stale": _l("stale"), "back": _l("Back"), "forward": _l("Forward"),
}


def _board_context(board):
    """The board's labels and, for each day a card entered its stage, "since <date>"
    (formatted once: many cards share a day)."""
    days = {item.entered_on for items in board.values() for item in items}
    return {"board_labels": translated(BOARD_LABELS),
            "since": {day: _("since %(date)s", date=formatting.date(day)) for day in days}}


def _week_page(monday, add_form=None, status=200):
    context = _week_context(monday)
    board = week_board(current_user, monday)
    # A fresh quick add needs no form object (add_form is None): only the prospects.
    prospects = free_prospects(current_user) if context["is_current"] else None
    context.update(board=board, add_form=add_form, prospects=prospects,
                   cycle=current_user.sales_cycle_days, **_board_context(board),
                   quick_add_labels=translated(QUICK_ADD_LABELS))
    if htmx and status == 200:
        return render_template("funnel/_board.html", **context)
    return render_template("funnel/week.html", **context), status


@bp.route("")
@role_required(*FUNNEL_ROLES)
def my_week():
    """My action table for a week (?week=2027-W12, default this week): a column per
    stage, this week's moves highlighted, stale ones marked. htmx gets the board."""
    form = WeekForm(request.args)
    monday, _week_text = _week(form.week.data)
    return _week_page(monday)


@bp.route("/opportunities", methods=["POST"])
@role_required(*FUNNEL_ROLES)
def quick_add():
    """Add a prospect to my funnel: one on file, or a new one created on the spot."""
    form = QuickAddForm(prospects=free_prospects(current_user))
    if form.validate_on_submit():
        customer = None
        if form.customer.data:
            customer = get_or_404(Customer, form.customer.data)
        try:
            create_opportunity(current_user, customer=customer, new_name=form.new_name.data,
                               stage=form.stage.data,
                               premium_received=form.premium_received.amount,
                               standard_premium=form.standard_premium.amount)
        except DomainError as error:
            form.new_name.errors.append(str(error))
        else:
            flash(_("Added to your funnel."), "success")
            return redirect(url_for("funnel.my_week"), 303)
    return _week_page(monday_of(datetime.date.today()), add_form=form)


@bp.route("/opportunities/<int:opportunity_id>/move", methods=["POST"])
@role_required(*FUNNEL_ROLES)
def move_one(opportunity_id):
    """One click forward or back. A refused move changes nothing and says why; htmx
    gets the week's board back, with the message beside the card."""
    opportunity = get_or_404(Opportunity, opportunity_id)
    form = MoveForm()
    error = None
    if not form.validate_on_submit():
        error = _("The move was not understood. Reload the page and try again.")
    else:
        step = forward if form.direction.data == "forward" else back
        try:
            step(opportunity, current_user, expected_stage=form.stage.data)
        except DomainError as refused:
            error = str(refused)
    if htmx:
        monday = monday_of(datetime.date.today())
        context = _week_context(monday)
        board = week_board(current_user, monday)
        context.update(board=board, cycle=current_user.sales_cycle_days,
                       refused=(opportunity.id, error), **_board_context(board))
        return render_template("funnel/_board.html", **context)
    if error:
        flash(error, "error")
    return redirect(url_for("funnel.my_week"), 303)


def _history(opportunity):
    return list(StageMove.select(StageMove, User)
                .join(User, on=(StageMove.moved_by == User.id), join_type=JOIN.LEFT_OUTER)
                .where(StageMove.opportunity == opportunity)
                .order_by(StageMove.moved_at.desc(), StageMove.id.desc()))


def _detail(opportunity, form=None, lost_form=None, status=200):
    if form is None:
        form = DetailsForm(obj=opportunity)
    return render_template(
        "funnel/opportunity.html", opportunity=opportunity, form=form,
        lost_form=lost_form or LostForm(), history=_history(opportunity),
        missing=opportunity.missing_checks() if opportunity.stage == "p25" else [],
        can_change=opportunity.can_change(current_user) and not opportunity.is_closed,
        checks=CHECKS, signing_ok=signing_date_fits(
            opportunity.signing_date, datetime.date.today(), opportunity.owner.sales_cycle_days)
        ), status


@bp.route("/opportunities/<int:opportunity_id>", methods=["GET", "POST"])
@role_required(*CONVERSION_ROLES)
def opportunity(opportunity_id):
    """One opportunity: its amounts, checks and signing date (editable by the owner
    and the branch manager), and its stage history."""
    opportunity = get_or_404(Opportunity, opportunity_id)
    form = DetailsForm(obj=opportunity)
    if form.validate_on_submit():
        try:
            update_details(opportunity, current_user, **form.values())
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The opportunity was saved."), "success")
            return redirect(url_for("funnel.opportunity", opportunity_id=opportunity.id), 303)
    return _detail(opportunity, form)


@bp.route("/opportunities/<int:opportunity_id>/lost", methods=["POST"])
@role_required(*FUNNEL_ROLES)
def mark_lost(opportunity_id):
    """Close the opportunity as lost, with the reason."""
    opportunity = get_or_404(Opportunity, opportunity_id)
    form = LostForm()
    if form.validate_on_submit():
        try:
            move(opportunity, current_user, "lost", expected_stage=opportunity.stage,
                 lost_reason=form.reason.data)
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The opportunity was closed as lost."), "success")
            return redirect(url_for("funnel.my_week"), 303)
    return _detail(opportunity, lost_form=form)


# --- The team -----------------------------------------------------------------

def _team_branch(form):
    """The branch whose team the user reads: their own when branch-scoped, else the
    one chosen (their own or the first by code when none is). 404 for an unknown one."""
    branches = list(visible_branches(current_user))
    if not branches:
        abort(404)
    form.branch.choices = choices([(str(b.id), b.name) for b in branches])
    by_id = {str(b.id): b for b in branches}
    wanted = form.branch.data
    if current_user.is_branch_scoped or not wanted:
        branch = by_id.get(str(current_user.branch_id)) or branches[0]
    elif wanted in by_id:
        branch = by_id[wanted]
    else:
        abort(404)
    form.branch.data = str(branch.id)
    return branch


@bp.route("/team")
@role_required(*TEAM_ROLES)
def team():
    """The team's tracking table for a week: per member the new first meetings, what
    sits at 25/50/90%, the deals won and their amounts; totals and the change
    against the week before. htmx gets the table."""
    form = WeekForm(request.args)
    branch = _team_branch(form)
    monday, _week_text = _week(form.week.data)
    rows, total, previous = team_table(branch.id, monday)
    context = _week_context(monday)
    context.update(form=form, branch=branch, team_labels=translated(TEAM_COLUMN_LABELS),
                   team_columns=TEAM_COLUMNS, **dict(zip(
                       ("table", "total_cells", "previous_cells"),
                       _team_cells(rows, total, previous))),
                   member_url=url_for("funnel.team_member", user_id=0, week=context["week"]))
    if htmx:  # the table, and the week and links outside it that follow it
        return render_template("funnel/_team_table.html", oob=True, **context)
    return render_template("funnel/team.html", **context)


AMOUNTS = ("premium_received", "standard_premium")


def _figure(figures, column, chinese):
    """A row's figure in `column` as text: a count, or an amount of 元. The amounts
    are those of the week's won deals: with none won there is no amount (—), and a
    real zero reads 0 元, never 0.00 元."""
    value = figures[column]
    if column in AMOUNTS:
        return money(value, chinese) if figures["won"] or value else "—"
    return str(value)


def _cells(figures, previous, against):
    """One row of the team table's figure cells as HTML: each figure, and its change
    against the previous week when there is one. Built here rather than in the
    template: fifty rows of seven cells were half the page's time there. Every
    value is escaped (they are numbers we formatted, and a translated title)."""
    chinese = is_chinese()
    against = escape(against)
    cells = []
    for column in TEAM_COLUMNS:
        text = escape(_figure(figures, column, chinese))
        if previous is not None and figures[column] != previous[column]:
            delta = figures[column] - previous[column]
            shown = f"{abs(delta):,.2f}" if column in AMOUNTS else str(abs(delta))
            sign, direction = ("+", "up") if delta > 0 else ("\u2212", "down")
            text = (f'{text} <small class="delta {direction}" title="{against}">'
                    f"{sign}{escape(shown)}</small>")
        cells.append(f'<td class="num" data-column="{column}">{text}</td>')
    return Markup("".join(cells))  # noqa: S704 - built from escaped values above


def _team_cells(rows, total, previous):
    """[(member, their cells)], the total's cells and the previous week's."""
    against = _("against the previous week")
    return ([(row["user"], _cells(row, row["previous"], against)) for row in rows],
            _cells(total, previous, against), _cells(previous, None, against))


@bp.route("/team/members/<int:user_id>")
@role_required(*TEAM_ROLES)
def team_member(user_id):
    """A member's row expanded: their prospects where they stood at the week's end."""
    member = get_or_404(User, user_id)
    monday, _week_text = _week(WeekForm(request.args).week.data)
    items = member_prospects(member, monday)
    if htmx:
        return render_template("funnel/_member.html", member=member, items=items,
                               cycle=member.sales_cycle_days)
    return render_template("funnel/member.html", member=member, items=items,
                           cycle=member.sales_cycle_days, **_week_context(monday))


# --- Conversion ---------------------------------------------------------------

@bp.route("/conversion")
@role_required(*CONVERSION_ROLES)
def conversion_page():
    """How far opportunities got over a period of weeks, as ratios and a funnel chart,
    with plain-language hints. A rep reads their own; managers and above a branch."""
    form = PeriodForm(request.args)
    today = datetime.date.today()
    end_monday, _week_text = _week(form.end.data)
    if form.start.data:
        start_monday, _week_text = _week(form.start.data)
    else:
        start_monday = end_monday - datetime.timedelta(weeks=12)
    if start_monday > end_monday:
        start_monday, end_monday = end_monday, start_monday
    form.start.data, form.end.data = week_of(start_monday), week_of(end_monday)
    end = min(end_monday + datetime.timedelta(days=6), today)
    own = current_user.has_role("sales_rep") and not current_user.has_role(*TEAM_ROLES)
    scope, branch = {}, None
    if own:
        scope["owner_id"] = current_user.id
        form.branch.choices = []
    else:
        branch = _team_branch(form)
        scope["branch_id"] = branch.id
    steps = conversion(start_monday, end, **scope)
    now = stock(end, **scope)
    return render_template("funnel/conversion.html", form=form, steps=steps, stock=now,
                           advice=hints(steps, now), own=own, branch=branch,
                           start=start_monday, end=end)


# --- Exports ------------------------------------------------------------------

def _xlsx(data, filename):
    return send_file(io.BytesIO(data), mimetype=XLSX_MIMETYPE, as_attachment=True,
                     download_name=filename)


@bp.route("/export.xlsx")
@role_required(*FUNNEL_ROLES)
def export_week():
    """My week as a spreadsheet: a row per opportunity on the board."""
    form = WeekForm(request.args)
    monday, week = _week(form.week.data)
    board = week_board(current_user, monday)
    headers = [_("Stage"), _("Prospect"), _("Entered the stage on"), _("Moved this week"),
               _("Stale"), _("Premium received (元)"), _("Standard premium (元)")]
    rows = [[str(STAGES[item.stage]), item.name, item.entered_on,
             _("yes") if item.moved_this_week else "", _("yes") if item.stale else "",
             item.premium_received, item.standard_premium]
            for stage in STAGES for item in board[stage]]
    audit("funnel_export", object_type="opportunity",
          after={"what": "week", "week": week, "rows": len(rows)})
    return _xlsx(write_xlsx(headers, rows, formatting.week(week)), f"funnel-{week}.xlsx")


@bp.route("/team.pdf")
@role_required(*TEAM_ROLES)
def team_pdf():
    """The team's tracking table for a week as a printable report."""
    form = WeekForm(request.args)
    branch = _team_branch(form)
    monday, week = _week(form.week.data)
    rows, total, previous = team_table(branch.id, monday)
    chinese = is_chinese()
    data = pdf.render("pdf/funnel_team.html", doc_title=f"{_('Weekly team funnel')} · "
                      f"{branch.name} · {formatting.week(week)}", branch=branch, week=week,
                      monday=monday,
                      sunday=monday + datetime.timedelta(days=6), rows=rows, total=total,
                      previous=previous, columns=TEAM_COLUMNS,
                      labels={c: str(TEAM_COLUMN_LABELS[c]) for c in TEAM_COLUMNS},
                      figure=lambda figures, column: _figure(figures, column, chinese))
    return pdf_response(data, f"funnel-team-{branch.code}-{week}.pdf")


@bp.route("/team/export.xlsx")
@role_required(*TEAM_ROLES)
def export_team():
    """The team's tracking table as a spreadsheet, with the totals and last week's."""
    form = WeekForm(request.args)
    branch = _team_branch(form)
    monday, week = _week(form.week.data)
    rows, total, previous = team_table(branch.id, monday)
    headers = [_("Member")] + [str(TEAM_COLUMN_LABELS[c]) for c in TEAM_COLUMNS]
    table = [[row["user"].display_name] + [row[c] for c in TEAM_COLUMNS] for row in rows]
    table.append([_("Team total")] + [total[c] for c in TEAM_COLUMNS])
    table.append([_("Previous week")] + [previous[c] for c in TEAM_COLUMNS])
    audit("funnel_export", object_type="opportunity",
          after={"what": "team", "week": week, "branch": branch.code, "rows": len(rows)})
    return _xlsx(write_xlsx(headers, table, f"{branch.code} {formatting.week(week)}"),
                 f"funnel-team-{branch.code}-{week}.xlsx")
