"""Forms of the portfolio: its filters and the versioned thresholds and strategies."""
import datetime

from wtforms import DateField, DecimalField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from forms import Form, choices, chosen_id
from i18n import lazy_gettext as _l
from models import Branch, Tier
from models.customers import INDUSTRIES, VALUE_CLASSES
from models.portfolio import SETTING_FIELDS
from models.value_classes import RULE_FIELDS

ANY = ("", _l("All"))
STRATEGY_NAME = [DataRequired(), Length(max=50)]
SERVICE_NOTE = [Optional(), Length(max=1000)]
NOTE_LABEL, NOTE_BOX = _l("How we serve them"), {"rows": 2}


class PortfolioFilterForm(Form):
    """The page's filters, from the query string: no CSRF. The branch is offered only
    to users who see every branch."""
    class Meta:
        csrf = False

    branch = SelectField(_l("Branch"), validators=[Optional()], coerce=str)
    tier = SelectField(_l("Tier"), validators=[Optional()], coerce=str)
    industry = SelectField(_l("Industry"), choices=choices([ANY, *INDUSTRIES.items()]),
                           validators=[Optional()])
    value_class = SelectField(_l("Value class"), choices=choices([ANY, *VALUE_CLASSES.items()]),
                              validators=[Optional()])

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.branch_scoped = user.is_branch_scoped
        self.branch.choices = choices([ANY] + [(str(id_), name)
                                               for id_, name in Branch.names_for(user)])
        self.tiers = Tier.in_order()
        self.tier.choices = choices([ANY] + [(str(t.id), t.display_name) for t in self.tiers])

    def filters(self):
        """The valid filters as keyword arguments of find_customers()."""
        return {
            "branch_id": None if self.branch_scoped else chosen_id(self.branch),
            "tier_id": chosen_id(self.tier),
            "industry": self.industry.data or None if not self.industry.errors else None,
            "value_class": self.value_class.data or None if not self.value_class.errors
            else None,
        }


class PortfolioSettingForm(Form):
    """A new version of the thresholds and strategies. The range checks are
    save_setting()'s, so that the page shows them in its words."""
    effective_on = DateField(_l("Effective from"), validators=[DataRequired()],
                             default=datetime.date.today)
    share_threshold = DecimalField(_l("Share threshold (%)"), places=2,
                                   validators=[InputRequired()],
                                   description=_l("At or above it, our share is high."),
                                   render_kw={"inputmode": "decimal"})
    volume_threshold = DecimalField(_l("Volume threshold (yuan)"), places=2,
                                    validators=[InputRequired()],
                                    description=_l("At or above it, the upcoming volume is "
                                                   "large."),
                                    render_kw={"inputmode": "decimal"})
    # Each quadrant's strategy: its name and how its customers are served.
    keep_name = StringField(_l("Strategy"), validators=STRATEGY_NAME)
    keep_note = TextAreaField(NOTE_LABEL, validators=SERVICE_NOTE, render_kw=NOTE_BOX)
    hold_or_win_name = StringField(_l("Strategy"), validators=STRATEGY_NAME)
    hold_or_win_note = TextAreaField(NOTE_LABEL, validators=SERVICE_NOTE, render_kw=NOTE_BOX)
    develop_name = StringField(_l("Strategy"), validators=STRATEGY_NAME)
    develop_note = TextAreaField(NOTE_LABEL, validators=SERVICE_NOTE, render_kw=NOTE_BOX)
    win_or_let_go_name = StringField(_l("Strategy"), validators=STRATEGY_NAME)
    win_or_let_go_note = TextAreaField(NOTE_LABEL, validators=SERVICE_NOTE, render_kw=NOTE_BOX)

    def values(self):
        """The form's data as keyword arguments of save_setting()."""
        return {"effective_on": self.effective_on.data,
                **{name: self[name].data for name in SETTING_FIELDS}}


PERCENT_BOX = {"inputmode": "decimal"}


class ValueClassRulesForm(Form):
    """A new version of the value classes' rules. The range checks are
    models.value_classes.check_rules()'s, so that the page shows them in its words."""
    top_percent = DecimalField(_l("Most valuable: the top share by profit (%)"), places=2,
                               validators=[InputRequired()], render_kw=PERCENT_BOX,
                               description=_l("Of the customers with figures in the latest "
                                              "year, this share with the largest profit "
                                              "(and a profit above zero)."))
    growth_percent = DecimalField(_l("Most growth: sales growth over two years above (%)"),
                                  places=2, validators=[InputRequired()], render_kw=PERCENT_BOX,
                                  description=_l("Sales in the latest year this much above "
                                                 "those of two years before."))
    collection_floor = DecimalField(_l("Negative value: collection rate below (%)"), places=2,
                                    validators=[InputRequired()], render_kw=PERCENT_BOX,
                                    description=_l("Also every customer that made a loss in "
                                                   "the latest year."))

    def values(self):
        """The form's data as keyword arguments of save_rules()."""
        return {name: self[name].data for name in RULE_FIELDS}
