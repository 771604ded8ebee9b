"""Forms of the grading cycle: setup, one criterion's score, submission."""
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from forms import RECORD_ID, Form, QueryForm, choices
from forms.admin import MultiCheckboxField
from i18n import lazy_gettext as _l
from models import Branch, ScorecardTemplate, User
from models.customers import KINDS
from models.scorecards import POINTS_LIMIT


class CycleForm(Form):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)],
                       render_kw={"placeholder": "2027年度客户分级评定"})
    year = IntegerField(_l("Year"), validators=[DataRequired(), NumberRange(2000, 2100)])
    template_existing = SelectField(_l("Scorecard for existing customers"), coerce=int)
    template_prospect = SelectField(_l("Scorecard for prospects"), coerce=int)
    branches = MultiCheckboxField(_l("Branches in scope (none: all)"), coerce=int)
    kinds = MultiCheckboxField(_l("Customer kinds in scope (none: all)"), choices=choices(KINDS))
    chair = SelectField(_l("Committee chair"), coerce=int)
    members = MultiCheckboxField(_l("Committee members"), coerce=int)
    meeting_from = DateField(_l("Meeting from"), validators=[Optional()])
    meeting_to = DateField(_l("Meeting to"), validators=[Optional()])
    disagreement_points = IntegerField(
        _l("Flag disagreement above (points)"), default=10,
        validators=[DataRequired(), NumberRange(1, 1000)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        templates = ScorecardTemplate.select().order_by(ScorecardTemplate.name,
                                                        ScorecardTemplate.version.desc())
        self.template_existing.choices = choices(
            [(t.id, f"{t.name} v{t.version}") for t in templates if t.kind == "existing"])
        self.template_prospect.choices = choices(
            [(0, _l("— prospects are not graded —"))]
            + [(t.id, f"{t.name} v{t.version}") for t in templates if t.kind == "prospect"])
        self.branches.choices = choices([(b.id, b.name) for b in Branch.select().order_by(
            Branch.code)])
        committee = (User.select().where(User.active).order_by(User.display_name))
        self.chair.choices = choices([(u.id, u.display_name) for u in committee
                                      if u.has_role("committee_chair")])
        self.members.choices = choices([(u.id, u.display_name) for u in committee
                                        if u.has_role("committee_member", "committee_chair")])

    def validate_meeting_to(self, field):
        if field.data and self.meeting_from.data and field.data < self.meeting_from.data:
            from wtforms.validators import ValidationError
            raise ValidationError(_l("The meeting cannot end before it starts."))


class ScoreForm(Form):
    """One criterion of one sheet, saved as the user changes it. Whether the points
    fit the criterion and its level is the model's rule (save_score)."""
    criterion = IntegerField(validators=[DataRequired(), RECORD_ID])
    level = IntegerField(validators=[Optional(), RECORD_ID])
    # Any whole number passes here, however large: save_score() says what fits.
    points = IntegerField(_l("Points"), validators=[Optional()],
                          invalid_value_message=_l("Enter whole points."))
    comment = TextAreaField(_l("Comment"), validators=[Optional(), Length(max=1000)])
    revision = IntegerField(default=0, validators=[Optional(), NumberRange(0, 2**31 - 1)])
    stage = SelectField(choices=choices([("preliminary", "preliminary"),
                                         ("committee", "committee")]))

    def refusal(self):
        """(field name, message) of the first field that did not validate, or None."""
        for name in ("points", "level", "comment"):
            if self[name].errors:
                return name, str(self[name].errors[0])
        return next(((name, str(errors[0])) for name, errors in self.errors.items()), None)

    def typed(self):
        """What the screen sent, to show back beside a refusal: the level and comment,
        and the points exactly as typed."""
        raw = self.points.raw_data
        return {"level": self.level.data, "points": raw[0] if raw else "",
                "comment": self.comment.data or "", "revision": self.revision.data or 0}


class SubmitForm(Form):
    comment = TextAreaField(_l("Overall comment"), validators=[Optional(), Length(max=2000)])
    confirm = HiddenField(default="1")
    # The criteria whose rows on the screen show a change not saved (refused, proposed
    # or being typed): filled in by the sheet's script as it submits.
    unsaved = SelectMultipleField(coerce=int, validate_choice=False)


def what_if_form(args, tiers):
    """The cycle page's "what if" bands: a whole-point minimum per tier, as
    `band_<tier id>`; anything else (text, inf, nan, far out of range) is ignored."""
    class WhatIfForm(QueryForm):
        def thresholds(self):
            """{tier id: minimum total} of the valid bands given, or None."""
            found = {tier.id: self.value(f"band_{tier.id}") for tier in tiers}
            return {tier_id: value for tier_id, value in found.items()
                    if value is not None} or None

    for tier in tiers:
        setattr(WhatIfForm, f"band_{tier.id}", IntegerField(validators=[
            Optional(), NumberRange(-POINTS_LIMIT, POINTS_LIMIT)]))
    return WhatIfForm(args)


class SheetsFilterForm(QueryForm):
    """The cycle's list of sheets: by state and branch, a page at a time."""
    state = SelectField(choices=choices([("", ""), ("open", "open"),
                                         ("submitted", "submitted")]), default="")
    branch = IntegerField(validators=[Optional(), RECORD_ID])
    page = IntegerField(default=1, validators=[Optional(), NumberRange(1, 100000)])


class MeetingFilterForm(QueryForm):
    """The meeting's agenda: one branch's customers, in an order, all or the
    unsettled ones only (`state=open`)."""
    branch = IntegerField(validators=[Optional(), RECORD_ID])
    order = SelectField(choices=choices([("agenda", "agenda"), ("grade", "grade"),
                                         ("borderline", "borderline"),
                                         ("disagreement", "disagreement")]), default="agenda")
    state = SelectField(choices=choices([("", ""), ("open", "open")]), default="")

    def args(self):
        """The valid filters as query arguments, for links and forms that keep them."""
        found = {name: self.value(name) for name in ("branch", "order", "state")}
        return {name: value for name, value in found.items()
                if value not in (None, "") and not (name == "order" and value == "agenda")}


class MeetingPollForm(QueryForm):
    """What a meeting screen shows now: the current sheet and whether it is final;
    the chair's board asks for one sheet."""
    seen = IntegerField(validators=[Optional(), RECORD_ID])
    final = StringField()
    assessment = IntegerField(validators=[Optional(), RECORD_ID])


class FinaliseForm(Form):
    """The chair's decision on the current customer."""
    tier = SelectField(_l("Final grade"), coerce=int, validate_choice=False)
    rationale = TextAreaField(_l("Rationale (needed when the grade differs from the mean's)"),
                              validators=[Optional(), Length(max=2000)])
    special_policy = BooleanField(_l("Special policy"))
    credit_review = BooleanField(_l("Credit-rating review"))
    reopen = BooleanField()
    # The chair's one key: settle, then move everyone to the next unsettled customer.
    and_next = BooleanField()


class ToDiscussForm(Form):
    """The chair sets the current customer aside to discuss again (or clears it)."""
    flag = BooleanField()


class TakeOverForm(Form):
    """A committee member takes over the preliminary scores as their own (one key)."""
