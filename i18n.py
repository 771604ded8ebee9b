"""Translated text: lazy translations escaped like any other string, and sentences
joined as each language writes them.

Flask-Babel's lazy strings hand their text to Jinja as markup (`__html__` returns
it as it is), so a value filled into one (`_l("There is no tier %(code)s.",
code=code)`) reached pages unescaped. Every lazy translation in Tierdesk comes
from here instead; ruff refuses Flask-Babel's own (see pyproject.toml).
"""
from flask_babel import get_locale, gettext
from flask_babel.speaklater import LazyString
from markupsafe import escape


class LazyText(LazyString):
    """A lazily translated string that Jinja and markupsafe escape."""

    def __html__(self):
        return str(escape(str(self)))


def lazy_gettext(string, **variables):
    """The translation of `string`, made when it is shown, with `variables` filled in."""
    return LazyText(gettext, string, **variables)


def sentences(parts):
    """Sentences as one text: Chinese puts them side by side (each ends in 。), English
    leaves a space between them."""
    locale = get_locale()
    chinese = locale is None or locale.language == "zh"
    return ("" if chinese else " ").join(str(part) for part in parts)
