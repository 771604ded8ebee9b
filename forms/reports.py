"""Forms of the printed reports: signing the results, reopening, verifying a PDF."""
from flask_wtf.file import FileField, FileRequired
from wtforms import PasswordField, TextAreaField
from wtforms.validators import DataRequired, Length

from forms import Form
from i18n import lazy_gettext as _l


class SignForm(Form):
    password = PasswordField(_l("Your password"), validators=[
        DataRequired(_l("Enter your password to sign."))])


class ReopenForm(Form):
    reason = TextAreaField(_l("Why is the cycle reopened?"), validators=[
        DataRequired(_l("Give a reason.")), Length(max=1000)])


class VerifyForm(Form):
    file = FileField(_l("Signed report (PDF)"), validators=[FileRequired(_l("Choose a file."))])
