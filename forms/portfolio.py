"""Forms of the portfolio: its filters and the versioned thresholds and strategies."""
import datetime

from wtforms import DateField, DecimalField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from forms import Form, choices, chosen_id
from i18n import lazy_gettext as _l
from models import Branch, Tier
from models.customers import INDUSTRIES
from models.portfolio import SETTING_FIELDS

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
