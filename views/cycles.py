"""Grading cycles: setup, phases, and the preliminary sheets branch managers fill."""
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
from peewee import fn

from extensions import htmx
from forms.cycles import (
    CycleForm,
    FinaliseForm,
    MeetingFilterForm,
    MeetingPollForm,
    ScoreForm,
    SheetsFilterForm,
    SubmitForm,
    TakeOverForm,
    ToDiscussForm,
    what_if_form,
)
from models import (
    Assessment,
    Branch,
    Customer,
    CustomerYear,
    DomainError,
    GradingCycle,
    Score,
    ScorecardTemplate,
    Tier,
    User,
)
from models.cycles import (
    PHASES,
    STAGES,
    InvalidScore,
    SheetIncomplete,
    StaleScore,
    board_sheet,
    committee_summary,
    cycle_summary,
    finalise,
    mark_to_discuss,
    may_score,
    meeting_agenda,
    past_grades,
    pending_proposals,
    proposal_for,
    reopen,
    sales_hint,
    save_cycle,
    save_score,
    set_current,
    settle_and_next,
    settled_distribution,
    settled_movements,
    sheet_total,
    sheet_with_scorecard,
    submit_preliminary,
    take_over_preliminary,
)
from models.notices import notices_about
from models.phases import advance, missing_for_next_phase
from models.portfolio import placement
from services.jobs import queue_report_part

from .access import get_or_404, role_required

bp = Blueprint("cycles", __name__)

SETUP_ROLES = ("admin", "committee_chair")


@bp.route("/cycles")
def index():
    """Every cycle, newest first, with its phase and progress."""
    counts = (Assessment.select(Assessment.cycle, fn.COUNT(Assessment.id),
                                fn.COUNT(Assessment.preliminary_submitted_at),
                                fn.COUNT(Assessment.finalised_at))
              .group_by(Assessment.cycle).tuples())
    progress = {cycle: (total, submitted, final) for cycle, total, submitted, final in counts}
    cycles = GradingCycle.select().order_by(GradingCycle.year.desc(), GradingCycle.id.desc())
    return render_template("cycles/index.html", cycles=cycles, progress=progress,
                           can_setup=current_user.has_role(*SETUP_ROLES))


@bp.route("/cycles/new", methods=["GET", "POST"])
@bp.route("/cycles/<int:cycle_id>/edit", methods=["GET", "POST"])
@role_required(*SETUP_ROLES)
def setup(cycle_id=None):
    """Set up a cycle, or change it while it is a draft."""
    cycle = get_or_404(GradingCycle, cycle_id) if cycle_id else None
    form = CycleForm(obj=cycle)
    if cycle and not form.is_submitted():
        scope = cycle.scope_filters
        form.template_existing.data = cycle.template_existing_id
        form.template_prospect.data = cycle.template_prospect_id or 0
        form.branches.data, form.kinds.data = scope.get("branches", []), scope.get("kinds", [])
        form.chair.data = cycle.chair_id
        form.members.data = [m.id for m in cycle.members()]
    if form.validate_on_submit():
        try:
            cycle = save_cycle(
                cycle, current_user, name=form.name.data.strip(), year=form.year.data,
                template_existing=ScorecardTemplate.get_by_id(form.template_existing.data),
                template_prospect=ScorecardTemplate.get_or_none(
                    ScorecardTemplate.id == form.template_prospect.data),
                scope={"branches": form.branches.data, "kinds": form.kinds.data},
                chair=User.get_by_id(form.chair.data), members=form.members.data,
                meeting_from=form.meeting_from.data, meeting_to=form.meeting_to.data,
                disagreement_points=form.disagreement_points.data)
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The cycle was saved."), "success")
            return redirect(url_for("cycles.detail", cycle_id=cycle.id), 303)
    return render_template("cycles/form.html", form=form, cycle=cycle)


# The summary page shows the first sheets of each list, then "and N more".
SUMMARY_SHOWN = 30


@bp.route("/cycles/<int:cycle_id>")
def detail(cycle_id):
    """The cycle's state: its phase, what the next phase still needs, each branch's
    progress on the preliminary sheets."""
    cycle = get_or_404(GradingCycle, cycle_id)
    rows = (Assessment.visible_to(current_user)
            .select(Branch.id, Branch.name, fn.COUNT(Assessment.id),
                    fn.COUNT(Assessment.preliminary_submitted_at),
                    fn.COUNT(Assessment.finalised_at))
            .join(Branch, on=(Assessment.branch == Branch.id))
            .where(Assessment.cycle == cycle).group_by(Branch.id, Branch.name)
            .order_by(Branch.name).tuples())
    thresholds = what_if_form(request.args, Tier.in_order()).thresholds()
    summary = cycle_summary(cycle, thresholds, shown=SUMMARY_SHOWN, user=current_user) \
        if cycle.phase != "draft" else None
    if htmx and summary is not None:
        return render_template("cycles/_summary.html", cycle=cycle, summary=summary,
                               what_if=bool(thresholds))
    # Before the cycle starts, while the setup may change: grades no total can give.
    out_of_reach = cycle.tiers_out_of_reach() if cycle.phase == "draft" else []
    # Who was told of each phase (the chair and the admins, who move the cycle on).
    notices = notices_about(cycle) if current_user.has_role(*SETUP_ROLES) else None
    return render_template("cycles/detail.html", cycle=cycle, branches=list(rows),
                           notices=notices,
                           summary=summary, what_if=bool(thresholds), out_of_reach=out_of_reach,
                           missing=missing_for_next_phase(cycle, current_user), phases=PHASES,
                           can_advance=cycle.may_advance(current_user),
                           can_edit=cycle.phase == "draft" and current_user.has_role(
                               *SETUP_ROLES))


@bp.route("/cycles/<int:cycle_id>/advance", methods=["POST"])
@role_required(*SETUP_ROLES)
def move_on(cycle_id):
    """Move the cycle to its next phase, or say what is missing."""
    cycle = get_or_404(GradingCycle, cycle_id)
    try:
        cycle = advance(cycle, current_user)
    except DomainError as error:
        flash(str(error), "error")
    else:
        flash(_("The cycle is now in the phase “%(phase)s”.", phase=cycle.phase_label),
              "success")
    return redirect(url_for("cycles.detail", cycle_id=cycle.id), 303)


@bp.route("/cycles/<int:cycle_id>/sheets")
def sheets(cycle_id):
    """The assessment sheets the user may open, by branch and state."""
    cycle = get_or_404(GradingCycle, cycle_id)
    query = (Assessment.visible_to(current_user)
             .select(Assessment, Customer, Branch)
             .join(Customer, on=(Assessment.customer == Customer.id))
             .switch(Assessment).join(Branch, on=(Assessment.branch == Branch.id))
             .where(Assessment.cycle == cycle))
    form = SheetsFilterForm(request.args)
    state = form.value("state", "")
    if state == "open":
        query = query.where(Assessment.preliminary_submitted_at.is_null())
    elif state == "submitted":
        query = query.where(Assessment.preliminary_submitted_at.is_null(False))
    branch = form.value("branch")
    if branch:
        query = query.where(Assessment.branch == branch)
    size = current_app.config["PAGE_SIZE"]
    page = form.value("page", 1)
    total = query.count()
    rows = list(query.order_by(Branch.name, Customer.code).paginate(page, size))
    args = {k: v for k, v in request.args.items() if v and k != "page"}
    return render_template("cycles/sheets.html", cycle=cycle, sheets=rows, total=total,
                           page=page, size=size, args=args, state=state)


# --- One assessment sheet --------------------------------------------------------

def _scores_context(assessment, stage, user, answers=None, incomplete=(), unsaved=()):
    """What a row and the total need: the scorecard, the user's scores at `stage`
    (in committee the member's own, beside the preliminary ones), the points proposed
    for range levels still without points, total and grade.

    `answers` ({criterion id: answer}) are what the server just said about rows; a row
    answered with a refusal shows what was typed, so the total leaves its stored points
    out as the row does. `incomplete` lists the criteria a failed submit names, of which
    `unsaved` are those with a change on the screen that was not saved.
    """
    template = assessment.template
    query = Score.select().where(Score.assessment == assessment.id, Score.stage == stage)
    if stage == "committee":
        query = query.where(Score.member == user.id)
    scores = {s.criterion: s for s in query}
    preliminary = {s.criterion: s for s in Score.select().where(
        Score.assessment == assessment.id, Score.stage == "preliminary")
    } if stage == "committee" else {}
    answers = answers or {}
    counted = [s.points for c, s in scores.items()
               if s.points is not None and not (c in answers and answers[c]["typed"])]
    criteria = template.criteria_with_levels()
    return dict(assessment=assessment, template=template, criteria=criteria,
                criteria_count=len(criteria), scores=scores, preliminary=preliminary,
                proposals=pending_proposals(criteria, scores, preliminary),
                total=sum(counted), scored=len(counted), grade=template.grade_for(sum(counted)),
                answers=answers, incomplete=list(incomplete), unsaved=list(unsaved),
                can_fill=may_score(assessment, user, stage) is None, stage=stage)


def _sheet_context(assessment, stage, user, **rows):
    """The whole sheet: the scores, plus the customer, its yearly figures and the
    data hints (the pyramid's, the portfolio's)."""
    years = list(CustomerYear.select().where(CustomerYear.customer == assessment.customer_id)
                 .order_by(CustomerYear.year))
    hint = sales_hint(assessment.customer_id, assessment.cycle.year - 1,
                      current_app.config["PYRAMID_CUTS"])
    return dict(_scores_context(assessment, stage, user, **rows), cycle=assessment.cycle,
                customer=assessment.customer, years=years, hint=hint,
                placement=placement(years),
                submit_form=SubmitForm())


@bp.route("/assessments/<int:assessment_id>")
def assessment(assessment_id):
    """The customer's assessment sheet: preliminary scores, filled in place."""
    sheet = get_or_404(Assessment, assessment_id)
    return render_template("cycles/sheet.html",
                           **_sheet_context(sheet, "preliminary", current_user))


def _answer(state, message, field=None, typed=None):
    """What the server says about one row: see _criterion.html."""
    return {"state": state, "message": message, "field": field, "typed": typed}


@bp.route("/assessments/<int:assessment_id>/scores", methods=["POST"])
def save(assessment_id):
    """Autosave one criterion; htmx gets the changed parts of the row back (the total
    out of band).

    A level whose points are a range, sent without points, is saved without them
    and answers with proposed points, not saved until sent. A level or points that do
    not fit are refused beside the field, the typed value kept and nothing stored
    (without htmx: the sheet again, 422). A stale revision (another tab saved
    meanwhile) answers the row as it now is, with a warning; nothing is overwritten.
    """
    # Not visible: the one access check answers (404, and audited when it exists).
    sheet = (sheet_with_scorecard(current_user, assessment_id)
             or get_or_404(Assessment, assessment_id))
    template = sheet.template
    form = ScoreForm()
    criterion = next((c for c in template.criteria_with_levels()
                      if c.id == form.criterion.data), None)
    if criterion is None:
        abort(404)
    stage = form.stage.data if form.stage.data in STAGES else "preliminary"
    score, refusal, answer = None, None, None
    if not form.validate_on_submit():
        refusal = form.refusal()
    else:
        try:
            score = save_score(sheet, current_user, stage, criterion.id, form.level.data,
                               form.points.data, form.comment.data, form.revision.data)
        except InvalidScore as error:
            refusal = error.field, str(error)
        except StaleScore as error:
            answer = _answer("stale", str(error))
        except DomainError as error:
            answer = _answer("error", str(error))
    if refusal:
        answer = _answer("error", refusal[1], field=refusal[0], typed=form.typed())
    if not htmx:
        if refusal and stage == "preliminary":
            context = _sheet_context(sheet, stage, current_user,
                                     answers={criterion.id: answer})
            return render_template("cycles/sheet.html", **context), 422
        if answer:
            flash(answer["message"], "error")
        return redirect(url_for("cycles.assessment", assessment_id=sheet.id), 303)
    if score or refusal:  # the parts of the row that change, out of band
        if score:
            total, scored = sheet_total(sheet, score.stage, current_user)
            proposal = proposal_for(sheet, criterion, score)
        else:
            context = _scores_context(sheet, stage, current_user,
                                      answers={criterion.id: answer})
            total, scored, proposal = context["total"], context["scored"], None
        response = make_response(render_template(
            "cycles/_saved.html", criterion=criterion, score=score,
            state="proposed" if proposal else "saved" if score else "error",
            proposal=proposal, message=answer and answer["message"],
            field=refusal and refusal[0], typed=answer and answer["typed"],
            filled_points=score is not None and score.points != form.points.data,
            template=template, total=total, scored=scored,
            criteria_count=len(template.criteria_with_levels()),
            grade=template.grade_for(total)))
    else:  # stale, or scoring closed: the whole row as it now is, with the reason
        context = _scores_context(sheet, stage, current_user, answers={criterion.id: answer})
        response = make_response(render_template("cycles/_criterion.html",
                                                 criterion=criterion, oob_total=True,
                                                 **context))
        response.headers.update({"HX-Retarget": f"#criterion-{criterion.id}",
                                 "HX-Reswap": "outerHTML"})
    response.vary.add("HX-Request")
    return response


@bp.route("/assessments/<int:assessment_id>/take-over", methods=["POST"])
def take_over(assessment_id):
    """A committee member's one key: the preliminary sheet's levels and points become the
    member's committee scores wherever the member has no points yet (take_over_preliminary).

    htmx gets every row of the member's sheet back out of band, as they now are, and a
    line saying what happened or why nothing did; without htmx the meeting page, with
    that line as a message.
    """
    sheet = get_or_404(Assessment, assessment_id)
    if not sheet.cycle.is_on_committee(current_user):
        abort(404)  # as the meeting page: only the committee knows it
    form = TakeOverForm()
    if not form.validate_on_submit():
        state, message = "error", next(iter(form.errors.values()))[0]
    else:
        try:
            taken, kept = take_over_preliminary(sheet, current_user)
            state, message = "saved", _take_over_message(taken, kept)
        except DomainError as error:
            state, message = "error", str(error)
    if not htmx:
        flash(message, "success" if state == "saved" else "error")
        return redirect(url_for("cycles.meeting", cycle_id=sheet.cycle_id), 303)
    context = _scores_context(Assessment.get_by_id(sheet.id), "committee", current_user)
    response = make_response(render_template(
        "cycles/_taken_over.html", take_over_state=state, take_over_message=message,
        **context))
    response.vary.add("HX-Request")
    return response


def _take_over_message(taken, kept):
    if not taken:
        return _("Nothing was taken over: every criterion with a preliminary score already "
                 "has your points.")
    if kept:
        return _("The preliminary scores of %(n)s criteria are now yours, and %(kept)s "
                 "criteria you had scored keep your points; adjust any row.",
                 n=len(taken), kept=len(kept))
    return _("The preliminary scores of %(n)s criteria are now yours; adjust any row.",
             n=len(taken))


@bp.route("/assessments/<int:assessment_id>/submit", methods=["POST"])
def submit(assessment_id):
    """Submit the preliminary sheet to the committee.

    A refusal names every criterion still without points and marks their rows; over
    htmx it answers those parts out of band, so nothing typed is replaced; without
    htmx the sheet renders again with what was posted (422).
    """
    sheet = get_or_404(Assessment, assessment_id)
    form = SubmitForm()
    error, incomplete, unsaved = None, [], []
    if not form.validate_on_submit():
        error = next(iter(form.errors.values()))[0]
    else:
        try:
            submit_preliminary(sheet, current_user, form.comment.data, form.unsaved.data)
        except SheetIncomplete as refusal:
            error, incomplete = str(refusal), [c.id for c in refusal.criteria]
            unsaved = [c.id for c in refusal.unsaved]
        except DomainError as refusal:
            if not htmx:
                flash(str(refusal), "error")
                return redirect(url_for("cycles.assessment", assessment_id=sheet.id), 303)
            error = str(refusal)
    if error is None:
        flash(_("The preliminary sheet of %(customer)s was submitted.",
                customer=sheet.customer.name), "success")
        url = url_for("cycles.assessment", assessment_id=sheet.id)
        response = make_response("", 200, {"HX-Redirect": url}) if htmx else redirect(url, 303)
    elif htmx:
        response = make_response(render_template(
            "cycles/_submit_failed.html", criteria=sheet.template.criteria_with_levels(),
            incomplete=incomplete, unsaved=unsaved, submit_error=error, submit_oob=True))
    else:
        context = _sheet_context(sheet, "preliminary", current_user, incomplete=incomplete,
                                 unsaved=unsaved)
        response = make_response(render_template(
            "cycles/sheet.html", **dict(context, submit_form=form, submit_error=error)), 422)
    response.vary.add("HX-Request")
    return response


# --- The meeting board ----------------------------------------------------------

def _meeting_context(cycle):
    form = MeetingFilterForm(request.args)
    branch, order, state = form.value("branch"), form.value("order", "agenda"), \
        form.value("state", "")
    rows, counts = meeting_agenda(cycle, branch_id=branch, order=order,
                                  unsettled_only=state == "open")
    current = next((r for r in rows if r.id == cycle.current_assessment), None) or (
        Assessment.get_or_none(Assessment.id == cycle.current_assessment)
        if cycle.current_assessment else None)
    context = dict(cycle=cycle, agenda=rows, counts=counts, current=current, order=order,
                   branch=branch, state=state, filters=form.args(),
                   branches=Branch.select().order_by(Branch.code),
                   distribution=settled_distribution(cycle, current_app.config["PYRAMID_CUTS"]),
                   movements=settled_movements(cycle),
                   is_chair=current_user.id == cycle.chair_id)
    if current is not None:
        context.update(_sheet_context(current, "committee", current_user),
                       past=past_grades(current.customer_id, cycle),
                       take_over_form=TakeOverForm())
        if not context["is_chair"]:  # the chair's keys work outside the fields
            scores = context["scores"]
            context["focus_first"] = next(
                (c.id for c in context["criteria"]
                 if c.id not in scores or scores[c.id].points is None), None)
        if context["is_chair"]:
            context.update(_board_context(cycle, current), finalise_form=FinaliseForm(),
                           discuss_form=ToDiscussForm())
    return context


@bp.route("/cycles/<int:cycle_id>/meeting")
def meeting(cycle_id):
    """The meeting board: the agenda, the current customer to score, and for the
    chair the committee's scores as they arrive."""
    cycle = get_or_404(GradingCycle, cycle_id,
                       where=GradingCycle.committee_includes(current_user))
    return render_template("cycles/meeting.html", **_meeting_context(cycle))


@bp.route("/cycles/<int:cycle_id>/meeting/state")
def meeting_state(cycle_id):
    """Polled by every screen: when the chair has moved on, or set or reopened the
    current customer's grade, the page reloads."""
    cycle = get_or_404(GradingCycle, cycle_id,
                       where=GradingCycle.committee_includes(current_user))
    form = MeetingPollForm(request.args)
    seen = form.value("seen")
    if seen != cycle.current_assessment:
        return "", 200, {"HX-Refresh": "true"}
    if seen is not None:  # the chair set (or reopened) the grade on screen: show it
        final = Assessment.select().where(Assessment.id == seen,
                                          Assessment.finalised_at.is_null(False)).exists()
        if final != (form.value("final") == "1"):
            return "", 200, {"HX-Refresh": "true"}
    return "", 204


@bp.route("/cycles/<int:cycle_id>/meeting/board")
def meeting_board(cycle_id):
    """The chair's live panel for the current customer (polled)."""
    sheet = board_sheet(MeetingPollForm(request.args).value("assessment"), cycle_id)
    if sheet is None or current_user.id != sheet.cycle.chair_id:
        abort(404)
    return render_template("cycles/_board.html", **_board_context(sheet.cycle, sheet))


def _board_context(cycle, sheet):
    """The chair's board: the scores, and who has not scored every criterion yet (a
    handful of queries whatever the committee's size)."""
    template = sheet.template
    members = cycle.committee_people()
    summary = committee_summary(sheet, template, cycle)
    waiting = [(person, summary["scored_by"].get(person.id, 0)) for person in members
               if person.id != cycle.chair_id
               and summary["scored_by"].get(person.id, 0) < summary["criteria_count"]]
    return dict(cycle=cycle, current=sheet, template=template,
                criteria=template.criteria_with_levels(), members=members, waiting=waiting,
                summary=summary, tiers=Tier.ordered())


@bp.route("/cycles/<int:cycle_id>/meeting/current", methods=["POST"])
def move_meeting(cycle_id):
    """The chair moves everyone to another customer."""
    cycle = get_or_404(GradingCycle, cycle_id,
                       where=GradingCycle.committee_includes(current_user))
    sheet = Assessment.get_or_none(Assessment.id == request.form.get("assessment", type=int),
                                   Assessment.cycle == cycle)
    if sheet is None:
        abort(404)
    try:
        set_current(cycle, current_user, sheet)
    except DomainError as error:
        flash(str(error), "error")
    return redirect(url_for("cycles.meeting", cycle_id=cycle.id,
                            **MeetingFilterForm(request.args).args()), 303)


@bp.route("/assessments/<int:assessment_id>/finalise", methods=["POST"])
def finalise_sheet(assessment_id):
    """The chair sets the final grade (or reopens it); with `and_next` (the chair's one
    key) the committee then moves on to the next unsettled customer of the agenda as
    the query string filters and orders it."""
    sheet = get_or_404(Assessment, assessment_id)
    cycle = sheet.cycle
    if not cycle.is_on_committee(current_user):
        abort(404)
    form = FinaliseForm()
    filters = MeetingFilterForm(request.args)
    if form.validate_on_submit():
        try:
            if form.reopen.data:
                reopen(sheet, current_user, form.rationale.data)
            elif form.and_next.data:
                following = settle_and_next(
                    sheet, current_user, Tier.get_by_id(form.tier.data), form.rationale.data,
                    form.special_policy.data, form.credit_review.data,
                    branch_id=filters.value("branch"), order=filters.value("order", "agenda"))
                if following is None:
                    flash(_("%(customer)s is settled. Every customer on the agenda is "
                            "settled now.", customer=sheet.customer.name), "success")
                else:
                    flash(_("%(customer)s is settled; the committee moves on to "
                            "%(next)s.", customer=sheet.customer.name,
                            next=following.customer.name), "success")
            else:
                finalise(sheet, current_user, Tier.get_by_id(form.tier.data),
                         form.rationale.data, form.special_policy.data,
                         form.credit_review.data)
        except DomainError as error:
            flash(str(error), "error")
        else:
            if not form.reopen.data:
                queue_report_part(sheet)
    else:
        flash(_("Choose the final grade."), "error")
    return redirect(url_for("cycles.meeting", cycle_id=cycle.id, **filters.args()), 303)


@bp.route("/assessments/<int:assessment_id>/discuss", methods=["POST"])
def mark_discuss(assessment_id):
    """The chair marks the customer "to discuss again" (or clears the mark)."""
    sheet = get_or_404(Assessment, assessment_id)
    cycle = sheet.cycle
    if not cycle.is_on_committee(current_user):
        abort(404)
    form = ToDiscussForm()
    if form.validate_on_submit():
        try:
            mark_to_discuss(sheet, current_user, form.flag.data)
        except DomainError as error:
            flash(str(error), "error")
    return redirect(url_for("cycles.meeting", cycle_id=cycle.id,
                            **MeetingFilterForm(request.args).args()), 303)
