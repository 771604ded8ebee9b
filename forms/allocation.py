"""Forms of customer allocation: the branch chosen, a rule, a bulk reassignment."""
from wtforms import DecimalField, HiddenField, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from forms import Form, choices, chosen_id
from i18n import lazy_gettext as _l
from models import Branch, Tier, User
from models.allocation import DEFAULT_IMBALANCE, UNASSIGNED
from models.customers import INDUSTRIES, NATURES, VALUE_CLASSES
from models.people import managers_of

ANY = ("", _l("Any"))


def branch_of(form_branch, user):
    """The branch id a page is about: the scoped user's own, else the one chosen, else
    the first the user may read (by code)."""
    if user.is_branch_scoped:
        return user.branch_id
    chosen = chosen_id(form_branch)
    visible = [id_ for id_, _name in Branch.names_for(user)]
    return chosen if chosen in visible else (visible[0] if visible else None)


class _OfBranch(Form):
    """A form about one branch: the scoped user's own, or the one a company-wide user
    chose (`branch_id`)."""
    branch = SelectField(_l("Branch"), validators=[Optional()], coerce=str)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.branch.choices = choices([(str(id_), name) for id_, name in Branch.names_for(user)])
        self.branch_scoped = user.is_branch_scoped
        self.branch_id = branch_of(self.branch, user)
        self.branch.data = str(self.branch_id)


class BranchForm(_OfBranch):
    """The branch an allocation page is about (company-wide users), and the ratio beyond
    which a manager's book is out of balance: from the query string."""
    class Meta:
        csrf = False

    ratio = DecimalField(_l("Imbalance ratio"), places=1, default=DEFAULT_IMBALANCE,
                         validators=[Optional(), NumberRange(min=1, max=10)],
                         description=_l("A book this many times above or below the "
                                        "branch's average is highlighted."),
                         render_kw={"inputmode": "decimal"})

    def imbalance(self):
        ratio = self.ratio.data
        return DEFAULT_IMBALANCE if self.ratio.errors or not ratio else ratio


class CheckboxList(SelectMultipleField):
    """Checkboxes. Any id passes the form: save_rule() refuses a person who left or
    works elsewhere, in words that name them."""
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def pre_validate(self, form):
        pass


class RuleForm(Form):
    """A rule's criteria (empty: any) and its manager or pool. The checks against the
    branch are save_rule()'s, so that the page shows them in its words."""
    region = StringField(_l("Region contains"), validators=[Optional(), Length(max=100)])
    industry = SelectField(_l("Industry"), choices=choices([ANY, *INDUSTRIES.items()]),
                           validators=[Optional()])
    nature = SelectField(_l("Enterprise nature"), choices=choices([ANY, *NATURES.items()]),
                         validators=[Optional()])
    tier = SelectField(_l("Tier"), validators=[Optional()], coerce=str)
    value_class = SelectField(_l("Value class"), choices=choices([ANY, *VALUE_CLASSES.items()]),
                              validators=[Optional()])
    managers = CheckboxList(_l("Account managers"), coerce=int,
                            description=_l("Several make a pool: each customer goes to the "
                                           "one with the fewest customers of its tier."))

    def __init__(self, *args, branch_id, **kwargs):
        super().__init__(*args, **kwargs)
        self.tier.choices = choices([ANY] + [(str(t.id), t.display_name)
                                             for t in Tier.in_order()])
        people = list(managers_of([branch_id]))
        # A person chosen earlier who has left stays listed, so that the rule can be
        # read and the refusal names them.
        self.managers.choices = choices([(u.id, u.display_name) for u in people])

    def values(self):
        """The form's data as keyword arguments of save_rule()."""
        return {"region": self.region.data or "", "industry": self.industry.data or "",
                "nature": self.nature.data or "", "tier": chosen_id(self.tier),
                "value_class": self.value_class.data or "",
                "manager_ids": self.managers.data or []}


class _Choice(_OfBranch):
    """Which customers of the branch change hands, and to whom."""
    from_manager = SelectField(_l("Customers of"), validators=[Optional()], coerce=str)
    tier = SelectField(_l("Tier"), validators=[Optional()], coerce=str)
    industry = SelectField(_l("Industry"), choices=choices([ANY, *INDUSTRIES.items()]),
                           validators=[Optional()])
    value_class = SelectField(_l("Value class"), choices=choices([ANY, *VALUE_CLASSES.items()]),
                              validators=[Optional()])
    to_manager = SelectField(_l("Give them to"), validators=[Optional()], coerce=str)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Everyone of the branch, active or not: the one who leaves may be deactivated.
        people = list(User.select(User.id, User.display_name, User.active)
                      .where(User.branch == self.branch_id).order_by(User.display_name))
        self.from_manager.choices = choices(
            [("", _l("Anyone")), (str(UNASSIGNED), _l("Nobody (no account manager)"))]
            + [(str(u.id), u.display_name if u.active else _l("%(name)s (inactive)",
                                                               name=u.display_name))
               for u in people])
        self.tier.choices = choices([ANY] + [(str(t.id), t.display_name)
                                             for t in Tier.in_order()]
                                    + [("0", _l("No tier yet"))])
        self.to_manager.choices = choices(
            [("", _l("By the allocation rules"))]
            + [(str(u.id), u.display_name) for u in people if u.active])

    def choice(self):
        """The valid choice as keyword arguments of plan_reassignment()."""
        from_text = "" if self.from_manager.errors else (self.from_manager.data or "")
        return {
            "from_manager_id": UNASSIGNED if from_text == str(UNASSIGNED)
            else chosen_id(self.from_manager),
            "tier_id": chosen_id(self.tier),
            "industry": self.industry.data or None if not self.industry.errors else None,
            "value_class": self.value_class.data or None if not self.value_class.errors
            else None,
            "to_manager_id": chosen_id(self.to_manager),
        }


class ReassignForm(_Choice):
    """The choice to preview: from the query string, so no CSRF."""
    class Meta:
        csrf = False


class ConfirmForm(_Choice):
    """The previewed choice posted back with the preview's fingerprint."""
    fingerprint = HiddenField(validators=[DataRequired(), Length(max=64)])
