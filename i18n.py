"""Translated text: lazy translations escaped like any other string, and sentences
joined as each language writes them.

Flask-Babel's lazy strings hand their text to Jinja as markup (`__html__` returns
it as it is), so a value filled into one (`_l("There is no tier %(code)s.",
code=code)`) reached pages unescaped. Every lazy translation in Tierdesk comes
from here instead; ruff refuses Flask-Babel's own (see pyproject.toml).
"""
import os
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context
from flask_babel import format_date, get_locale, gettext
from flask_babel.speaklater import LazyString
from markupsafe import escape


class LazyText(LazyString):
    """A lazily translated string that Jinja and markupsafe escape."""

    def __html__(self):
        return str(escape(str(self)))


def lazy_gettext(string, **variables):
    """The translation of `string`, made when it is shown, with `variables` filled in."""
    return LazyText(gettext, string, **variables)


def is_chinese():
    locale = get_locale()
    return locale is None or locale.language == "zh"


def sentences(parts):
    """Sentences as one text: Chinese puts them side by side (each ends in 。), English
    leaves a space between them."""
    return ("" if is_chinese() else " ").join(str(part) for part in parts)


def date(value):
    """`2027年3月25日` in Chinese, `Mar 25, 2027` in English."""
    if value is None:
        return "—"
    if is_chinese():  # Babel's long Chinese pattern, y年M月d日, without its machinery
        return f"{value.year}年{value.month}月{value.day}日"
    return format_date(value, "medium")


class LazyDate:
    """A date that prints as date() does, in the language current when it is printed:
    a notice renders its text in its recipient's."""

    def __init__(self, value):
        self.value = value

    def __str__(self):
        return date(self.value)


def company_zone():
    """The company's time zone (BABEL_DEFAULT_TIMEZONE, Asia/Shanghai by default), also
    outside a request (the worker's schedules): its days are the company's days."""
    name = (current_app.config.get("BABEL_DEFAULT_TIMEZONE") if has_app_context() else None) \
        or os.environ.get("BABEL_DEFAULT_TIMEZONE") or "Asia/Shanghai"
    return ZoneInfo(name)
