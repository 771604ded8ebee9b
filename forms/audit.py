"""The audit trail's filter form (GET, no CSRF)."""
from wtforms import DateField, IntegerField, SelectField, StringField
from wtforms.validators import Length, NumberRange, Optional

from forms import Form, choices
from i18n import lazy_gettext as _l
from models.audit import ACTION_LABELS, OBJECT_LABELS


class AuditFilterForm(Form):
    class Meta:
        csrf = False

    actor = StringField(_l("Who"), validators=[Optional(), Length(max=64)])
    action = SelectField(_l("Action"), choices=choices(
        [("", _l("All"))] + list(ACTION_LABELS.items())), validate_choice=False)
    object_type = SelectField(_l("Record type"), choices=choices(
        [("", _l("All"))] + list(OBJECT_LABELS.items())), validate_choice=False)
    object_id = StringField(_l("Record id"), validators=[Optional(), Length(max=64)])
    since = DateField(_l("From"), validators=[Optional()])
    until = DateField(_l("To"), validators=[Optional()])
    page = IntegerField(default=1, validators=[Optional(), NumberRange(min=1, max=100000)])
