"""WTForms classes, one module per domain, on the Form base below."""
from babel import support
from flask_babel import get_locale
from flask_wtf import FlaskForm
from wtforms.fields.choices import SelectChoice
from wtforms.i18n import messages_path
from wtforms.validators import NumberRange

_WTFORMS_CATALOGS = {}


class Form(FlaskForm):
    """Flask-WTF's form, with WTForms' own messages (a required field, a number that
    does not parse…) read from a catalog loaded once per process and language:
    Flask-WTF loads the catalog file anew on every request that builds a form."""

    class Meta:
        def get_translations(self, form):
            locale = get_locale()
            if locale is None:  # outside a request: WTForms' English
                return None
            catalog = _WTFORMS_CATALOGS.get(locale)
            if catalog is None:
                catalog = _WTFORMS_CATALOGS[locale] = support.Translations.load(
                    messages_path(), [locale], domain="wtforms")
            return catalog


# A record id or revision as a form may carry it: a huge number would not even
# reach the database (SQLite's INTEGER and PostgreSQL's integer refuse it).
RECORD_ID = NumberRange(min=1, max=2**31 - 1)


class QueryForm(Form):
    """A form read from the query string: no CSRF, and a value that does not parse
    is ignored (its field's data is None), never an error page."""
    class Meta:
        csrf = False

    def __init__(self, args):
        super().__init__(args)
        self.validate()

    def value(self, name, default=None):
        field = self[name]
        return default if field.errors or field.data in (None, "") else field.data


def chosen_id(field):
    """The id a filter's select chose, or None when nothing valid is chosen. (A
    blank such as " " passes: WTForms' Optional clears the select's own error.)"""
    text = "" if field.errors or field.data is None else str(field.data)
    return int(text) if text.isascii() and text.isdigit() else None


def choices(pairs):
    """SelectField choices from a mapping or (value, label) pairs."""
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return [SelectChoice(value, label) for value, label in items]
