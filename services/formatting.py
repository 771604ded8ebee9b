"""Numbers, money and dates formatted for the user's locale.

Chinese users read amounts in 元, large ones in 万元, and dates as
2027年3月25日; English users get the same values in their conventions.
"""
import datetime
from decimal import Decimal

from flask import g
from flask_babel import Domain, format_datetime, get_locale

from i18n import date, is_chinese  # noqa: F401 - the filters' and the views' one place

WAN = Decimal(10000)


_TRANSLATED = {}


def translated(table):
    """A module-level label table ({key: lazy string}) in the current language,
    translated once per process and language. The one way label tables reach
    templates (the views' labels() context processors, and the PDFs): a lazy string
    printed per row is a catalog lookup each time. Measured with the bench (issue 19,
    SQLite, 20,000 customers): without it the admin's customer list took p50 13.7 ms,
    3.2× the floor, and missed its target (p95 3.15×); with it 11.0 ms, 2.1×."""
    key = (id(table), str(get_locale()))
    found = _TRANSLATED.get(key)
    if found is None:
        found = _TRANSLATED[key] = {k: str(v) for k, v in table.items()}
    return found


def _fixed(value, digits=0):
    """`value` grouped by thousands with `digits` decimals (halves to even), as Babel's
    pattern "#,##0.00…" writes it in each of our languages (zh_CN and en both write
    1,234.50), without Babel's machinery: tables format hundreds of amounts a page.
    A float (or text) is read as it prints (2.675, not 2.67499…), as Babel reads it.
    tests/test_i18n.py holds the two to the same output in every language."""
    if not isinstance(value, (int, Decimal)):
        value = Decimal(str(value))
    return f"{value:,.{digits}f}"


def number(value, digits=0):
    if value is None:
        return "—"
    return _fixed(value, digits)


def money(value, chinese=None):
    """An amount of 元: `1,234.50 元`, or `¥1,234.50` in English; a real zero is `0 元`
    (never `0.00 元`), no amount at all `—`. `chinese` (default: the user's language
    is Chinese) spares a locale lookup per amount where a page writes hundreds."""
    if value is None:
        return "—"
    value = Decimal(value)
    text = _fixed(value, 2 if value else 0)
    return text + " 元" if (is_chinese() if chinese is None else chinese) else "¥" + text


def amount(value):
    """An amount that is nothing until someone enters it (an opportunity's premium,
    stored as 0 by default): `—` for 0 or None, else as money()."""
    return money(value) if value else "—"


def wan(value, chinese=None):
    """A large amount in 万元 (ten thousands of 元): `123.46 万元`; zero is `0 万元`.
    `chinese` as for money().

    English has no such unit, so English users read the full amount.
    """
    if value is None:
        return "—"
    if not (is_chinese() if chinese is None else chinese):
        return money(value, False)
    value = Decimal(value)
    return _fixed(value / WAN, 2 if value else 0) + " 万元"


def week(value):
    """An ISO week, given as "2026-W49" or as any day in it: `2026年第49周` in Chinese,
    `2026-W49` in English. URLs keep the ISO form (?week=2026-W49)."""
    if value is None:
        return "—"
    if isinstance(value, datetime.date):
        year, number_, _day = value.isocalendar()
    else:
        year, number_ = int(value[:4]), int(value[6:])
    return f"{year}年第{number_}周" if is_chinese() else f"{year}-W{number_:02d}"


def percent(value, digits=1):
    if value is None:
        return "—"
    return _fixed(value, digits) + "%"


def points(value):
    """A score or total: whole points as `79`, a committee mean as `79.33`."""
    if value is None:
        return "—"
    value = round(float(value), 2)
    return str(int(value)) if value.is_integer() else f"{value:.2f}".rstrip("0")


def datetime_(value):
    """A UTC timestamp shown in the company's time zone."""
    if value is None:
        return "—"
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    if is_chinese():
        return format_datetime(value, "y年M月d日 HH:mm")
    return format_datetime(value, "medium")


class CatalogDomain(Domain):
    """Flask-Babel's message domain, finding the catalog by the locale the request
    settled on. Pages translate dozens of labels each, and Flask-Babel finds the
    catalog again through its context lookups for every string: without this, every
    page's p95 rose by about half the floor (bench, SQLite 100,000 customers: the admin
    users page 3.61x the floor, customer detail 2.78x, search as you type 3.44x)."""

    def __init__(self):
        super().__init__()
        self.by_locale = {}

    def get_translations(self):
        try:
            locale = getattr(g.get("_flask_babel"), "babel_locale", None)
        except RuntimeError:  # outside an app context: Flask-Babel's own answer
            locale = None
        if locale is None:  # not settled yet: Flask-Babel settles it, later calls are fast
            return super().get_translations()
        catalog = self.by_locale.get(locale)
        if catalog is None:
            catalog = self.by_locale[locale] = super().get_translations()
        return catalog


def register(app, babel):
    """The filters, and the catalog lookup above for lazy strings and templates alike
    (Flask-Babel keeps its domain in a cached property, and templates call the
    catalog directly)."""
    domain = babel.domain_instance = CatalogDomain()
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: domain.get_translations().ugettext(s),
        ngettext=lambda s, p, n: domain.get_translations().ungettext(s, p, n),
        pgettext=lambda c, s: domain.get_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: domain.get_translations().unpgettext(c, s, p, n),
        newstyle=True)
    app.jinja_env.filters.update(
        number=number, money=money, amount=amount, wan=wan, week=week, percent=percent,
        points=points, date=date, datetime=datetime_)
