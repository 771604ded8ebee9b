"""Forms of the customer book: filters, the customer itself, contacts, activities, import."""
import datetime
import unicodedata

from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import (
    BooleanField,
    DateField,
    DecimalField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    Email,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from forms import Form, choices, chosen_id
from i18n import lazy_gettext as _l
from models import Branch, Tier
from models.customers import (
    ACTIVITY_KINDS,
    CODE_UNAVAILABLE,
    INDUSTRIES,
    KINDS,
    NATURES,
    SORTS,
    VALUE_CLASSES,
    code_refusal,
)
from models.people import manager_names, managers_of

ANY = ("", _l("All"))


def visible_branches(user):
    """The branches a filter or form offers the user, by code."""
    return Branch.visible_to(user).order_by(Branch.code)


def manager_choices(branch_ids):
    """"Any" and [(id, name)] of the account managers of these branches, for a filter."""
    if not branch_ids:  # a company-wide user who chose no branch: nothing to ask
        return choices([ANY])
    return choices([ANY] + [(str(id_), name) for id_, name in manager_names(branch_ids)])


class CustomerFilterForm(Form):
    """The list's search and filters: a GET form, so no CSRF."""
    class Meta:
        csrf = False

    q = StringField(_l("Search"), validators=[Optional(), Length(max=100)],
                    render_kw={"placeholder": _l("Code, name or pinyin initials"),
                               "autocomplete": "off", "type": "search"})
    branch = SelectField(_l("Branch"), validators=[Optional()], coerce=str)
    tier = SelectField(_l("Tier"), validators=[Optional()], coerce=str)
    kind = SelectField(_l("Kind"), choices=choices([ANY, *KINDS.items()]),
                       validators=[Optional()])
    nature = SelectField(_l("Enterprise nature"), choices=choices([ANY, *NATURES.items()]),
                         validators=[Optional()])
    industry = SelectField(_l("Industry"), choices=choices([ANY, *INDUSTRIES.items()]),
                           validators=[Optional()])
    manager = SelectField(_l("Account manager"), validators=[Optional()], coerce=str)
    provisional = SelectField(_l("Provisional tier"), choices=choices(
        [ANY, ("1", _l("Provisional only")), ("0", _l("Not provisional"))]),
        validators=[Optional()])
    value_class = SelectField(_l("Value class"), choices=choices([ANY, *VALUE_CLASSES.items()]),
                              validators=[Optional()])
    sort = SelectField(choices=choices([(k, k) for k in SORTS]), default="code",
                       validators=[Optional()])
    dir = SelectField(choices=choices([("asc", "asc"), ("desc", "desc")]), default="asc",
                      validators=[Optional()])
    page = IntegerField(default=1, validators=[Optional(), NumberRange(min=1, max=100000)])

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        branches = Branch.names_for(user)
        self.branch.choices = choices([ANY] + [(str(id_), name) for id_, name in branches])
        self.tiers = Tier.in_order()  # the page shows them too
        self.tier.choices = choices([ANY] + [(str(t.id), t.display_name) for t in self.tiers]
                                    + [("0", _l("No tier yet"))])
        # Account managers of one branch: the scoped user's, or the one chosen.
        # (A company-wide list would be hundreds of options on every keystroke.)
        chosen = [id_ for id_, _name in branches if str(id_) == (self.branch.data or "")]
        manager_branches = [id_ for id_, _name in branches] if user.is_branch_scoped else chosen
        self.manager.choices = manager_choices(manager_branches)

    def filters(self):
        """The valid filters as keyword arguments of find_customers()."""
        return {
            "q": (self.q.data or "") if not self.q.errors else "",
            "branch_id": chosen_id(self.branch), "tier_id": chosen_id(self.tier),
            "kind": self.kind.data or None if not self.kind.errors else None,
            "nature": self.nature.data or None if not self.nature.errors else None,
            "industry": self.industry.data or None if not self.industry.errors else None,
            "manager_id": chosen_id(self.manager),
            "provisional": None if not self.provisional.data or self.provisional.errors
            else self.provisional.data == "1",
            "value_class": self.value_class.data or None if not self.value_class.errors
            else None,
        }

    def ordering(self):
        """(sort key, descending) as customer_page() takes them."""
        return (self.sort.data if self.sort.data in SORTS else "code"), self.dir.data == "desc"

    def current_page(self):
        return self.page.data if self.page.data and not self.page.errors else 1


def _nfkc(text):
    """Full-width to half-width and trimmed, as the import reads codes."""
    return unicodedata.normalize("NFKC", text).strip() if text else text


class CodeFormat:
    """At most 32 letters, digits, '.', '-' and '_'. A branch-scoped user reads the words
    save_customer() gives for a code held anywhere (CODE_UNAVAILABLE), so that a code
    another branch holds cannot be told from a malformed one."""

    field_flags = {"maxlength": 32}

    def __init__(self):
        self.checks = (Length(max=32), Regexp(r"^[A-Za-z0-9_.\-]+$", message=_l(
            "Use letters, digits, '.', '-' and '_'.")))

    def __call__(self, form, field):
        try:
            for check in self.checks:
                check(form, field)
        except ValidationError:
            if form.branch_scoped:
                raise ValidationError(CODE_UNAVAILABLE) from None
            raise


class CustomerForm(Form):
    code = StringField(_l("Customer code"), filters=[_nfkc],
                       validators=[DataRequired(), CodeFormat()])
    name = StringField(_l("Customer name"), validators=[DataRequired(), Length(max=200)])
    kind = SelectField(_l("Kind"), choices=choices(KINDS))
    nature = SelectField(_l("Enterprise nature"), choices=choices(NATURES), default="private")
    industry = SelectField(_l("Industry"), choices=choices(INDUSTRIES))
    region = StringField(_l("Region"), validators=[Optional(), Length(max=100)])
    branch = SelectField(_l("Branch"), coerce=int)
    account_manager = SelectField(_l("Account manager"), coerce=int)
    cooperation_since = DateField(_l("Working with us since"), validators=[Optional()])
    provisional = BooleanField(_l("Provisional tier (new customer, under six months)"))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.branch_scoped = user.is_branch_scoped
        self.customer = kwargs.get("obj")  # the customer edited; None for a new one
        branches = {b.id: b.name for b in visible_branches(user)}
        self.branch.choices = choices(branches)
        # Each manager named with the branch (from the list above: no query per manager).
        self.account_manager.choices = choices(
            [(0, _l("— none —"))] + [(u.id, f"{u.display_name}（{branches[u.branch_id]}）")
                                     for u in managers_of(list(branches))])

    def validate_code(self, field):
        """A code another customer holds is refused beside the field, where a malformed
        one is, and for a branch-scoped user in the same words (code_refusal)."""
        if field.errors:
            return  # malformed: said already
        refusal = code_refusal(field.data.strip(), self.customer, self.branch_scoped)
        if refusal:
            raise ValidationError(refusal)

    def validate_cooperation_since(self, field):
        if field.data and field.data > datetime.date.today():
            from wtforms.validators import ValidationError
            raise ValidationError(_l("This date lies in the future."))

    def values(self):
        """The form's data as keyword arguments of save_customer()."""
        return {
            "code": self.code.data.strip(), "name": self.name.data.strip(),
            "kind": self.kind.data, "nature": self.nature.data,
            "industry": self.industry.data, "region": (self.region.data or "").strip(),
            "branch": self.branch.data, "account_manager": self.account_manager.data or None,
            "cooperation_since": self.cooperation_since.data,
            "provisional": self.provisional.data,
        }


class ActivityForm(Form):
    kind = SelectField(_l("Kind of contact"), choices=choices(ACTIVITY_KINDS))
    occurred_on = DateField(_l("Date"), default=datetime.date.today,
                            validators=[DataRequired()])
    notes = TextAreaField(_l("Notes"), validators=[Optional(), Length(max=2000)],
                          render_kw={"rows": 2})


class ContactForm(Form):
    name = StringField(_l("Contact name"), validators=[DataRequired(), Length(max=50)])
    title = StringField(_l("Position"), validators=[Optional(), Length(max=50)])
    phone = StringField(_l("Phone"), validators=[
        Optional(), Length(max=50),
        Regexp(r"^[0-9+()\- ]+$", message=_l("Digits, spaces, +, - and brackets only."))])
    email = StringField(_l("E-mail"), validators=[Optional(), Length(max=100), Email()])


class PortfolioFiguresForm(Form):
    """A year's share of wallet and upcoming purchase volume; the range checks are
    save_portfolio_figures()'s, so that the page shows them in its words."""
    year = IntegerField(_l("Year"), default=lambda: datetime.date.today().year,
                        validators=[DataRequired(), NumberRange(min=1990, max=2100)])
    share_of_wallet = DecimalField(_l("Our share (%)"), places=2, validators=[Optional()],
                                   render_kw={"inputmode": "decimal"})
    upcoming_volume = DecimalField(_l("Upcoming purchase volume (yuan)"), places=2,
                                   validators=[Optional()],
                                   render_kw={"inputmode": "decimal"})

    def values(self):
        """The form's data as keyword arguments of save_portfolio_figures()."""
        return {"year": self.year.data, "share_of_wallet": self.share_of_wallet.data,
                "upcoming_volume": self.upcoming_volume.data}


class ImportForm(Form):
    file = FileField(_l("Spreadsheet (.xlsx or .csv)"), validators=[
        FileRequired(_l("Choose a file.")),
        FileAllowed(["xlsx", "csv"], _l("Only .xlsx and .csv files can be imported."))])
