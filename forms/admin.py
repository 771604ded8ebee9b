"""Forms an administrator uses for users and branches."""
from wtforms import (
    BooleanField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    widgets,
)
from wtforms.validators import DataRequired, Email, Length, NumberRange, Optional, Regexp

from forms import Form, QueryForm, choices, chosen_id
from i18n import lazy_gettext as _l
from models import Branch
from models.customers import normalise_query
from models.people import LANGUAGES, ROLES

CODE = Regexp(r"^[A-Za-z0-9_-]+$", message=_l("Use letters, digits, - and _ only."))


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class UserForm(Form):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64), CODE])
    display_name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    password = PasswordField(_l("Password"), validators=[Optional(), Length(min=8, max=256)],
                             description=_l("Leave empty to keep the current password."))
    roles = MultiCheckboxField(_l("Roles"), choices=choices(ROLES),
                               validators=[DataRequired(message=_l("Choose at least one role."))])
    branch = SelectField(_l("Branch"), coerce=int)
    language = SelectField(_l("Language"), choices=choices(LANGUAGES))
    sales_cycle_days = IntegerField(_l("Sales cycle (days)"), default=28,
                                    validators=[DataRequired(), NumberRange(min=1, max=365)])
    email = StringField(_l("E-mail"), validators=[Optional(), Length(max=254), Email()],
                        description=_l("Where e-mail notices go."))
    mobile = StringField(_l("Mobile number"), validators=[
        Optional(), Length(max=32),
        Regexp(r"^\+?[0-9 -]{5,31}$", message=_l("Digits only, an optional + in front."))],
                         description=_l("How a group robot @-mentions the person."))
    active = BooleanField(_l("Active"), default=True)

    def __init__(self, *args, creating=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.branch.choices = choices([(0, _l("— none —"))] + [
            (b.id, f"{b.name} ({b.code})") for b in Branch.select().order_by(Branch.code)])
        if creating:
            self.password.validators = [DataRequired(), Length(min=8, max=256)]
            self.password.description = ""

    def selected_branch(self):
        return Branch.get_or_none(Branch.id == self.branch.data) if self.branch.data else None


class BranchForm(Form):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=32), CODE])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    region = StringField(_l("Region"), validators=[Optional(), Length(max=100)])


class UserFilterForm(QueryForm):
    """The list of users: by name, branch, role and status, a page at a time."""
    q = StringField(_l("Search"), validators=[Optional(), Length(max=64)],
                    render_kw={"placeholder": _l("Username or name"), "type": "search"})
    branch = SelectField(_l("Branch"), validators=[Optional()], choices=[])
    role = SelectField(_l("Role"), choices=choices([("", _l("All roles")), *ROLES.items()]),
                       default="")
    status = SelectField(_l("Status"), default="", choices=choices([
        ("", _l("All")), ("active", _l("Active")), ("inactive", _l("Deactivated"))]))
    page = IntegerField(default=1, validators=[Optional(), NumberRange(1, 100000)])

    def __init__(self, args):
        super().__init__(args)
        self.branch.choices = choices([("", _l("All branches"))] + [
            (str(b.id), b.name) for b in Branch.select().order_by(Branch.code)])
        self.validate()  # again, now that the branches to choose from are known

    def filters(self):
        """The valid filters as find_users() takes them."""
        return {"q": normalise_query(self.value("q")), "role": self.value("role"),
                "status": self.value("status"), "branch_id": chosen_id(self.branch)}

    def args(self):
        """The valid filters as query arguments, for the pager and the pushed URL."""
        found = self.filters()
        return {name: value for name, value in (
            ("q", found["q"]), ("branch", found["branch_id"]), ("role", found["role"]),
            ("status", found["status"])) if value}
