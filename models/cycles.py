"""Grading cycles (评级周期), their committee, and one assessment per customer.

A cycle moves draft → preliminary → committee → signing → published; the moves
and what guards them are in phases.py, the workflow above this module.
"""
import datetime
import json
import math
from typing import NamedTuple

from peewee import (
    JOIN,
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    DecimalField,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    TextField,
    fn,
)

from i18n import lazy_gettext as _l
from i18n import sentences

from .audit import audit
from .base import (
    BaseModel,
    DomainError,
    db,
    is_sqlite,
    marks,
    raw_sql,
    utcnow,
    write_transaction,
)
from .customers import Customer, CustomerYear, TierHistory
from .people import Branch, User, scoped_to_branch
from .portfolio import QUADRANTS, quadrant, setting_in_force
from .scorecards import Criterion, GradeBand, ScorecardTemplate, reachable_tiers
from .tiers import Tier

PHASES = {
    "draft": _l("Draft"),
    "preliminary": _l("Preliminary grading"),
    "committee": _l("Committee review"),
    "signing": _l("Signing"),
    "published": _l("Published"),
}
PHASE_ORDER = list(PHASES)


class GradingCycle(BaseModel):
    name = CharField(max_length=100)
    year = IntegerField()
    template_existing = ForeignKeyField(ScorecardTemplate, on_delete="RESTRICT")
    template_prospect = ForeignKeyField(ScorecardTemplate, null=True, on_delete="RESTRICT")
    # The filters that choose the customers, as JSON: {"branches": [...], "kinds": [...]}.
    # Resolved to a frozen list of assessments when the cycle starts.
    scope = TextField(default="{}")
    chair = ForeignKeyField(User, on_delete="RESTRICT")
    meeting_from = DateField(null=True)
    meeting_to = DateField(null=True)
    # Members' totals further apart than this are flagged at the meeting.
    disagreement_points = IntegerField(default=10)
    # The customer the chair has the committee looking at (an Assessment id).
    current_assessment = IntegerField(null=True)
    phase = CharField(max_length=16, default="draft")
    created_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    started_at = DateTimeField(null=True)

    def __str__(self):
        return self.name

    @property
    def phase_label(self):
        return PHASES[self.phase]

    @property
    def scope_filters(self):
        return json.loads(self.scope or "{}")

    def members(self):
        """The committee's members (the chair is not one of them)."""
        return (User.select().join(CommitteeMember, on=(CommitteeMember.user == User.id))
                .where(CommitteeMember.cycle == self).order_by(User.display_name))

    def committee_people(self):
        """The chair first, then the members by name (one query)."""
        members = CommitteeMember.select(CommitteeMember.user).where(
            CommitteeMember.cycle == self.id)
        people = list(User.select().where((User.id == self.chair_id) | User.id.in_(members))
                      .order_by(User.display_name))
        return sorted(people, key=lambda person: person.id != self.chair_id)

    def is_on_committee(self, user):
        """Whether `user` chairs or sits on this cycle's committee."""
        return user.id == self.chair_id or CommitteeMember.select().where(
            CommitteeMember.cycle == self.id, CommitteeMember.user == user.id).exists()

    @classmethod
    def committee_includes(cls, user):
        """The condition "`user` chairs or sits on the cycle's committee", for queries
        (is_on_committee of one cycle)."""
        return (cls.chair == user.id) | cls.id.in_(
            CommitteeMember.select(CommitteeMember.cycle).where(CommitteeMember.user == user.id))

    def may_advance(self, user):
        """Whether `user` moves the cycle on: its chair or an administrator. The cycle
        page shows the button by it; advance() refuses by it."""
        return user.id == self.chair_id or user.has_role("admin")

    def may_reopen(self, user):
        """Whether `user` may take the cycle back from signing to the committee review
        now (see reopen_cycle): the chair or an administrator, in the signing phase."""
        return self.phase == "signing" and self.may_advance(user)

    def scoped_customers(self):
        """The customers the scope names, as they are now."""
        filters = self.scope_filters
        query = Customer.select()
        if filters.get("branches"):
            query = query.where(Customer.branch.in_(filters["branches"]))
        if filters.get("kinds"):
            query = query.where(Customer.kind.in_(filters["kinds"]))
        if filters.get("customers"):  # a hand-picked list
            query = query.where(Customer.id.in_(filters["customers"]))
        if not self.template_prospect_id:
            query = query.where(Customer.kind == "existing")
        return query

    def tiers_out_of_reach(self):
        """[(template, [tier])] for each of the cycle's templates whose bands leave some
        of the company's tiers out of reach of every total."""
        tiers = Tier.in_order()
        templates = [self.template_existing] + (
            [self.template_prospect] if self.template_prospect_id else [])
        found = [(template, template.tiers_out_of_reach(tiers)) for template in templates]
        return [(template, missing) for template, missing in found if missing]

    def audit_dict(self):
        return {"name": self.name, "year": self.year, "phase": self.phase,
                "template_existing": self.template_existing_id,
                "template_prospect": self.template_prospect_id, "scope": self.scope_filters,
                "chair": self.chair_id, "members": [m.id for m in self.members()],
                "meeting_from": self.meeting_from, "meeting_to": self.meeting_to,
                "disagreement_points": self.disagreement_points}

    @classmethod
    def visible_to(cls, user):
        """Every cycle: what a branch-scoped user sees inside it is scoped per assessment."""
        return cls.select()


class CommitteeMember(BaseModel):
    cycle = ForeignKeyField(GradingCycle, backref="committee", on_delete="CASCADE")
    user = ForeignKeyField(User, on_delete="RESTRICT")

    class Meta:
        indexes = ((("cycle", "user"), True),)


class Assessment(BaseModel):
    """One customer's assessment sheet (评估表) in one cycle."""
    cycle = ForeignKeyField(GradingCycle, backref="assessments", on_delete="CASCADE")
    customer = ForeignKeyField(Customer, backref="assessments", on_delete="RESTRICT")
    template = ForeignKeyField(ScorecardTemplate, on_delete="RESTRICT")
    # Copied when the cycle starts: the sheet keeps its branch and the tier it
    # started from even if the customer changes later.
    branch = ForeignKeyField(Branch, on_delete="RESTRICT")
    tier_before = ForeignKeyField(Tier, null=True, on_delete="RESTRICT")
    provisional = BooleanField(default=False)
    agenda_position = IntegerField(default=0)
    preliminary_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    preliminary_comment = TextField(default="")
    preliminary_submitted_at = DateTimeField(null=True)
    final_tier = ForeignKeyField(Tier, null=True, on_delete="RESTRICT")
    final_total = DecimalField(max_digits=7, decimal_places=2, null=True)
    # Kept by triggers on the score table (migration 14), never written by the app: the
    # sum of the preliminary points and the committee members' mean total (None: none).
    preliminary_total = IntegerField(null=True)
    committee_mean = DoubleField(null=True)
    rationale = TextField(default="")
    special_policy = BooleanField(default=False)
    credit_review = BooleanField(default=False)
    # The chair set it aside at the meeting to come back to (cleared when settled).
    to_discuss = BooleanField(default=False)
    finalised_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    finalised_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("cycle", "customer"), True), (("cycle", "branch"), False))

    @classmethod
    def visible_to(cls, user):
        """Assessments the user may open: a branch-scoped user sees the branch's."""
        return scoped_to_branch(cls.select(), cls.branch, user)

    @property
    def is_final(self):
        return self.finalised_at is not None


STAGES = ("preliminary", "committee")


class Score(BaseModel):
    """One person's points for one criterion of one assessment.

    Preliminary scores have the branch manager as `member`; committee scores
    one row per member. Each row is its own record, so members saving at the
    same moment never touch each other's rows; `revision` detects one member's
    two tabs overwriting each other.
    """
    assessment = ForeignKeyField(Assessment, backref="scores", on_delete="CASCADE")
    criterion = IntegerField()  # the template's Criterion id
    stage = CharField(max_length=16)
    member = ForeignKeyField(User, on_delete="RESTRICT")
    level = IntegerField(null=True)  # the chosen CriterionLevel id
    points = IntegerField(null=True)
    comment = TextField(default="")
    revision = IntegerField(default=1)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("assessment", "stage", "member", "criterion"), True),)


# --- Rules ---------------------------------------------------------------------

def save_cycle(cycle, user, *, name, year, template_existing, template_prospect, scope, chair,
               members, meeting_from=None, meeting_to=None, disagreement_points=10):
    """Create (`cycle` is None) or change a cycle while it is a draft, audited.

    Raises DomainError when the cycle has started, a template is of the wrong
    kind, or the chair also sits among the members.
    """
    if cycle is not None and cycle.phase != "draft":
        raise DomainError(_l("A cycle's setup is fixed once it has started."))
    if template_existing.kind != "existing":
        raise DomainError(_l("The template for existing customers must be one for existing "
                             "customers."))
    if template_prospect is not None and template_prospect.kind != "prospect":
        raise DomainError(_l("The template for prospects must be one for prospects."))
    member_ids = sorted({getattr(m, "id", m) for m in members})
    if chair.id in member_ids:
        raise DomainError(_l("The chair chairs the committee; do not list them as a member."))
    with write_transaction():
        creating = cycle is None
        before = None if creating else cycle.audit_dict()
        cycle = cycle or GradingCycle(created_by=user)
        cycle.name, cycle.year = name, year
        cycle.template_existing, cycle.template_prospect = template_existing, template_prospect
        cycle.scope = json.dumps(scope, sort_keys=True)
        cycle.chair = chair
        cycle.meeting_from, cycle.meeting_to = meeting_from, meeting_to
        cycle.disagreement_points = disagreement_points
        cycle.save()
        CommitteeMember.delete().where(CommitteeMember.cycle == cycle).execute()
        CommitteeMember.insert_many([{"cycle": cycle.id, "user": m} for m in member_ids]
                                    ).execute() if member_ids else None
        audit("cycle_created" if creating else "cycle_updated", cycle, before=before,
              after=cycle.audit_dict())
    return cycle


class StaleScore(DomainError):
    """The score changed since this screen last saw it (another tab or person).

    `current` is the Score row as it is now, for the screen to show.
    """

    def __init__(self, message, current):
        super().__init__(message)
        self.current = current


def _locked(assessment):
    """Re-read the assessment, locking its row on PostgreSQL so that a save and a
    finalisation of the same sheet never interleave (SQLite's IMMEDIATE
    transaction already serialises writers)."""
    query = (Assessment.select(Assessment, GradingCycle).join(GradingCycle)
             .where(Assessment.id == assessment.id))
    return (query if is_sqlite() else query.for_update(of=Assessment)).get()


def sheets_of_customer(user, customer):
    """The customer's assessment sheets `user` may open, newest cycle first, with the
    cycle and the final grade."""
    return (Assessment.visible_to(user)
            .select(Assessment.id, Assessment.final_tier, Assessment.final_total,
                    GradingCycle.id, GradingCycle.name, GradingCycle.phase, Tier)
            .join(GradingCycle).switch(Assessment)
            .join(Tier, JOIN.LEFT_OUTER, on=(Assessment.final_tier == Tier.id))
            .where(Assessment.customer == customer)
            .order_by(GradingCycle.year.desc(), GradingCycle.id.desc()))


def sheet_with_scorecard(user, assessment):
    """The sheet with its scorecard, if `user` may open it: every autosave reads both."""
    return (Assessment.visible_to(user)
            .select(Assessment, ScorecardTemplate).join(ScorecardTemplate)
            .where(Assessment.id == assessment).first())


def board_sheet(assessment, cycle):
    """The sheet on the chair's board, with its cycle and its scorecard, in one query
    (the board polls it every few seconds)."""
    return (Assessment.select(Assessment, GradingCycle, ScorecardTemplate)
            .join(GradingCycle).switch(Assessment).join(ScorecardTemplate)
            .where(Assessment.id == assessment, Assessment.cycle == cycle).first())


def _score_of(assessment, stage, criterion, member=None):
    """The score saved at one criterion of a sheet (in committee, the member's)."""
    query = Score.select().where(Score.assessment == assessment, Score.stage == stage,
                                 Score.criterion == criterion)
    return (query.where(Score.member == member) if stage == "committee" else query).first()


def may_score(assessment, user, stage):
    """Whether `user` may score `stage` of the assessment now; None or the reason why not."""
    cycle = assessment.cycle
    if stage == "preliminary":
        if cycle.phase != "preliminary":
            return _l("Preliminary sheets can be filled only while the cycle is in "
                      "preliminary grading.")
        if not (user.has_role("admin") or (user.has_role("branch_manager")
                                           and user.branch_id == assessment.branch_id)):
            return _l("Only the branch's manager fills its preliminary sheets.")
        if assessment.preliminary_submitted_at:
            return _l("This preliminary sheet has been submitted.")
        return None
    if cycle.phase != "committee":
        return _l("Committee scores can be given only during the committee review.")
    if not cycle.is_on_committee(user):
        return _l("Only committee members score in the meeting.")
    if assessment.is_final:
        return _l("The final grade of this customer is set; scores can no longer change.")
    return None


class InvalidScore(DomainError):
    """The level or points sent do not fit the criterion; nothing was stored.

    `field` names the control at fault ("level" or "points"), for the screen to mark.
    """

    def __init__(self, message, field):
        super().__init__(message)
        self.field = field


def proposed_points(level, preliminary=None):
    """The points a level whose points are a range proposes: `preliminary` (the
    preliminary sheet's points for the criterion) when they lie in the range, else the
    range's midpoint rounded half up to whole points. None for a fixed-points level."""
    if level is None or level.is_fixed:
        return None
    if preliminary is not None and level.min_points <= preliminary <= level.max_points:
        return preliminary
    return math.floor((level.min_points + level.max_points) / 2 + 0.5)


class Proposal(NamedTuple):
    """Points proposed for a level whose points are a range; not saved until sent."""
    level: object
    points: int


def pending_proposals(criteria, scores, preliminary=None):
    """{criterion id: Proposal} for each score in `scores` ({criterion id: Score}) whose
    level is a range and whose points have not come yet; `preliminary` ({criterion id:
    Score}, the preliminary sheet's) gives the points to propose where it has them."""
    proposals = {}
    for criterion in criteria:
        score = scores.get(criterion.id)
        if score is None or score.points is not None or not score.level:
            continue
        level = next((lv for lv in criterion.levels if lv.id == score.level), None)
        earlier = (preliminary or {}).get(criterion.id)
        points = proposed_points(level, earlier.points if earlier else None)
        if points is not None:
            proposals[criterion.id] = Proposal(level, points)
    return proposals


def proposal_for(assessment, criterion, score):
    """The Proposal for a score just saved (None when it needs none): in committee the
    preliminary sheet's points for the criterion come first."""
    preliminary = None
    if score.stage == "committee" and score.points is None and score.level:
        earlier = _score_of(assessment.id, "preliminary", criterion.id)
        preliminary = {criterion.id: earlier} if earlier else None
    return pending_proposals([criterion], {criterion.id: score}, preliminary).get(criterion.id)


def _check_points(criterion, level, points):
    """Raise InvalidScore unless `points` fit `level`, or the criterion without one."""
    if points < 0:
        raise InvalidScore(_l("Points cannot be negative."), "points")
    if level is None:
        if points > criterion.max_points:
            raise InvalidScore(_l("This criterion gives at most %(high)s points.",
                                  high=criterion.max_points), "points")
    elif level.is_fixed:
        if points != level.min_points:
            raise InvalidScore(_l("This level scores %(points)s points.",
                                  points=level.min_points), "points")
    elif not level.min_points <= points <= level.max_points:
        raise InvalidScore(_l("This level scores %(low)s–%(high)s points.",
                              low=level.min_points, high=level.max_points), "points")


def save_score(assessment, user, stage, criterion_id, level_id, points, comment, revision):
    """Save one criterion's level, points and comment for `user` at `stage`.

    `revision` is the revision of the score the screen showed (0 for none). A
    fixed-points level fills its points; a level whose points are a range, sent
    without points, is saved without points (the sheet stays incomplete until they
    come: see proposed_points()). Raises InvalidScore when the level is not one of
    the criterion's or the points do not fit it (nothing is stored); DomainError
    when scoring is not open to the user; StaleScore when the score changed since
    (another tab). Returns the saved Score.
    """
    criterion = next((c for c in assessment.template.criteria_with_levels()
                      if c.id == criterion_id), None)
    if criterion is None:
        raise DomainError(_l("This criterion is not on the assessment's scorecard."))
    level = None
    if level_id:
        level = next((lv for lv in criterion.levels if lv.id == level_id), None)
        if level is None:
            raise InvalidScore(_l("Choose one of the criterion's levels."), "level")
    if points is not None:
        _check_points(criterion, level, points)
    elif level is not None and level.is_fixed:
        points = level.min_points  # a fixed-points level needs no typing
    with write_transaction():
        assessment = _locked(assessment)
        reason = may_score(assessment, user, stage)
        if reason:
            raise DomainError(reason)
        # The preliminary sheet is one sheet whoever fills it; in committee
        # each member has a sheet of their own.
        current = _score_of(assessment.id, stage, criterion.id, user.id)
        if (current.revision if current else 0) != (revision or 0):
            raise StaleScore(_l("This score was changed elsewhere (another tab?) and now "
                                "shows the newer value. Check it and save again."),
                             current)
        values = {"level": level.id if level else None, "points": points,
                  "comment": comment or "", "updated_at": utcnow(), "member": user.id}
        if current is None:
            current = Score.create(assessment=assessment.id, stage=stage,
                                   criterion=criterion.id, revision=1, **values)
        else:
            Score.update(revision=Score.revision + 1, **values).where(
                Score.id == current.id).execute()
            current.revision += 1
            for name, value in values.items():
                setattr(current, name, value)
    return current


def take_over_preliminary(assessment, user):
    """Save the preliminary sheet's levels and points as `user`'s committee scores, in
    one transaction and through save_score()'s rules, for every criterion the member
    has not given points yet: points the member gave stay as they are, comments too.

    Raises DomainError (nothing saved) when the member may not score the sheet now: not
    on the committee, not in the committee review, or the final grade set. Returns
    (criteria taken over, criteria that kept the member's own points), in the
    scorecard's order.
    """
    with write_transaction():
        assessment = _locked(assessment)
        reason = may_score(assessment, user, "committee")
        if reason:
            raise DomainError(reason)
        preliminary = {s.criterion: s for s in Score.select().where(
            Score.assessment == assessment.id, Score.stage == "preliminary")}
        mine = {s.criterion: s for s in Score.select().where(
            Score.assessment == assessment.id, Score.stage == "committee",
            Score.member == user.id)}
        taken, kept = [], []
        for criterion in assessment.template.criteria_with_levels():
            earlier, own = preliminary.get(criterion.id), mine.get(criterion.id)
            if own is not None and own.points is not None:
                kept.append(criterion)
            elif earlier is not None and earlier.points is not None:
                save_score(assessment, user, "committee", criterion.id, earlier.level,
                           earlier.points, own.comment if own else "",
                           own.revision if own else 0)
                taken.append(criterion)
    return taken, kept


class SheetIncomplete(DomainError):
    """A preliminary sheet cannot be submitted yet: `missing` criteria have no points,
    `unsaved` ones show a change on the screen that was not saved (both in the
    scorecard's order); `criteria` is both, in that order."""

    def __init__(self, message, missing, unsaved=()):
        super().__init__(message)
        self.missing, self.unsaved = list(missing), list(unsaved)
        self.criteria = sorted(self.missing + self.unsaved, key=lambda c: c.position)


def unscored_criteria(assessment):
    """The criteria of the preliminary sheet that have no points yet, in order."""
    scored = {criterion for criterion, in Score.select(Score.criterion).where(
        Score.assessment == assessment.id, Score.stage == "preliminary",
        Score.points.is_null(False)).tuples()}
    return [c for c in assessment.template.criteria_with_levels() if c.id not in scored]


def submit_preliminary(assessment, user, comment="", unsaved=()):
    """Submit a filled preliminary sheet, audited.

    `unsaved` are the ids of criteria whose row on the screen shows a change the
    server refused or has not stored: the sheet the user sees is not the one stored.
    Raises SheetIncomplete naming every criterion without points or unsaved,
    DomainError when the user may not fill the sheet (any more).
    """
    with write_transaction():
        assessment = _locked(assessment)
        reason = may_score(assessment, user, "preliminary")
        if reason:
            raise DomainError(reason)
        missing = unscored_criteria(assessment)
        changed = [c for c in assessment.template.criteria_with_levels()
                   if c.id in set(unsaved) and c not in missing]
        if missing or changed:
            separator = str(_l(", "))
            reasons = [_l("Give points for every criterion before submitting. Still without "
                          "points: %(names)s.", names=separator.join(c.name for c in missing))
                       ] if missing else []
            if changed:
                reasons.append(_l("Changes not saved: %(names)s. Correct them or undo them "
                                  "first.", names=separator.join(c.name for c in changed)))
            raise SheetIncomplete(sentences(reasons), missing, changed)
        Assessment.update(preliminary_submitted_at=utcnow(), preliminary_by=user.id,
                          preliminary_comment=comment or "").where(
            Assessment.id == assessment.id).execute()
        audit("preliminary_submitted", assessment, after={
            "customer": assessment.customer_id,
            "total": Assessment.select(Assessment.preliminary_total)
            .where(Assessment.id == assessment.id).scalar()})


def sheet_total(assessment, stage, user):
    """(total points, criteria scored) of the sheet `user` fills at `stage`: the
    preliminary sheet, or in committee the member's own (one query)."""
    query = (Score.select(fn.COALESCE(fn.SUM(Score.points), 0), fn.COUNT(Score.points))
             .where(Score.assessment == assessment.id, Score.stage == stage))
    if stage == "committee":
        query = query.where(Score.member == user.id)
    return query.tuples().get()


# --- The committee's view of one assessment -------------------------------------

def two_places(mean):
    """A mean as the committee's means are shown, on screen and on paper (None: none)."""
    return None if mean is None else round(mean, 2)


def average(values):
    """The mean of `values` to two places (None for none)."""
    return two_places(sum(values) / len(values)) if values else None


def committee_arithmetic(points):
    """The committee's figures of one sheet from {(member, criterion): points} (None:
    not scored yet): ({member: total}, {criterion: [points given]}). The sheet's
    committee mean is not counted here: the database keeps it (the committee_mean
    column, migration 14), for every reader."""
    totals, given = {}, {}
    for (member_id, criterion_id), value in points.items():
        if value is None:
            continue
        totals[member_id] = totals.get(member_id, 0) + value
        given.setdefault(criterion_id, []).append(value)
    return totals, given


def committee_summary(assessment, template=None, cycle=None):
    """What the chair sees for one customer: each member's total and grade, the
    spread and mean per criterion, the committee mean and its grade, and
    whether the members disagree (totals further apart than the cycle allows,
    or on different sides of a band boundary)."""
    template = template or assessment.template
    cycle = cycle or assessment.cycle
    # (member, criterion, points, the sheet's kept mean) rows, read in one statement so
    # that the mean is that of these scores (a member may be saving at this moment).
    rows = list(Score.select(Score.member, Score.criterion, Score.points,
                             Assessment.committee_mean)
                .join(Assessment, on=(Score.assessment == Assessment.id))
                .where(Score.assessment == assessment.id, Score.stage == "committee")
                .tuples())
    scores = [row[:3] for row in rows]
    scored = {(member_id, criterion_id): value for member_id, criterion_id, value in scores}
    by_member, by_criterion = committee_arithmetic(scored)
    mean = two_places(rows[0][3]) if rows else None
    totals = sorted(by_member.values())
    criteria_count = len(template.criteria_with_levels())
    scored_by = {}  # criteria each person has given points for, the chair included
    for member_id, _criterion_id, points in scores:
        if points is not None:
            scored_by[member_id] = scored_by.get(member_id, 0) + 1
    # A total of some criteria only is no result: it gets no grade until complete.
    grades = {member: template.grade_for(total) for member, total in by_member.items()
              if scored_by.get(member) == criteria_count}
    spread = (totals[-1] - totals[0]) if totals else 0
    # Members (not the chair, who may score too) who have scored every criterion.
    per_member = {m: n for m, n in scored_by.items() if m != cycle.chair_id}
    return {
        "complete_members": sum(1 for n in per_member.values() if n == criteria_count),
        "criteria_count": criteria_count,
        "scored_by": scored_by,
        "mean_complete": bool(by_member) and all(
            scored_by.get(m) == criteria_count for m in by_member),
        "points": scored,
        "member_totals": by_member,
        "member_grades": grades,
        "criteria": {cid: {"min": min(p), "max": max(p), "spread": max(p) - min(p),
                           "mean": average(p)}
                     for cid, p in by_criterion.items()},
        "mean": mean,
        "mean_grade": template.grade_for(mean) if mean is not None else None,
        "spread": spread,
        "disagree": bool(totals) and (spread > cycle.disagreement_points
                                      or len({g.id for g in grades.values() if g}) > 1),
    }


def finalise(assessment, user, tier, rationale="", special_policy=False, credit_review=False):
    """The chair sets the final grade and locks the sheet, audited.

    The grade defaults to the band of the committee mean; any other grade
    needs a written rationale. Raises DomainError otherwise, when the user is
    not the chair, or when the cycle is not in committee review.
    """
    with write_transaction():
        assessment = _locked(assessment)
        cycle = assessment.cycle
        if user.id != cycle.chair_id:
            raise DomainError(_l("Only the committee chair sets final grades."))
        if cycle.phase != "committee":
            raise DomainError(_l("Final grades are set during the committee review."))
        if assessment.is_final:
            raise DomainError(_l("This customer's final grade is set already."))
        summary = committee_summary(assessment)
        if summary["mean"] is None:
            raise DomainError(_l("No committee member has scored this customer yet."))
        computed = summary["mean_grade"]
        if (computed is None or tier.id != computed.id) and not (rationale or "").strip():
            raise DomainError(_l("A grade other than the committee mean's (%(grade)s) needs "
                                 "a written rationale.",
                                 grade=computed.display_name if computed else "—"))
        Assessment.update(final_tier=tier.id, final_total=summary["mean"],
                          rationale=(rationale or "").strip(), special_policy=special_policy,
                          credit_review=credit_review, finalised_by=user.id,
                          finalised_at=utcnow(), to_discuss=False,
                          ).where(Assessment.id == assessment.id).execute()
        audit("assessment_finalised", assessment, after={
            "customer": assessment.customer_id, "final_tier": tier.code,
            "computed": computed.code if computed else None, "mean": summary["mean"],
            "rationale": rationale, "special_policy": special_policy,
            "credit_review": credit_review})


def reopen(assessment, user, reason=""):
    """The chair reopens a finalised sheet during the committee review, audited."""
    with write_transaction():
        assessment = _locked(assessment)
        if user.id != assessment.cycle.chair_id:
            raise DomainError(_l("Only the committee chair reopens a final grade."))
        if assessment.cycle.phase != "committee":
            raise DomainError(_l("Final grades can be reopened only during the committee "
                                 "review."))
        if not assessment.is_final:
            raise DomainError(_l("This customer has no final grade to reopen."))
        before = {"final_tier": assessment.final_tier_id, "rationale": assessment.rationale}
        Assessment.update(final_tier=None, final_total=None, finalised_at=None,
                          finalised_by=None).where(Assessment.id == assessment.id).execute()
        audit("assessment_reopened", assessment, before=before, after={"reason": reason})


def set_current(cycle, user, assessment):
    """The chair moves the whole committee to `assessment`, audited."""
    if user.id != cycle.chair_id:
        raise DomainError(_l("Only the committee chair leads the meeting."))
    if cycle.phase != "committee" or assessment.cycle_id != cycle.id:
        raise DomainError(_l("The meeting runs during the committee review."))
    GradingCycle.update(current_assessment=assessment.id).where(
        GradingCycle.id == cycle.id).execute()
    audit("meeting_moved", cycle, after={"assessment": assessment.id,
                                         "customer": assessment.customer_id})


def agenda(cycle, branch_id=None, order="agenda"):
    """The meeting's customers with their preliminary totals.

    `order` is "agenda" (the sheets' order), "grade" (best preliminary total
    first) or "borderline" (closest to a band boundary first).
    """
    query = (Assessment.select(Assessment, Customer, Branch)
             .join(Customer, on=(Assessment.customer == Customer.id))
             .switch(Assessment).join(Branch, on=(Assessment.branch == Branch.id))
             .where(Assessment.cycle == cycle))
    if branch_id:
        query = query.where(Assessment.branch == branch_id)
    rows = list(query.order_by(Assessment.agenda_position))
    # Each sheet is graded on its own scorecard's bands (prospects may have their own).
    # A sheet nobody has scored yet has no total and no grade, and sorts last.
    bands = _bands_by_template({row.template_id for row in rows}, Tier.in_order())
    for row in rows:
        total = row.preliminary = row.preliminary_total
        row.preliminary_grade = None if total is None else _band_grade(
            bands[row.template_id], total)
        row.distance = math.inf if total is None else min(
            (abs(total - minimum) for minimum, _tier in bands[row.template_id] if minimum > 0),
            default=0)
    if order == "grade":
        rows.sort(key=lambda r: -r.preliminary if r.preliminary is not None else math.inf)
    elif order == "borderline":
        rows.sort(key=lambda r: r.distance)
    return rows


class AgendaCounts(NamedTuple):
    """How far the meeting has got: sheets settled, set aside to discuss again (and not
    settled), not scored by any committee member yet (and not settled), and in all."""
    settled: int
    to_discuss: int
    not_scored: int
    total: int


def _criteria_counts(cycle):
    """(template id, criteria) of the scorecards a cycle's sheets use."""
    used = Assessment.select(Assessment.template).where(Assessment.cycle == cycle)
    return (Criterion.select(Criterion.template, fn.COUNT(Criterion.id))
            .where(Criterion.template.in_(used)).group_by(Criterion.template).tuples())


def _scored_per_sheet(cycle):
    """(sheet, stage, person, total, criteria scored) of every sheet of a cycle: one
    grouped query for the whole agenda."""
    return (Score.select(Score.assessment, Score.stage, Score.member, fn.SUM(Score.points),
                         fn.COUNT(Score.points))
            .join(Assessment, on=(Score.assessment == Assessment.id))
            .where(Assessment.cycle == cycle, Score.points.is_null(False))
            .group_by(Score.assessment, Score.stage, Score.member).tuples())


def meeting_agenda(cycle, branch_id=None, order="agenda", unsettled_only=False):
    """The meeting's agenda (see agenda()) with what the committee has done on each
    sheet, and the counts of the whole agenda (of one branch when given).

    Each row also gets `criteria_count`, `preliminary_scored` (criteria with
    preliminary points: a partial total is shown as such, never graded) and
    `spread` (how far apart the totals lie of the members who scored every
    criterion; None below two). `order` may also be "disagreement" (largest
    spread first). With `unsettled_only` the settled sheets are left out of the
    rows, not of the counts. Returns (rows, AgendaCounts); a few queries in all.
    """
    rows = agenda(cycle, branch_id=branch_id,
                  order="agenda" if order == "disagreement" else order)
    criteria = dict(_criteria_counts(cycle.id))
    preliminary, committee = {}, {}
    for sheet_id, stage, _member, total, count in _scored_per_sheet(cycle.id):
        if stage == "preliminary":
            preliminary[sheet_id] = preliminary.get(sheet_id, 0) + count
        else:
            committee.setdefault(sheet_id, []).append((total, count))
    for row in rows:
        row.criteria_count = criteria.get(row.template_id, 0)
        row.preliminary_scored = preliminary.get(row.id, 0)
        complete = [total for total, count in committee.get(row.id, ())
                    if count == row.criteria_count]
        row.committee_scored = row.id in committee
        row.spread = max(complete) - min(complete) if len(complete) > 1 else None
        if row.preliminary_scored < row.criteria_count:  # a partial total is no grade
            row.preliminary_grade = None
    if order == "disagreement":
        rows.sort(key=lambda r: -r.spread if r.spread is not None else math.inf)
    counts = AgendaCounts(
        settled=sum(1 for r in rows if r.finalised_at),
        to_discuss=sum(1 for r in rows if r.to_discuss and not r.finalised_at),
        not_scored=sum(1 for r in rows if not r.committee_scored and not r.finalised_at),
        total=len(rows))
    if unsettled_only:
        rows = [r for r in rows if not r.finalised_at]
    return rows, counts


def next_unsettled(cycle, after, branch_id=None, order="agenda"):
    """The sheet the meeting moves on to from `after`: the next unsettled one in the
    agenda as the chair orders it, going round to the start; those marked "to
    discuss again" come last. None when every sheet is settled."""
    rows, _counts = meeting_agenda(cycle, branch_id=branch_id, order=order)
    ids = [r.id for r in rows]
    start = ids.index(after.id) + 1 if after.id in ids else 0
    ring = [r for r in rows[start:] + rows[:start] if not r.finalised_at and r.id != after.id]
    return next((r for r in ring if not r.to_discuss), None) or next(iter(ring), None)


def settle_and_next(assessment, user, tier, rationale="", special_policy=False,
                    credit_review=False, branch_id=None, order="agenda"):
    """The chair's one key: set the final grade of `assessment` by finalise()'s rules,
    then move the whole committee to the next unsettled sheet (next_unsettled()), in
    one transaction, both audited. Raises DomainError as finalise() does, and then
    nothing changes. Returns the sheet moved to, or None when none is left."""
    with write_transaction():
        finalise(assessment, user, tier, rationale, special_policy, credit_review)
        cycle = GradingCycle.get_by_id(assessment.cycle_id)
        following = next_unsettled(cycle, assessment, branch_id=branch_id, order=order)
        if following is not None:
            set_current(cycle, user, following)
    return following


def mark_to_discuss(assessment, user, flag=True):
    """The chair marks a customer "to discuss again" (or clears the mark), audited.

    Raises DomainError for anyone but the chair, outside the committee review, or
    for a settled customer (reopen its grade first)."""
    with write_transaction():
        assessment = _locked(assessment)
        if user.id != assessment.cycle.chair_id:
            raise DomainError(_l("Only the committee chair sets customers aside."))
        if assessment.cycle.phase != "committee":
            raise DomainError(_l("The meeting runs during the committee review."))
        if assessment.is_final:
            raise DomainError(_l("This customer's final grade is set; reopen it to discuss "
                                 "it again."))
        if assessment.to_discuss == bool(flag):
            return
        Assessment.update(to_discuss=bool(flag)).where(Assessment.id == assessment.id).execute()
        audit("assessment_to_discuss", assessment, before={"to_discuss": assessment.to_discuss},
              after={"to_discuss": bool(flag), "customer": assessment.customer_id})


class PastGrade(NamedTuple):
    """A grade the customer held before: from a cycle's final grade or its tier history."""
    year: int
    label: str
    tier: Tier


def past_grades(customer_id, cycle, limit=3):
    """The customer's final grades of the last `limit` cycles before `cycle`, newest
    first; years without a cycle's grade are filled from its tier history (the tier
    in force at that year's end). Two queries."""
    found = {}
    finals = (Assessment.select(GradingCycle.year, GradingCycle.name, Tier)
              .join(GradingCycle).switch(Assessment)
              .join(Tier, on=(Assessment.final_tier == Tier.id))
              .where(Assessment.customer == customer_id, GradingCycle.year < cycle.year,
                     GradingCycle.id != cycle.id)
              .order_by(GradingCycle.year.desc(), GradingCycle.id.desc()).limit(limit))
    for row in finals:
        found.setdefault(row.cycle.year, PastGrade(row.cycle.year, row.cycle.name,
                                                   row.final_tier))
    if len(found) < limit:
        history = (TierHistory.select(TierHistory, Tier).join(Tier)
                   .where(TierHistory.customer == customer_id,
                          TierHistory.effective_on < datetime.date(cycle.year, 1, 1))
                   .order_by(TierHistory.effective_on.desc(), TierHistory.id.desc()))
        for entry in history:
            year = entry.effective_on.year
            if year not in found:
                found[year] = PastGrade(year, entry.source_label, entry.tier)
    return [found[year] for year in sorted(found, reverse=True)[:limit]]


def settled_distribution(cycle, cuts=None):
    """The grades settled so far in the cycle beside what to hold them against.

    Returns {"rows": [(tier, settled, share %, previous share % or None, guideline
    share % or None)], "settled", "previous" (the last earlier cycle with final
    grades, or None)}. The guideline is the customer pyramid (`cuts`, the top
    layers' ends in % from the top), one layer per tier from the top. Three queries.
    """
    tiers = Tier.in_order()

    def shares(of_cycle):
        counts = dict(Assessment.select(Assessment.final_tier, fn.COUNT(Assessment.id))
                      .where(Assessment.cycle == of_cycle, Assessment.final_tier.is_null(False))
                      .group_by(Assessment.final_tier).tuples())
        return counts, sum(counts.values())

    now, settled = shares(cycle.id)
    previous = (GradingCycle.select().join(Assessment)
                .where(GradingCycle.id != cycle.id, GradingCycle.year <= cycle.year,
                       Assessment.final_tier.is_null(False),
                       (GradingCycle.year < cycle.year) | (GradingCycle.id < cycle.id))
                .order_by(GradingCycle.year.desc(), GradingCycle.id.desc()).first())
    before, before_total = shares(previous.id) if previous else ({}, 0)
    guide = {}
    if cuts:
        ends = [*list(cuts)[:max(len(tiers) - 1, 0)], 100]  # the lowest tier: the rest
        for n, tier in enumerate(tiers[:len(ends)]):
            guide[tier.id] = ends[n] - (ends[n - 1] if n else 0)
    rows = [(tier, now.get(tier.id, 0),
             round(100.0 * now.get(tier.id, 0) / settled, 1) if settled else None,
             round(100.0 * before.get(tier.id, 0) / before_total, 1) if before_total else None,
             guide.get(tier.id))
            for tier in tiers]
    return {"rows": rows, "settled": settled, "previous": previous}


# --- The cycle's summary ---------------------------------------------------------

def _band_grade(bands, total):
    """The tier of the highest band minimum `total` reaches; bands = [(min, tier)] desc."""
    for minimum, tier in bands:
        if total >= minimum:
            return tier
    return None


class SummaryRow(NamedTuple):
    """One assessment's result in the summary: plain values, no queries."""
    id: int
    customer_code: str
    customer_name: str
    branch_name: str
    before: Tier | None
    result: Tier | None
    total: float | None
    special_policy: bool
    credit_review: bool
    provisional: bool
    settled: bool  # the result is the chair's final grade, not a total's band grade


def _bands_by_template(template_ids, tiers):
    """{template id: [(minimum, tier)] highest first} for the given templates (one query)."""
    by_id = {t.id: t for t in tiers}
    bands = {template_id: [] for template_id in template_ids}
    for template_id, tier_id, minimum in (GradeBand.select(GradeBand.template, GradeBand.tier,
                                                           GradeBand.min_total)
                                          .where(GradeBand.template.in_(list(template_ids)))
                                          .order_by(GradeBand.min_total.desc()).tuples()):
        bands[template_id].append((minimum, by_id[tier_id]))
    return bands


def _reach(bands):
    """{template id: the tier ids its bands can give}, from `_bands_by_template`'s
    bands and each template's highest possible total (one query)."""
    tops = dict(Criterion.select(Criterion.template, fn.SUM(Criterion.max_points))
                .where(Criterion.template.in_(list(bands))).group_by(Criterion.template)
                .tuples())
    return {template_id: reachable_tiers(template_bands, tops.get(template_id) or 0)
            for template_id, template_bands in bands.items()}


def _summary_rows(cycle, user=None):
    """Each sheet of the cycle in agenda order (of those `user` may see, when given),
    with its committee mean and preliminary total (both kept on the sheet by
    triggers): from one index, no join. The driver's rows as they come: peewee's
    conversion of a thousand rows' columns was a third of the summary's time."""
    total = fn.COALESCE(Assessment.final_total, Assessment.committee_mean,
                        Assessment.preliminary_total)
    query = (Assessment.select(Assessment.id, Assessment.template, Assessment.tier_before,
                               Assessment.final_tier, total, Assessment.special_policy,
                               Assessment.credit_review, Assessment.provisional)
             .where(Assessment.cycle == cycle)
             .order_by(Assessment.agenda_position, Assessment.id))
    return db.execute(scoped_to_branch(query, Assessment.branch, user) if user else query)


class MatrixCell(NamedTuple):
    """One cell of the movement matrix: how many customers went from the row's tier to
    the column's; `computed` of them hold only a total's band grade, not a final one."""
    count: int
    computed: int
    move: str  # "same" (the diagonal), "up", "down", "new" (no tier before) or
    # "not-compared" (a tier the sheet's bands cannot give: neither up nor down)


def movement_matrix(tiers, cells, not_compared=frozenset()):
    """Previous tier × result: {"tiers" (the columns, top first), "rows": [(tier before,
    or None for no tier yet, [MatrixCell per column], row total)], "column_totals",
    "total", "computed"}, from `cells` {(before id or None, result id): [count,
    computed]}; the cells in `not_compared` are neither up nor down. The rows are
    every tier, then "no tier yet"; the diagonal counts the customers who keep their
    tier. Built here alone, for the meeting, the summary and the report."""
    rank = {t.id: t.rank for t in tiers}
    rows = []
    for before in [*tiers, None]:
        before_id = before.id if before is not None else None
        line = []
        for result in tiers:
            count, computed = cells.get((before_id, result.id), (0, 0))
            if before_id is None:
                move = "new"
            elif before_id == result.id:
                move = "same"
            elif (before_id, result.id) in not_compared:
                move = "not-compared"  # neither up nor down: see cycle_summary
            else:
                move = "up" if rank[result.id] < rank[before_id] else "down"
            line.append(MatrixCell(count, computed, move))
        rows.append((before, line, sum(cell.count for cell in line)))
    column_totals = [sum(line[n].count for _before, line, _total in rows)
                     for n in range(len(tiers))]
    return {"tiers": tiers, "rows": rows, "column_totals": column_totals,
            "total": sum(column_totals),
            "computed": sum(cell.computed for _before, line, _total in rows for cell in line)}


def settled_movements(cycle):
    """The meeting's movement matrix: the final grades settled so far against the tier
    each customer held before the cycle (computed grades never count). A move from or
    to a tier the sheet's bands cannot give is neither up nor down, as in
    cycle_summary. Three queries."""
    tiers = Tier.in_order()
    counts = list(Assessment.select(Assessment.template, Assessment.tier_before,
                                    Assessment.final_tier, fn.COUNT(Assessment.id))
                  .where(Assessment.cycle == cycle, Assessment.final_tier.is_null(False))
                  .group_by(Assessment.template, Assessment.tier_before,
                            Assessment.final_tier).tuples())
    reach = _reach(_bands_by_template({row[0] for row in counts}, tiers))
    cells, not_compared = {}, set()
    for template_id, before, result, count in counts:
        cells[before, result] = (cells.get((before, result), (0, 0))[0] + count, 0)
        if before and before != result and not {before, result} <= reach[template_id]:
            not_compared.add((before, result))
    return movement_matrix(tiers, cells, not_compared)


# The lists cycle_summary() fills, by key.
SUMMARY_LISTS = ("top_list", "special_policy", "credit_review", "provisional", "up", "down",
                 "new", "not_compared")


def cycle_summary(cycle, thresholds=None, shown=None, user=None):
    """The results of a cycle, for the summary page and the report: of the customers
    `user` may see when given (a branch manager sees the branch's), else of all.

    Each assessment's result is its final grade when set, otherwise the grade
    its total would get on its own template's bands (the committee mean, or
    the preliminary total before the committee scored). `thresholds` ({tier
    id: minimum total}) re-grades every total with other band minima — the
    "what if" — without saving anything. Returns the distribution now and
    before the cycle per tier, the movements against the tier each customer
    held (`unchanged` counts those who keep it; a move from or to a tier the
    sheet's bands cannot give is `not_compared`, never up or down: a customer in
    D on bands that end at C is not upgraded by the bands), and the lists the
    committee signs: the top tier, special policies, credit review, provisional
    customers. `settled` counts the final grades alone (what-if or not), `computed`
    the results that are only a total's band grade. Lists are in agenda order;
    with `shown`, each holds its first `shown` sheets only (the page shows thirty,
    the report all), and `counts` counts them all. `matrix` holds the same results
    as previous tier × result (see movement_matrix), each cell saying how many of
    its results are computed. Five queries, whatever the size.
    """
    tiers = Tier.in_order()
    by_id = {t.id: t for t in tiers}
    rank = {t.id: t.rank for t in tiers}
    rows = list(_summary_rows(cycle.id, user))
    bands = _bands_by_template({row[1] for row in rows} | {cycle.template_existing_id}, tiers)
    if thresholds:
        what_if = sorted(((minimum, by_id[tier_id]) for tier_id, minimum in thresholds.items()
                          if tier_id in by_id), key=lambda b: -b[0])
        bands = dict.fromkeys(bands, what_if)
    reach = _reach(bands)
    now = dict.fromkeys(by_id, 0)
    before = dict.fromkeys(by_id, 0)
    lists = {key: [] for key in SUMMARY_LISTS}
    counts = dict.fromkeys(SUMMARY_LISTS, 0)
    top_id = tiers[0].id if tiers else None
    unchanged = settled = 0
    results = {}  # sheet: its result's tier id (None: no result yet)
    cells = {}  # (tier before, result): [count, computed], for the movement matrix
    not_compared = set()  # the cells holding a move the bands cannot give
    # A thousand sheets a request: plain tuples here, names only for the listed ones.
    for sheet_id, template_id, before_id, final_id, total, special, credit, provisional in rows:
        if total is not None:
            total = round(float(total), 2)
        if final_id:
            settled += 1
        is_final = bool(final_id) and not thresholds
        if is_final:
            result = by_id.get(final_id)
        elif total is not None:
            result = _band_grade(bands[template_id], total)
        else:
            result = None
        if before_id:
            before[before_id] += 1
        moved = None
        result_id = result.id if result is not None else None
        if result_id is not None:
            now[result_id] += 1
            cell = cells.setdefault((before_id or None, result_id), [0, 0])
            cell[0] += 1
            cell[1] += not is_final
            if not before_id:
                moved = "new"
            elif result_id == before_id:
                unchanged += 1
            elif not {before_id, result_id} <= reach[template_id]:
                moved = "not_compared"
                not_compared.add((before_id, result_id))
            elif rank[result_id] < rank[before_id]:
                moved = "up"
            else:
                moved = "down"
        results[sheet_id] = result_id
        row = None
        top = result_id is not None and result_id == top_id
        for key, wanted in ((moved, moved is not None), ("top_list", top),
                            ("special_policy", special), ("credit_review", credit),
                            ("provisional", provisional)):
            if wanted:
                counts[key] += 1
                if shown is None or counts[key] <= shown:
                    row = row or (sheet_id, by_id.get(before_id), result, total, bool(special),
                                  bool(credit), bool(provisional), is_final)
                    lists[key].append(row)
    lists = _with_particulars(lists)
    return {
        "tiers": tiers,
        "bands": bands[cycle.template_existing_id],
        "distribution": [(t, now[t.id], before[t.id]) for t in tiers],
        "movements": {"up": lists["up"], "down": lists["down"], "new": lists["new"],
                      "not_compared": lists["not_compared"]},
        "unchanged": unchanged,
        "matrix": movement_matrix(tiers, cells, not_compared),
        "top_list": lists["top_list"],
        "special_policy": lists["special_policy"],
        "credit_review": lists["credit_review"],
        "provisional": lists["provisional"],
        "counts": counts,
        # Settled: the chair's final grades only. The other results are what the totals
        # would get, shown as the distribution but never counted as settled.
        "settled": settled,
        "computed": sum(now.values()) - (0 if thresholds else settled),
        "total": len(rows),
        "results": results,
    }


def portfolio_by_result(cycle, results):
    """The cycle's customers by portfolio quadrant × result, for the report's summary:
    {"tiers" (the columns, top first), "rows": [(quadrant, or None for customers without
    a share and volume, [count per tier], count)], "setting"}. `results` is
    cycle_summary()'s {sheet: result tier id}; sheets without a result are left out. The
    quadrant is each customer's place now, under the setting in force."""
    setting = setting_in_force()
    tiers = Tier.in_order()
    column = {t.id: n for n, t in enumerate(tiers)}
    table = {q: [0] * len(tiers) for q in (*QUADRANTS, None)}
    places = (Assessment.select(Assessment.id, Customer.placed_share, Customer.placed_volume)
              .join(Customer, on=(Assessment.customer == Customer.id))
              .where(Assessment.cycle == cycle).tuples())
    for sheet_id, share, volume in places:
        result = results.get(sheet_id)
        if result in column:
            table[quadrant(share, volume, setting)][column[result]] += 1
    return {"tiers": tiers, "setting": setting,
            "rows": [(q, counts, sum(counts)) for q, counts in table.items()]}


def _with_particulars(lists):
    """{key: [SummaryRow]} of cycle_summary()'s {key: [tuple]}: each listed sheet's
    customer code and name and its branch's name, read for those sheets alone."""
    sheet_ids = list({row[0] for rows in lists.values() for row in rows})
    particulars = {}
    for start in range(0, len(sheet_ids), 500):  # within every database's parameter limit
        chunk = sheet_ids[start:start + 500]
        # SQL text with placeholders only: the query builder took longer to write the ids.
        particulars.update((row[0], row[1:]) for row in raw_sql(
            "SELECT a.id, c.code, c.name, b.name FROM assessment a "  # noqa: S608
            "JOIN customer c ON c.id = a.customer_id JOIN branch b ON b.id = a.branch_id "
            f"WHERE a.id IN ({marks(len(chunk))})", chunk))
    made = {}

    def summary_row(row):
        sheet_id = row[0]
        if sheet_id not in made:
            made[sheet_id] = SummaryRow(sheet_id, *particulars[sheet_id], *row[1:])
        return made[sheet_id]

    return {key: [summary_row(row) for row in rows] for key, rows in lists.items()}


# --- Data-driven hints ------------------------------------------------------------

# The customer pyramid, from the top: 白金 platinum, 黄金 gold, 铁 iron, 铅 lead.
# PYRAMID_CUTS (app config) says where each layer ends, as a share of customers
# from the top in %: by default the top 1%, the next 4%, the next 15%, the rest.
PYRAMID_LAYERS = (_l("Platinum"), _l("Gold"), _l("Iron"), _l("Lead"))
PYRAMID_CUTS = (1, 5, 20)


def sales_hint(customer_id, year, cuts=PYRAMID_CUTS):
    """Where the customer's sales of `year` stand among all customers' that year.

    Returns {"year", "sales", "top_percent" (the share of customers selling as
    much or more, 0–100), "layer" (the pyramid layer that share falls in)}, or
    None without figures. A hint for the committee, never a grade.
    """
    own = CustomerYear.get_or_none(CustomerYear.customer == customer_id,
                                   CustomerYear.year == year)
    if own is None:
        return None
    same_year = CustomerYear.select().where(CustomerYear.year == year)
    total = same_year.count()
    at_least = same_year.where(CustomerYear.sales >= own.sales).count()
    top_percent = round(100.0 * at_least / total, 1) if total else 100.0
    layer = next((name for cut, name in zip(cuts, PYRAMID_LAYERS) if top_percent <= cut),
                 PYRAMID_LAYERS[-1])
    return {"year": year, "sales": own.sales, "top_percent": top_percent, "layer": layer}
