"""Login and language forms."""
from wtforms import HiddenField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from forms import Form, choices
from i18n import lazy_gettext as _l
from models.people import LANGUAGES


class LoginForm(Form):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)],
                           render_kw={"autocomplete": "username", "autofocus": True})
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)],
                             render_kw={"autocomplete": "current-password"})
    next = HiddenField()


class LanguageForm(Form):
    language = SelectField(_l("Language"), choices=choices(LANGUAGES))
    next = HiddenField()
