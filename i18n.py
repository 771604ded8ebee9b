"""Translated text that is resolved late and escaped like any other string.

Flask-Babel's lazy strings hand their text to Jinja as markup (`__html__` returns
it as it is), so a value filled into one (`_l("There is no tier %(code)s.",
code=code)`) reached pages unescaped. Every lazy translation in Tierdesk comes
from here instead; ruff refuses Flask-Babel's own (see pyproject.toml).
"""
from flask_babel import gettext
from flask_babel.speaklater import LazyString
from markupsafe import escape


class LazyText(LazyString):
    """A lazily translated string that Jinja and markupsafe escape."""

    def __html__(self):
        return str(escape(str(self)))


def lazy_gettext(string, **variables):
    """The translation of `string`, made when it is shown, with `variables` filled in."""
    return LazyText(gettext, string, **variables)
