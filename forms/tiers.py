"""Forms of the tiers domain: a tier itself, a policy version, the compliance filters."""
import datetime

from wtforms import BooleanField, DateField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from forms import Form, choices
from i18n import lazy_gettext as _l
from models import Branch
from models.compliance import SERVICE_KINDS
from models.tiers import PRIORITIES

from .customers import ANY, manager_choices

INTERVAL = [Optional(), NumberRange(min=1, max=3660)]


class TierForm(Form):
    code = StringField(_l("Code"), validators=[
        DataRequired(), Length(max=16),
        Regexp(r"^[A-Za-z0-9_-]+$", message=_l("Use letters, digits, '-' and '_'."))])
    name_zh = StringField(_l("Chinese name"), validators=[DataRequired(), Length(max=50)])
    name_en = StringField(_l("English name"), validators=[DataRequired(), Length(max=50)])
    colour = StringField(_l("Colour"), default="#64748b", render_kw={"type": "color"},
                         validators=[DataRequired(), Regexp(r"^#[0-9a-fA-F]{6}$",
                                                            message=_l("Give #rrggbb."))])

    def values(self):
        return {"code": self.code.data, "name_zh": self.name_zh.data,
                "name_en": self.name_en.data, "colour": self.colour.data}


class MoveTierForm(Form):
    """One step up or down the tier list."""
    to = SelectField(choices=choices([("up", _l("Move up")), ("down", _l("Move down"))]),
                     validators=[DataRequired()])


class PolicyForm(Form):
    effective_on = DateField(_l("Effective from"), validators=[DataRequired()],
                             default=datetime.date.today)
    contact_days = IntegerField(_l("Contact every (days)"), validators=INTERVAL,
                                description=_l("A call, visit or e-mail. Empty: not promised."))
    visit_days = IntegerField(_l("Visit every (days)"), validators=INTERVAL)
    analysis_days = IntegerField(_l("Sales analysis every (days)"), validators=INTERVAL)
    response_hours = IntegerField(_l("Response time (hours)"),
                                  validators=[Optional(), NumberRange(min=1, max=720)])
    holiday_greetings = BooleanField(_l("Holiday greetings"))
    dedicated_manager = BooleanField(_l("A dedicated account manager (else the sales team)"))
    production_priority = SelectField(_l("Production priority"), choices=choices(PRIORITIES),
                                      default="normal")
    credit_terms = StringField(_l("Credit terms"), validators=[Optional(), Length(max=200)])
    notes = TextAreaField(_l("Further terms (Markdown)"),
                          validators=[Optional(), Length(max=20000)],
                          render_kw={"rows": 8})

    def values(self):
        return {name: getattr(self, name).data for name in (
            "effective_on", "contact_days", "visit_days", "analysis_days", "response_hours",
            "holiday_greetings", "dedicated_manager", "production_priority", "credit_terms",
            "notes")}


class ComplianceFilterForm(Form):
    """Which overdue list: a GET form, so no CSRF."""
    class Meta:
        csrf = False

    kind = SelectField(_l("Overdue for"), validators=[Optional()], default="contact",
                       choices=choices({k: v[0] for k, v in SERVICE_KINDS.items()}))
    branch = SelectField(_l("Branch"), validators=[Optional()], coerce=str)
    manager = SelectField(_l("Account manager"), validators=[Optional()], coerce=str)
    page = IntegerField(default=1, validators=[Optional(), NumberRange(min=1, max=100000)])

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        names = Branch.names_for(user)
        branches = [id_ for id_, _name in names]
        self.branch.choices = choices([ANY] + [(str(id_), name) for id_, name in names])
        chosen = [id_ for id_ in branches if str(id_) == (self.branch.data or "")]
        self.manager.choices = manager_choices(branches if user.is_branch_scoped else chosen)

    def chosen_kind(self):
        return self.kind.data if self.kind.data in SERVICE_KINDS else "contact"

    def current_page(self):
        return self.page.data if self.page.data and not self.page.errors else 1
