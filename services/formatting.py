"""Numbers, money and dates formatted for the user's locale.

Chinese users read amounts in 元, large ones in 万元, and dates as
2027年3月25日; English users get the same values in their conventions.
"""
import datetime
from decimal import Decimal

from flask_babel import format_date, format_datetime, format_decimal, get_locale

WAN = Decimal(10000)


_TRANSLATED = {}


def translated(table):
    """A module-level label table ({key: lazy string}) in the current language,
    translated once per process and language: pages show every label on every
    request, and each lazy string would be a catalog lookup."""
    key = (id(table), str(get_locale()))
    found = _TRANSLATED.get(key)
    if found is None:
        found = _TRANSLATED[key] = {k: str(v) for k, v in table.items()}
    return found


def _is_chinese():
    locale = get_locale()
    return locale is None or locale.language == "zh"


def number(value, digits=0):
    if value is None:
        return "—"
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, format=pattern)


def money(value):
    """An amount of 元: `1,234.50 元`, or `¥1,234.50` in English."""
    if value is None:
        return "—"
    value = Decimal(value)
    if _is_chinese():
        return format_decimal(value, format="#,##0.00") + " 元"
    return "¥" + format_decimal(value, format="#,##0.00")


def wan(value):
    """A large amount in 万元 (ten thousands of 元): `123.46 万元`.

    English has no such unit, so English users read the full amount.
    """
    if value is None:
        return "—"
    if not _is_chinese():
        return money(value)
    return format_decimal(Decimal(value) / WAN, format="#,##0.00") + " 万元"


def percent(value, digits=1):
    if value is None:
        return "—"
    return format_decimal(value, format="#,##0." + "0" * digits) + "%"


def date(value):
    """`2027年3月25日` in Chinese, `Mar 25, 2027` in English."""
    if value is None:
        return "—"
    if _is_chinese():  # Babel's long Chinese pattern, y年M月d日, without its machinery
        return f"{value.year}年{value.month}月{value.day}日"
    return format_date(value, "medium")


def datetime_(value):
    """A UTC timestamp shown in the company's time zone."""
    if value is None:
        return "—"
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    if _is_chinese():
        return format_datetime(value, "y年M月d日 HH:mm")
    return format_datetime(value, "medium")


def register(app):
    app.jinja_env.filters.update(
        number=number, money=money, wan=wan, percent=percent, date=date,
        datetime=datetime_)
