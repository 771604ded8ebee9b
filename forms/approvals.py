"""Forms of tier change requests: filing, deciding, the queue and the rules."""
import datetime

from wtforms import (
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from forms import Form, choices, chosen_id
from i18n import lazy_gettext as _l
from models import Branch, Tier
from models.approvals import APPROVER_ROLES, SOURCES
from models.people import ROLES

from .customers import ANY

DECISIONS = {"approve": _l("Approve"), "reject": _l("Reject")}
# One request may also go back to its requester to change and file again (退回).
ONE_DECISIONS = {**DECISIONS, "return": _l("Return for changes")}
# Enough for any real chain of approvers.
MAX_STEPS = 5


class RequestForm(Form):
    to_tier = SelectField(_l("Change to"), coerce=int)
    effective_on = DateField(_l("Effective from"), validators=[DataRequired()],
                             default=datetime.date.today)
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=2000)],
                           render_kw={"rows": 4})

    source = SelectField(_l("Source"), default="mid_year")

    def __init__(self, *args, customer, provisional_due=False, **kwargs):
        super().__init__(*args, **kwargs)
        # A provisional customer due may keep its tier: the approval confirms it.
        self.to_tier.choices = choices([(t.id, t.display_name) for t in Tier.ordered()
                                        if provisional_due or t.id != customer.tier_id])
        self.source.choices = choices([(k, SOURCES[k]) for k in (
            ("provisional", "mid_year") if provisional_due else ("mid_year",))])


class DecisionForm(Form):
    step = HiddenField(validators=[DataRequired()])
    decision = SelectField(choices=choices(ONE_DECISIONS), validators=[DataRequired()])
    comment = TextAreaField(_l("Comment"), validators=[Optional(), Length(max=2000)],
                            render_kw={"rows": 2})


class RemindForm(Form):
    """催办: no fields, the CSRF token alone."""


class WithdrawForm(Form):
    comment = TextAreaField(_l("Comment"), validators=[Optional(), Length(max=2000)])


class BulkDecisionForm(Form):
    steps = SelectMultipleField(coerce=int, validate_choice=False,
                                validators=[DataRequired(message=_l("Tick the requests to "
                                                                    "decide."))])
    decision = SelectField(choices=choices(DECISIONS), validators=[DataRequired()])
    comment = TextAreaField(_l("One comment for all of them"),
                            validators=[Optional(), Length(max=2000)], render_kw={"rows": 2})


class QueueFilterForm(Form):
    """The queue's filters: a GET form, so no CSRF."""
    class Meta:
        csrf = False

    q = StringField(_l("Customer"), validators=[Optional(), Length(max=100)],
                    render_kw={"placeholder": _l("Code, name or pinyin initials"),
                               "type": "search", "autocomplete": "off"})
    branch = SelectField(_l("Branch"), validators=[Optional()], coerce=str)
    to_tier = SelectField(_l("Change to"), validators=[Optional()], coerce=str)
    source = SelectField(_l("Source"), validators=[Optional()],
                         choices=choices([ANY, *SOURCES.items()]))
    page = IntegerField(default=1, validators=[Optional(), NumberRange(min=1, max=100000)])

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.branch.choices = choices([ANY] + [(str(id_), name)
                                               for id_, name in Branch.names_for(user)])
        self.tiers = Tier.in_order()  # the queue's badges use them too
        self.to_tier.choices = choices([ANY] + [(str(t.id), t.display_name)
                                                for t in self.tiers])

    def filters(self):
        return {"branch_id": chosen_id(self.branch), "to_tier_id": chosen_id(self.to_tier),
                "source": self.source.data or None if not self.source.errors else None,
                "q": (self.q.data or "").strip() if not self.q.errors else ""}

    def current_page(self):
        return self.page.data if self.page.data and not self.page.errors else 1


class RuleForm(Form):
    """One rule's ordered approvers: step 1, step 2, … (empty ones are dropped)."""
    role_1 = SelectField(_l("Step 1"), default="")
    role_2 = SelectField(_l("Step 2"), default="")
    role_3 = SelectField(_l("Step 3"), default="")
    role_4 = SelectField(_l("Step 4"), default="")
    role_5 = SelectField(_l("Step 5"), default="")
    remind_days = IntegerField(_l("Remind after (days)"), validators=[
        Optional(), NumberRange(1, 90)], description=_l("Empty: never."))
    escalate_days = IntegerField(_l("Escalate after (days)"), validators=[
        Optional(), NumberRange(1, 90)], description=_l("Empty: never."))
    escalate_to = SelectField(_l("Escalate to"), default="")
    action = SelectField(choices=choices([("save", "save"), ("reset", "reset")]),
                         default="save")

    def __init__(self, *args, roles=(), limits=None, **kwargs):
        super().__init__(*args, **kwargs)
        options = choices([("", "—")] + [(r, ROLES[r]) for r in APPROVER_ROLES])
        for n in range(1, MAX_STEPS + 1):
            field = getattr(self, f"role_{n}")
            field.choices = options
            if not self.is_submitted() and n <= len(roles):
                field.data = roles[n - 1]
        self.escalate_to.choices = choices(
            [("", _l("The role above"))] + [(r, ROLES[r]) for r in APPROVER_ROLES])
        if not self.is_submitted() and limits is not None:
            (self.remind_days.data, self.escalate_days.data,
             self.escalate_to.data) = limits

    def validate_escalate_days(self, field):
        if field.data and self.remind_days.data and field.data <= self.remind_days.data:
            raise ValidationError(_l("Escalate later than the reminder."))

    def limits(self):
        return dict(remind_days=self.remind_days.data or None,
                    escalate_days=self.escalate_days.data or None,
                    escalate_to=self.escalate_to.data or "")

    def role_fields(self):
        return [getattr(self, f"role_{n}") for n in range(1, MAX_STEPS + 1)]

    def roles(self):
        return [f.data for f in self.role_fields() if f.data]


class DelegationForm(Form):
    """I am away from … to …: who decides my approval steps meanwhile."""
    delegate = SelectField(_l("Who stands in for me"), coerce=int,
                           validators=[DataRequired(_l("Choose a colleague."))])
    starts_on = DateField(_l("First day away"), validators=[DataRequired()])
    ends_on = DateField(_l("Last day away"), validators=[DataRequired()])

    def __init__(self, *args, colleagues=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.delegate.choices = [(0, "—")] + [(u.id, u.display_name) for u in colleagues]
        if not self.is_submitted():
            self.starts_on.data = self.starts_on.data or datetime.date.today()


class EndDelegationForm(Form):
    """Back early: end a period away."""
