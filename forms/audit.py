"""The audit trail's filter form (GET, no CSRF)."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, StringField
from wtforms.validators import Length, NumberRange, Optional


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False

    actor = StringField(_l("Who"), validators=[Optional(), Length(max=64)])
    action = StringField(_l("Action"), validators=[Optional(), Length(max=64)])
    object_type = StringField(_l("Record type"), validators=[Optional(), Length(max=64)])
    object_id = StringField(_l("Record id"), validators=[Optional(), Length(max=64)])
    since = DateField(_l("From"), validators=[Optional()])
    until = DateField(_l("To"), validators=[Optional()])
    page = IntegerField(default=1, validators=[Optional(), NumberRange(min=1, max=100000)])
