"""Chinese by default, English selectable; numbers, money and dates per locale."""
import datetime
import re
from decimal import Decimal
from pathlib import Path

from babel.messages.pofile import read_po
from flask_babel import force_locale, format_decimal

from models import User
from models.people import LANGUAGES
from services import formatting
from tests.conftest import login

CATALOG = Path(__file__).parent.parent / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / \
    "messages.po"


def test_catalog_is_complete():
    """Every message has a Chinese translation, none fuzzy, placeholders kept."""
    with CATALOG.open("rb") as f:
        catalog = read_po(f)
    for message in catalog:
        if not message.id:
            continue
        msgid = message.id if isinstance(message.id, str) else message.id[0]
        msgstr = message.string if isinstance(message.string, str) else message.string[0]
        assert msgstr, f"untranslated: {msgid}"
        assert "fuzzy" not in message.flags, f"fuzzy: {msgid}"
        assert set(re.findall(r"%\(\w+\)s", msgid)) == set(re.findall(r"%\(\w+\)s", msgstr)), \
            msgid


def test_formats_in_chinese(app):
    """Chinese users read 2027年3月25日, 1,234.50 元 and 123.46 万元."""
    with app.test_request_context(), force_locale("zh_CN"):
        assert formatting.date(datetime.date(2027, 3, 25)) == "2027年3月25日"
        assert formatting.money(Decimal("1234.5")) == "1,234.50 元"
        assert formatting.wan(Decimal("1234567")) == "123.46 万元"
        assert formatting.number(1234567) == "1,234,567"
        assert formatting.percent(Decimal("87.26")) == "87.3%"
        assert [formatting.points(v) for v in (100, 79.0, Decimal("79.50"), 79.3333, None)] == [
            "100", "79", "79.5", "79.33", "—"]
        utc = datetime.datetime(2027, 3, 25, 1, 30)
        assert formatting.datetime_(utc) == "2027年3月25日 09:30"  # Beijing time


def test_chinese_reads_weeks_by_number_and_zero_amounts_without_decimals(app):
    """A Chinese reader sees 2026年第49周 for a week, 0 元 / 0 万元 for a real zero and —
    for an amount nobody entered; English keeps 2026-W49."""
    with app.test_request_context(), force_locale("zh_CN"):
        assert formatting.week("2026-W49") == "2026年第49周"
        assert formatting.week(datetime.date(2027, 1, 1)) == "2026年第53周"
        assert formatting.money(0) == "0 元" and formatting.wan(0) == "0 万元"
        assert formatting.amount(Decimal("0.00")) == formatting.amount(None) == "—"
        assert formatting.amount(Decimal("30000.5")) == "30,000.50 元"
    with app.test_request_context(), force_locale("en"):
        assert formatting.week("2026-W09") == "2026-W09"


def test_formats_in_english(app):
    """English users read Mar 25, 2027 and ¥1,234.50; 万元 becomes the full amount."""
    with app.test_request_context(), force_locale("en"):
        assert formatting.date(datetime.date(2027, 3, 25)) == "Mar 25, 2027"
        assert formatting.money(Decimal("1234.5")) == "¥1,234.50"
        assert formatting.wan(Decimal("1234567")) == "¥1,234,567.00"


def test_numbers_read_as_babel_writes_them_in_every_language(app):
    """Numbers, amounts and percentages are written without Babel; in every language
    the result must not differ from Babel's, halves and floats included."""
    values = (0, 7, -1234, 999, 1000, 20000, 1234567, -98765432, Decimal("2.675"),
              Decimal("2.665"), Decimal("-0.005"), Decimal("1234567.891"), Decimal("0.5"),
              Decimal("1.5"), Decimal("99999.995"), 2.675, 33.333333, -1.005, 1e-7, "12.345")
    for language in LANGUAGES:
        with app.test_request_context(), force_locale(language):
            for value in values:
                for digits in (0, 1, 2):
                    pattern = "#,##0" + ("." + "0" * digits if digits else "")
                    assert formatting.number(value, digits) == format_decimal(
                        value, format=pattern), (language, value, digits)


def test_language_choice_is_kept_per_user(client, make):
    """A user who switches to English gets English at the next login too."""
    make.user("mei", roles=("admin",))
    login(client, "mei")
    assert "我的待办" in client.get("/").get_data(as_text=True)
    client.post("/language", data={"language": "en", "next": "/"})
    assert "My tasks" in client.get("/").get_data(as_text=True)
    client.post("/logout")
    login(client, "mei")
    assert "My tasks" in client.get("/").get_data(as_text=True)
    assert User.get(User.username == "mei").language == "en"


def test_visitor_language_switch_on_the_login_page(client):
    """A visitor can read the login page in English before logging in."""
    client.post("/language", data={"language": "en", "next": "/login"})
    assert "Log in to Tierdesk" in client.get("/login").get_data(as_text=True)


def test_unknown_language_is_ignored(client, make):
    """A forged language value changes nothing."""
    make.user("mei", roles=("admin",))
    login(client, "mei")
    client.post("/language", data={"language": "klingon"})
    assert User.get(User.username == "mei").language == "zh_CN"
