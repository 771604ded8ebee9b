"""Forms of the funnel: the week in the URL, quick add, moves, an opportunity's details."""
from wtforms import BooleanField, DateField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length, Optional, ValidationError

from forms import Form, choices
from i18n import lazy_gettext as _l
from models import DomainError
from models.funnel import AMOUNT_LABELS, CHECKS, STAGES, check_amount


class AmountField(StringField):
    """An amount in 元, typed as text (1,200.50 and full-width digits are fine).
    `amount` holds the Decimal (None when left empty); a negative amount or text
    that is no number is a field error naming the field."""

    amount = None

    def pre_validate(self, form):
        try:
            self.amount = check_amount(self.data, AMOUNT_LABELS.get(self.name, self.label.text))
        except DomainError as error:
            raise ValidationError(str(error)) from None

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return "" if self.data is None else str(self.data)


def _amount(name, **kwargs):
    return AmountField(AMOUNT_LABELS[name], validators=[Optional(strip_whitespace=True),
                                                        Length(max=30)],
                       render_kw={"inputmode": "decimal", "placeholder": _l("元"),
                                  "autocomplete": "off"}, **kwargs)


class WeekForm(Form):
    """The week (and, for the team table, the branch) in the URL: a GET form."""
    class Meta:
        csrf = False

    week = StringField(_l("Week"), validators=[Optional(), Length(max=10)])
    branch = SelectField(_l("Branch"), coerce=str, validators=[Optional()])


class PeriodForm(Form):
    """The period of the conversion ratios, in weeks: a GET form."""
    class Meta:
        csrf = False

    start = StringField(_l("From week"), validators=[Optional(), Length(max=10)],
                        render_kw={"placeholder": "2027-W01"})
    end = StringField(_l("To week"), validators=[Optional(), Length(max=10)],
                      render_kw={"placeholder": "2027-W12"})
    branch = SelectField(_l("Branch"), coerce=str, validators=[Optional()])


# The quick add form's words: its template writes the inputs out by hand (it sits on
# the page reps open most), and takes its labels from here, translated once.
QUICK_ADD_LABELS = {
    "customer": _l("Prospect on file"),
    "new_name": _l("or a new prospect"),
    "stage": _l("Starts at"),
    "premium_received": AMOUNT_LABELS["premium_received"],
    "standard_premium": AMOUNT_LABELS["standard_premium"],
    "new_prospect": _l("— new prospect —"),
    "company_name": _l("Company name"),
    "yuan": _l("元"),
    "add": _l("Add"),
    "quick_add": _l("Quick add"),
}


class QuickAddForm(Form):
    """A prospect into the funnel in one line: one already on file, or a new name."""
    customer = SelectField(QUICK_ADD_LABELS["customer"], coerce=int, validators=[Optional()])
    new_name = StringField(QUICK_ADD_LABELS["new_name"], validators=[Optional(), Length(max=200)],
                           render_kw={"placeholder": _l("Company name"), "autocomplete": "off"})
    stage = SelectField(QUICK_ADD_LABELS["stage"], choices=choices(
        [("opportunity", STAGES["opportunity"]), ("meeting", STAGES["meeting"])]),
        default="meeting")
    premium_received = _amount("premium_received")
    standard_premium = _amount("standard_premium")

    def __init__(self, *args, prospects=(), **kwargs):
        """`prospects`: [(customer id, label)] the rep may choose from."""
        super().__init__(*args, **kwargs)
        self.customer.choices = choices([(0, QUICK_ADD_LABELS["new_prospect"]), *prospects])

    def validate_new_name(self, field):
        if bool(self.customer.data) == bool((field.data or "").strip()):
            raise ValidationError(_l("Choose a prospect or type the name of a new one."))


class MoveForm(Form):
    """One click: forward or back, from the stage the user saw."""
    direction = HiddenField(validators=[AnyOf(["forward", "back"])])
    stage = HiddenField(validators=[AnyOf(list(STAGES))])


class DetailsForm(Form):
    """Amounts, the signing date and the checks of the 50% and 90% stages."""
    premium_received = _amount("premium_received")
    standard_premium = _amount("standard_premium")
    expected_amount = _amount("expected_amount")
    signing_date = DateField(_l("Signing date"), validators=[Optional()])
    decision_maker_met = BooleanField(CHECKS["decision_maker_met"])
    plan_fits_need = BooleanField(CHECKS["plan_fits_need"])
    budget_discussed = BooleanField(CHECKS["budget_discussed"])
    next_step_agreed = BooleanField(CHECKS["next_step_agreed"])
    contract_signed = BooleanField(_l("The contract is signed"))
    payment_received = BooleanField(_l("The payment is received"))

    def values(self):
        """The keyword arguments of update_details()."""
        values = {name: getattr(self, name).data for name in (
            "signing_date", "decision_maker_met", "plan_fits_need", "budget_discussed",
            "next_step_agreed", "contract_signed", "payment_received")}
        for name in AMOUNT_LABELS:
            values[name] = getattr(self, name).amount
        return values


class LostForm(Form):
    reason = TextAreaField(_l("Why was it lost?"), validators=[
        DataRequired(message=_l("Say why the opportunity was lost.")), Length(max=500)])
