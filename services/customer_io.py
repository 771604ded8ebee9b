"""Customers to and from spreadsheets: the import, with its preview, and the export.

The import reads a branch's list the way branches keep it: a title row above the
header, Chinese or English headers, full-width digits, 万元 and thousands
separators, Excel date serials and text dates, stray spaces and blank rows.
`preview_import()` says row by row what the file would do and writes nothing;
`apply_import()` writes it when the user confirms: every row checked again
against the database as it is then, all rows in one transaction, or none.

An empty cell leaves the field as it is (a new customer gets the field's
default), so a file may carry only the columns it means to change. Customers
are matched by code.

The export writes the import's columns, so an exported file imports back
without changing anything.
"""
import datetime
import json
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from openpyxl.utils.datetime import from_excel
from peewee import Case, IntegrityError, chunked
from peewee import __exception_wrapper__ as peewee_errors
from psycopg2.extras import execute_values

from i18n import lazy_gettext as _l
from models import (
    Branch,
    Customer,
    CustomerYear,
    DomainError,
    ImportBatch,
    User,
    audit,
    db,
    utcnow,
    write_transaction,
)
from models.allocation import Allocator, arriving_customer, new_customer
from models.base import is_sqlite
from models.customers import (
    CODE_UNAVAILABLE,
    INDUSTRIES,
    KINDS,
    NATURES,
    pinyin_initials,
    record_ownership,
    refresh_placements,
)
from models.value_classes import recompute as recompute_value_classes
from services import formatting
from services.spreadsheets import (
    CSV_MIMETYPE,
    PROGRESS_ROWS,
    XLSX_MIMETYPE,
    SpreadsheetError,
    check_upload,
    read_table,
    write_csv,
    write_xlsx,
)

# 1.5 times the 20,000 customers the import is made for; a preview holds ~5 KB a row.
MAX_IMPORT_ROWS = 30_000
HEADER_SEARCH_ROWS = 10  # the header may sit below a title and a few notes
CHUNK = 500  # ids per IN (…) and rows per CASE update: far below SQLite's 32,766 parameters
STALE_PREVIEW = datetime.timedelta(days=1)
# The parts of a preview's progress bar: reading the file, then checking its rows
# (matching them with the customers is the rest).
READ_SHARE, CHECK_SHARE = 60, 35
PAYLOAD_VERSION = 1


# --- Columns -------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    key: str
    label: object  # a lazy string: the header the export writes
    aliases: tuple  # other headers people write (matched after NFKC, case and spaces)
    max_length: int = 0


CUSTOMER_COLUMNS = (
    Column("code", _l("Customer code"),
           ("客户编号", "客户代码", "客户编码", "编号", "code", "customer code", "customer no",
            "customer number", "customer id"), 32),
    Column("name", _l("Customer name"),
           ("客户名称", "客户名", "名称", "企业名称", "单位名称", "公司名称", "name",
            "customer name", "customer", "company"), 200),
    Column("kind", _l("Customer type"),
           ("客户类型", "类型", "kind", "type", "customer type", "customer kind")),
    Column("nature", _l("Enterprise nature"),
           ("企业性质", "客户性质", "单位性质", "性质", "nature", "enterprise nature",
            "ownership")),
    Column("industry", _l("Industry"), ("所属行业", "行业", "industry")),
    Column("region", _l("Region"), ("区域", "地区", "所属区域", "region", "area"), 100),
    Column("branch", _l("Branch"), ("所属分公司", "分公司", "所属机构", "branch")),
    Column("account_manager", _l("Account manager"),
           ("客户经理", "负责人", "业务员", "account manager", "manager", "sales rep")),
    Column("cooperation_since", _l("Cooperation since"),
           ("合作开始日期", "开始合作日期", "合作日期", "合作起始日期", "cooperation since",
            "cooperation start", "customer since")),
    Column("provisional", _l("Provisional grade"),
           ("暂定等级", "暂定", "是否暂定", "provisional", "provisional grade")),
)
FIGURE_COLUMNS = (
    Column("sales", _l("Sales"), ("销售额", "销售收入", "销售金额", "sales", "revenue")),
    Column("profit", _l("Profit"), ("利润", "利润额", "profit")),
    Column("collection_rate", _l("Collection rate"),
           ("回款率", "收款率", "collection rate", "payment collection rate")),
    Column("credit_days", _l("Credit days"),
           ("信用天数", "信用期", "账期", "信用期限", "credit days", "credit period")),
    # The portfolio's figures (models/portfolio.py); unlike the others, an empty one
    # stays unknown (NULL) rather than zero.
    Column("share_of_wallet", _l("Share of wallet"),
           ("我方份额", "份额", "我方占比", "钱包份额", "share of wallet", "our share",
            "wallet share")),
    Column("upcoming_volume", _l("Upcoming purchase volume"),
           ("近期采购量", "近期采购额", "预计采购量", "upcoming purchase volume",
            "upcoming volume", "purchase volume")),
)
COLUMNS = {column.key: column for column in CUSTOMER_COLUMNS + FIGURE_COLUMNS}
CUSTOMER_FIELDS = ("name", "kind", "nature", "industry", "region", "branch", "account_manager",
                   "cooperation_since", "provisional")
FIGURES = tuple(column.key for column in FIGURE_COLUMNS)
FIGURE_DEFAULTS = {"sales": Decimal(0), "profit": Decimal(0), "collection_rate": Decimal(0),
                   "credit_days": 0}

# The words Chinese lists use for the choices, besides the codes and the labels.
CHOICE_WORDS = {
    "kind": {"existing": ("已成交", "已成交客户", "成交客户", "现有客户", "老客户"),
             "prospect": ("潜在", "潜在客户", "意向客户")},
    "nature": {"state_owned": ("国有企业", "国企", "国有"),
               "joint_stock": ("股份公司", "股份制", "股份制企业", "股份有限公司"),
               "private": ("民营企业", "民营", "民企", "私营企业"),
               "foreign": ("外资企业", "外资", "外商投资企业"),
               "government": ("政府机关", "政府", "机关"),
               "individual": ("个人", "个体", "个体户", "个体工商户")},
    "industry": {"manufacturing": ("制造业", "制造"), "construction": ("建筑业", "建筑"),
                 "energy": ("能源",), "transport": ("交通物流", "物流", "交通运输"),
                 "retail": ("批发零售", "批发和零售业", "零售"), "finance": ("金融", "金融业"),
                 "it": ("信息技术", "软件和信息技术服务业"), "healthcare": ("医疗卫生", "医疗"),
                 "education": ("教育",), "agriculture": ("农业",),
                 "real_estate": ("房地产", "房地产业"), "public": ("公共管理",)},
}
CHOICES = {"kind": KINDS, "nature": NATURES, "industry": INDUSTRIES}
YES_WORDS = ("是", "y", "yes", "true", "1", "√", "✓", "暂定")
NO_WORDS = ("否", "n", "no", "false", "0", "×", "✗")
# What people write in a cell that has no value.
PLACEHOLDERS = frozenset({"-", "--", "—", "——", "–", "/", "无", "n/a", "na", "null", "none"})


def _key(text):
    """Text as matching sees it: NFKC (full-width → half-width), case-folded,
    without spaces."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(text)).casefold())


def _header_key(text):
    return re.sub(r"[_\-*:]+", "", _key(text))


def _in_both_languages(label):
    """A lazy label as the English msgid and as the Chinese catalog has it."""
    words = []
    for locale in ("en", "zh_CN"):
        with force_locale(locale):
            words.append(str(label))
    return words


def field_label(key):
    """The user's name of a field key, yearly ones included ("sales:2026")."""
    name, _sep, year = key.partition(":")
    if name == "proposed_manager":  # from the allocation rules, for a customer arriving
        return _("Account manager (proposed by the allocation rules)")
    label = COLUMNS[name].label
    return _("%(year)s %(figure)s", year=year, figure=label) if year else str(label)


# --- Reading cells -------------------------------------------------------------

class _CellError(Exception):
    """A cell that cannot be read; the message is for the user."""


_INVISIBLE_RE = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")


def _text(value):
    """A cell as clean text: control characters become spaces, spaces are trimmed."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "TRUE" if value else "FALSE"
    elif isinstance(value, float):
        text = str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    elif isinstance(value, datetime.datetime):
        text = value.date().isoformat() if value.time() == datetime.time() \
            else value.isoformat(" ")
    elif isinstance(value, datetime.date):
        text = value.isoformat()
    else:
        text = str(value)
    if text.isprintable():  # the common case, and a quick test
        return text.strip()
    return _CONTROL_RE.sub(" ", _INVISIBLE_RE.sub("", text)).strip()


def _shown(value, limit=40):
    """A cell quoted back in a message, kept short."""
    text = _text(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _is_blank(value):
    return value is None or (isinstance(value, str) and not _text(value))


def _parse_text(value, column):
    text = _text(value)
    if column.key == "code":
        text = unicodedata.normalize("NFKC", text).strip()
    if column.max_length and len(text) > column.max_length:
        raise _CellError(_("The text is longer than %(n)s characters.", n=column.max_length))
    return text


def _parse_choice(value, column, choices):
    found = choices.get(_key(_text(value)))
    if found is None:
        raise _CellError(_("Unknown %(column)s: %(value)s. Use one of: %(choices)s.",
                           column=str(column.label), value=_shown(value),
                           choices="、".join(str(label) for label in CHOICES[column.key].values())))
    return found


def _parse_bool(value, words):
    if isinstance(value, bool):
        return value
    found = words.get(_key(_text(value)))
    if found is None:
        raise _CellError(_("%(value)s is neither yes nor no (是/否).", value=_shown(value)))
    return found


_DATE_RE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
                      r"(?:[ t]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_SERIAL_RE = re.compile(r"^\d{1,6}(?:\.\d+)?$")


def _parse_date(value):
    """A date from a date cell, an Excel serial, 20260325, or text such as
    2026/3/25, 2026-03-25, 2026.3.25 and 2026年3月25日."""
    try:
        if isinstance(value, datetime.datetime):
            day = value.date()
        elif isinstance(value, datetime.date):
            day = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            day = _date_from_number(value)
        else:
            text = unicodedata.normalize("NFKC", _text(value)).casefold()
            match = _DATE_RE.match(text)
            if match:
                day = datetime.date(*(int(part) for part in match.groups()))
            elif re.fullmatch(r"\d{8}", text):
                day = datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
            elif _SERIAL_RE.match(text):
                day = _date_from_number(float(text))
            else:
                raise ValueError(text)
    except (ValueError, OverflowError, TypeError) as error:
        raise _CellError(_("%(value)s is not a date; write it as 2026-03-25 or 2026年3月25日.",
                           value=_shown(value))) from error
    if not 1900 <= day.year <= 2100:
        raise _CellError(_("The date must lie between the years 1900 and 2100."))
    return day


def _date_from_number(number):
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(number)
    if float(number).is_integer() and 1900 <= number <= 2100:
        raise ValueError(number)  # a year, not the serial of a day in 1905
    if float(number).is_integer() and 19000101 <= number <= 21001231:
        text = str(int(number))  # 20260325, as some systems export dates
        return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    if not 1 <= number < 2958466:  # Excel's serials run from 1900-01-01 to 9999-12-31
        raise ValueError(number)
    return from_excel(number).date()


_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_GROUPED_RE = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$")
MONEY_UNITS = (("亿元", Decimal(100_000_000)), ("亿", Decimal(100_000_000)),
               ("万元", Decimal(10_000)), ("万", Decimal(10_000)), ("元", Decimal(1)),
               ("rmb", Decimal(1)), ("cny", Decimal(1)))
DAY_UNITS = (("天", Decimal(1)), ("日", Decimal(1)), ("days", Decimal(1)), ("day", Decimal(1)))
CURRENCY_SIGNS = ("¥", "rmb", "cny")


def _parse_number(value, scale=Decimal(1), units=MONEY_UNITS):
    """A Decimal from a number cell or from text such as 1,234.50, ¥1,234.5,
    12.5万元, (1,200) or 95%. Returns (number, is_percent); `scale` applies when
    the cell names no unit of its own (the header said 万元)."""
    if isinstance(value, bool):
        raise _CellError(_("%(value)s is not a number.", value=_shown(value)))
    if isinstance(value, int):
        return Decimal(value) * scale, False
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _CellError(_("%(value)s is not a number.", value=_shown(value)))
        return Decimal(repr(value)) * scale, False
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", _text(value)).casefold())
    negative = text.startswith("(") and text.endswith(")")  # accountants' (1,200)
    text = text[1:-1] if negative else text
    sign = text[:1] if text[:1] in ("+", "-") else ""
    text = text[len(sign):]
    for currency in CURRENCY_SIGNS:
        if text.startswith(currency):
            text = text[len(currency):]
            break
    percent = text.endswith("%")
    if percent:
        text = text[:-1]
    else:
        for unit, factor in units:
            if text.endswith(unit):
                text, scale = text[:-len(unit)], factor
                break
    text = sign + text
    if _GROUPED_RE.match(text):
        text = text.replace(",", "")
    if not _NUMBER_RE.match(text):
        raise _CellError(_("%(value)s is not a number.", value=_shown(value)))
    number = Decimal(text) * (1 if percent else scale)
    return (-number if negative else number), percent


PERCENT_FIGURES = ("collection_rate", "share_of_wallet")


def _parse_figure(value, column, scale):
    units = DAY_UNITS if column.key == "credit_days" else MONEY_UNITS
    number, percent = _parse_number(value, scale, units)
    if percent and column.key not in PERCENT_FIGURES:
        raise _CellError(_("%(value)s is not a number.", value=_shown(value)))
    if column.key == "credit_days":
        if number != number.to_integral_value() or not 0 <= number <= 3650:
            raise _CellError(_("Credit days must be a whole number from 0 to 3650."))
        return int(number)
    # Ranges first: quantize() fails on numbers longer than Decimal's precision.
    if column.key == "collection_rate" and not 0 <= number <= 100:
        raise _CellError(_("The collection rate must lie between 0 and 100 (%)."))
    if column.key == "share_of_wallet" and not 0 <= number <= 100:
        raise _CellError(_("The share of wallet must lie between 0 and 100 (%)."))
    if column.key == "upcoming_volume" and number < 0:
        raise _CellError(_("The upcoming purchase volume cannot be negative."))
    if abs(number) >= Decimal(10) ** 14:
        raise _CellError(_("The amount is too large."))
    return number.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


# --- Headers -------------------------------------------------------------------

@dataclass
class _SheetColumn:
    index: int
    header: str  # as written in the file
    key: str
    year: int | None = None
    scale: Decimal = Decimal(1)  # 10,000 when the header says the amounts are in 万元


_HEADER_UNIT_RE = re.compile(r"^(.+?)[(\[](万元|万|元|rmb|cny|¥|%|天|日|days)[)\]]$")
_YEAR_FIRST_RE = re.compile(r"^((?:19|20|21)\d{2})年?度?(.+)$")
_YEAR_LAST_RE = re.compile(r"^(.+?)[(\[]?((?:19|20|21)\d{2})年?度?[)\]]?$")
_YEAR_ONLY_RE = re.compile(r"^((?:19|20|21)\d{2})年?度?$")


def _header_lookup():
    """header key → column key, for the customer columns and the figure columns."""
    customer, figures = {}, {}
    for columns, lookup in ((CUSTOMER_COLUMNS, customer), (FIGURE_COLUMNS, figures)):
        for column in columns:
            for word in (*column.aliases, *_in_both_languages(column.label)):
                lookup.setdefault(_header_key(word), column.key)
    return customer, figures


def _read_header(row, above, lookups):
    """The recognised columns of a candidate header row, the other headers, and
    figure headers that lack a year. `above` is the row above (it may hold the
    years of a two-row header, 2026年 over 销售额 | 利润)."""
    customer, figures = lookups
    columns, ignored, yearless = [], [], []
    for index, cell in enumerate(row):
        header = _text(cell)
        if not header:
            continue
        key = _header_key(header)
        scale = Decimal(1)
        unit = _HEADER_UNIT_RE.match(key)
        if unit:
            key = unit.group(1)
            scale = Decimal(10_000) if unit.group(2) in ("万元", "万") else Decimal(1)
        if key in customer:
            columns.append(_SheetColumn(index, header, customer[key]))
            continue
        year = figure = None
        for pattern, year_group, figure_group in ((_YEAR_FIRST_RE, 1, 2), (_YEAR_LAST_RE, 2, 1)):
            match = pattern.match(key)
            if match and match.group(figure_group) in figures:
                year, figure = int(match.group(year_group)), figures[match.group(figure_group)]
                break
        if figure is None and key in figures:
            figure, year = figures[key], _year_above(above, index)
            if year is None:
                yearless.append(header)
                continue
        if figure is None:
            ignored.append(header)
            continue
        columns.append(_SheetColumn(index, header, figure, year, scale))
    return columns, ignored, yearless


def _year_above(above, index):
    # A merged "2026年" spans its figures; only its first cell holds the text.
    for cell in reversed((above or [])[:index + 1]):
        text = _text(cell)
        if text:
            match = _YEAR_ONLY_RE.match(_header_key(text))
            return int(match.group(1)) if match else None
    return None


def _find_header(table):
    """(row index, columns, ignored headers) of the header row: among the first
    rows, the one with a customer code column that names the most columns."""
    lookups = _header_lookup()
    best = None
    for index, row in enumerate(table[:HEADER_SEARCH_ROWS]):
        above = table[index - 1] if index else None
        columns, ignored, yearless = _read_header(row, above, lookups)
        if any(c.key == "code" for c in columns) and (best is None or len(columns) > len(best[1])):
            best = (index, columns, ignored, yearless)
    if best is None:
        raise SpreadsheetError(_l("No header row with a customer code column (客户编号 or "
                                  "Customer code) was found in the first %(n)s rows.",
                                  n=HEADER_SEARCH_ROWS))
    index, columns, ignored, yearless = best
    if yearless:
        raise SpreadsheetError(_l("The column %(column)s needs a year, such as 2026年销售额.",
                                  column=yearless[0]))
    seen = set()
    for column in columns:
        if (column.key, column.year) in seen:
            raise SpreadsheetError(_l("The column %(column)s appears twice.",
                                      column=column.header))
        seen.add((column.key, column.year))
    return index, columns, ignored


# --- What the database holds ---------------------------------------------------

class _References:
    """Branches and users, loaded once, to resolve names without a query per row."""

    def __init__(self):
        self.branches = {b.id: b for b in Branch.select()}
        self.users = {u.id: u for u in User.select(User.id, User.username, User.display_name,
                                                   User.branch)}
        self.branch_codes = {_key(b.code): b.id for b in self.branches.values()}
        self.branch_names = defaultdict(list)
        for b in self.branches.values():
            self.branch_names[_key(b.name)].append(b.id)
        self.usernames = {_key(u.username): u.id for u in self.users.values()}
        self.user_names = defaultdict(list)
        for u in self.users.values():
            self.user_names[_key(u.display_name)].append(u.id)
        self.choices = {}
        for name, labels in CHOICES.items():
            lookup = {}
            for code, label in labels.items():
                for word in (code, *CHOICE_WORDS[name][code], *_in_both_languages(label)):
                    lookup.setdefault(_key(word), code)
            self.choices[name] = lookup
        self.booleans = {}
        for words, value in ((YES_WORDS, True), (NO_WORDS, False)):
            for word in words:
                self.booleans[_key(word)] = value
        for value, label in ((True, _l("Yes")), (False, _l("No"))):
            for word in _in_both_languages(label):
                self.booleans.setdefault(_key(word), value)
        self.allocators = {}

    def proposed_manager(self, values, branch_id, current=None):
        """The id of the account manager the branch's allocation rules propose for a
        customer coming into the branch: a new one, or the customer `current` (as
        _load_current() read it) moving in from another branch. None when no rule
        proposes anyone; a pool fills evenly across the whole file."""
        if branch_id not in self.allocators:
            self.allocators[branch_id] = Allocator(branch_id)
        allocator = self.allocators[branch_id]
        if current is None:
            customer = new_customer(values.get("region"), values.get("industry"),
                                    values.get("nature"))
        else:
            now = {**current, **values}
            customer = arriving_customer(current["id"], current["tier"],
                                         current["account_manager"], now["region"],
                                         now["industry"], now["nature"])
        manager, _rule = allocator.propose(customer)
        if manager is None:
            return None
        allocator.take(customer, manager.id)
        return manager.id

    def branch(self, text):
        """The id of the branch with this code or name; raises _CellError."""
        key = _key(text)
        if key in self.branch_codes:
            return self.branch_codes[key]
        found = self.branch_names.get(key, [])
        if len(found) > 1:
            raise _CellError(_("Several branches are named %(value)s; use the branch code.",
                               value=_shown(text)))
        if not found:
            raise _CellError(_("Unknown branch: %(value)s.", value=_shown(text)))
        return found[0]

    def manager(self, text, branch_id):
        """The id of the user with this username or display name, working in the
        branch; raises _CellError."""
        key = _key(text)
        branch = self.branches[branch_id].name
        if key in self.usernames:
            user_id = self.usernames[key]
            if self.users[user_id].branch_id != branch_id:
                raise _CellError(_("%(name)s does not work in %(branch)s.",
                                   name=_shown(text), branch=branch))
            return user_id
        found = self.user_names.get(key, [])
        here = [i for i in found if self.users[i].branch_id == branch_id]
        if len(here) > 1:
            raise _CellError(_("Several users in %(branch)s are named %(value)s; use the "
                               "username.", branch=branch, value=_shown(text)))
        if here:
            return here[0]
        if found:
            raise _CellError(_("%(name)s does not work in %(branch)s.",
                               name=_shown(text), branch=branch))
        raise _CellError(_("Unknown account manager: %(value)s.", value=_shown(text)))


def _load_current(codes):
    """{code: customer as a dict, with "years": {year: figures}} for the codes
    that exist; one query per chunk of codes, one per chunk of customers."""
    current = {}
    fields = [Customer.id, Customer.code, Customer.tier,
              *(getattr(Customer, f) for f in CUSTOMER_FIELDS)]
    for chunk in chunked(sorted(codes), CHUNK):
        for row in Customer.select(*fields).where(Customer.code.in_(chunk)).dicts():
            row["years"] = {}
            current[row["code"]] = row
    by_id = {row["id"]: row for row in current.values()}
    for chunk in chunked(list(by_id), CHUNK):
        for row in CustomerYear.select().where(CustomerYear.customer.in_(chunk)).dicts():
            by_id[row["customer"]]["years"][row["year"]] = row
    return current


# --- The preview ---------------------------------------------------------------

@dataclass
class ImportRow:
    """One row of the file and what it would do."""
    row_number: int  # as Excel numbers it
    action: str  # create, update, unchanged or error
    code: str = ""
    name: str = ""
    errors: list = field(default_factory=list)  # [(column header as in the file, message)]
    changed: list = field(default_factory=list)  # [(field key, old, new)], kept as JSON
    values: dict = field(default_factory=dict)  # what to write, as JSON

    @property
    def changes(self):
        """[(label, old, new)] of an update, as text in the user's language."""
        return [(field_label(key), _display(key, old), _display(key, new))
                for key, old, new in self.changed]


@dataclass
class ImportCounts:
    """How many rows of a preview do what; counts.create and counts["create"] alike."""
    create: int = 0
    update: int = 0
    unchanged: int = 0
    error: int = 0

    def __getitem__(self, key):
        return getattr(self, key)

    def as_dict(self):
        return {"create": self.create, "update": self.update, "unchanged": self.unchanged,
                "error": self.error}


@dataclass
class ImportPreview:
    """What a file would do: its rows, the columns read and the ones ignored."""
    filename: str
    header_row: int = 0  # as Excel numbers it
    columns: list = field(default_factory=list)  # headers recognised, as in the file
    ignored_columns: list = field(default_factory=list)  # headers not recognised
    rows: list = field(default_factory=list)  # [ImportRow]

    @property
    def counts(self):
        counts = ImportCounts()
        for row in self.rows:
            setattr(counts, row.action, counts[row.action] + 1)
        return counts

    @property
    def has_errors(self):
        return any(row.action == "error" for row in self.rows)

    def to_json(self):
        return json.dumps({
            "version": PAYLOAD_VERSION, "filename": self.filename, "header_row": self.header_row,
            "columns": self.columns, "ignored_columns": self.ignored_columns,
            "rows": [[r.row_number, r.action, r.code, r.name, r.errors, r.changed, r.values]
                     for r in self.rows],
        }, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        rows = [ImportRow(number, action, code, name, [tuple(e) for e in errors],
                          [tuple(c) for c in changed], values)
                for number, action, code, name, errors, changed, values in data["rows"]]
        return cls(data["filename"], data["header_row"], data["columns"],
                   data["ignored_columns"], rows)


def preview_import(filename, data, user, progress=None):
    """Read a customer file and say, row by row, what importing it would do.

    Writes nothing. Returns an ImportPreview. Raises SpreadsheetError when the
    file cannot be read as a customer list (see `read_table()`, and: no header
    row with a code column, a column twice, a yearly figure without a year, no
    rows below the header). Errors of single rows do not raise: they are in
    the preview, with their row number and column. `progress(percent)`, when
    given, is told how far the work has got.
    """
    def reading(done, expected):
        progress(READ_SHARE * done // max(expected, 1))

    table = read_table(filename, data, max_rows=MAX_IMPORT_ROWS,
                       progress=reading if progress else None)
    header_index, columns, ignored = _find_header(table)
    references = _References()
    headers = {c.key: c.header for c in columns if c.year is None}
    parsed = []
    for index in range(header_index + 1, len(table)):
        if progress and index % PROGRESS_ROWS == 0:
            progress(READ_SHARE + CHECK_SHARE * index // len(table))
        cells, table[index] = table[index], None  # let each row go once read
        if all(_is_blank(cell) for cell in cells) or _repeats_header(cells, columns):
            continue
        values, errors = _read_row(cells, columns, references, headers)
        parsed.append((index + 1, values, errors))
    if not parsed:
        raise SpreadsheetError(_l("There are no customers below the header row."))
    current = _load_current({values["code"] for _n, values, _e in parsed if "code" in values})
    first_row_of = {}
    rows = []
    for index, (number, values, errors) in enumerate(parsed):
        parsed[index] = None  # the row lives on as JSON in its ImportRow
        code = values.get("code", "")
        if code in first_row_of:
            errors.append((headers["code"], _("The code %(code)s appears again: first on row "
                                              "%(row)s.", code=code, row=first_row_of[code])))
        elif code:
            first_row_of[code] = number
        rows.append(_preview_row(number, values, errors, current.get(code), references, user,
                                 headers))
    return ImportPreview(filename=str(filename or "")[:255], header_row=header_index + 1,
                         columns=[c.header for c in columns], ignored_columns=ignored, rows=rows)


def _repeats_header(cells, columns):
    """A copy of the header row (lists pasted together carry several)."""
    return all(column.index < len(cells) and _text(cells[column.index]) == column.header
               for column in columns)


def _read_row(cells, columns, references, headers):
    """(values, errors) of one data row: the values read from its non-empty
    cells, with the branch resolved to an id (the account manager is resolved
    later, against the branch the customer ends up in)."""
    values, errors = {}, []
    for column in columns:
        cell = cells[column.index] if column.index < len(cells) else None
        if isinstance(cell, str):
            cell = _text(cell)
            if len(cell) <= 4 and column.key not in ("code", "name") and \
                    _key(cell) in PLACEHOLDERS:
                cell = ""
        if cell is None or cell == "":
            continue
        spec = COLUMNS[column.key]
        try:
            if column.year is not None:
                figures = values.setdefault("years", {}).setdefault(column.year, {})
                figures[column.key] = _parse_figure(cell, spec, column.scale)
            elif column.key in CHOICES:
                values[column.key] = _parse_choice(cell, spec, references.choices[column.key])
            elif column.key == "branch":
                values["branch"] = references.branch(_text(cell))
            elif column.key == "account_manager":
                values["account_manager"] = _text(cell)  # a name until resolved
            elif column.key == "cooperation_since":
                values["cooperation_since"] = _parse_date(cell)
            elif column.key == "provisional":
                values["provisional"] = _parse_bool(cell, references.booleans)
            else:
                values[column.key] = _parse_text(cell, spec)
        except _CellError as error:
            errors.append((column.header, str(error)))
    if not values.get("code") and not _failed(errors, headers, "code"):
        errors.append((headers["code"], _("The customer code is missing.")))
    return values, errors


def _failed(errors, headers, key):
    """Whether the column of `key` has an error already."""
    return key in headers and any(header == headers[key] for header, _m in errors)


def _preview_row(number, values, errors, current, references, user, headers):
    code = values.get("code", "")
    name = values.get("name", "")
    if _outside_scope(current, user):
        # The form's words for a code held anywhere: whose it is, and that another
        # branch holds it, is none of the user's business.
        return ImportRow(number, "error", code, name, [(headers["code"], _outside_scope_message())])
    if "account_manager" in values and not _failed(errors, headers, "branch"):
        target = _target_branch(values, current, user)
        if target is not None:
            try:
                values["account_manager"] = references.manager(values["account_manager"], target)
            except _CellError as error:
                errors.append((headers["account_manager"], str(error)))
    if errors:
        return ImportRow(number, "error", code, name, errors)
    proposed = None
    target = _target_branch(values, current, user)
    arriving = current is None or target != current["branch"]
    if arriving and not values.get("account_manager") and target in references.branches:
        proposed = references.proposed_manager(values, target, current)
        if proposed:
            values["account_manager"] = proposed
    action, changes, problems = _plan_row(values, current, references, user)
    if problems:
        return ImportRow(number, "error", code, name,
                         [(headers.get(key) or field_label(key), message)
                          for key, message in problems])
    shown = [("proposed_manager" if key == "account_manager" and proposed else key,
              _shown_value(key, old, references), _shown_value(key, new, references))
             for key, old, new in changes] if action == "update" else []
    if action == "create" and proposed:
        shown = [("proposed_manager", None, _shown_value("account_manager", proposed,
                                                         references))]
    return ImportRow(number, action, code, name or (current or {}).get("name", ""), [],
                     shown, _values_to_json(values))


def _target_branch(values, current, user):
    """The branch the customer ends up in."""
    if "branch" in values:
        return values["branch"]
    if current is not None:
        return current["branch"]
    return user.branch_id if user.is_branch_scoped else None


def _outside_scope(current, user):
    """Whether the row's code is a customer the user may not see."""
    return user.is_branch_scoped and current is not None and current["branch"] != user.branch_id


def _outside_scope_message():
    """The words the customer form uses for a code held anywhere: no more than that."""
    return str(CODE_UNAVAILABLE)


def _plan_row(values, current, references, user):
    """(action, changes, problems) of one row against the database as it is:
    changes are (field key, old, new); problems are (field key, message), and
    a row with problems does nothing."""
    problems = []
    target = _target_branch(values, current, user)
    if _outside_scope(current, user):
        return "error", [], [("code", _outside_scope_message())]
    if target is None:
        problems.append(("branch", _("A new customer needs a branch.")))
    elif target not in references.branches:
        problems.append(("branch", _("Unknown branch: %(value)s.", value=target)))
    elif user.is_branch_scoped and target != user.branch_id:
        problems.append(("branch", _("You can only keep customers of your own branch.")))
    if current is None and not values.get("name"):
        problems.append(("name", _("A new customer needs a name.")))
    manager = values.get("account_manager", current["account_manager"] if current else None)
    if manager is not None and not problems and ("account_manager" in values or (
            current is not None and target != current["branch"])):
        holder = references.users.get(manager)
        if holder is None or holder.branch_id != target:
            key = "account_manager" if "account_manager" in values else "branch"
            problems.append((key, _("%(name)s does not work in %(branch)s.",
                                    name=holder.display_name if holder else manager,
                                    branch=references.branches[target].name)))
    if problems:
        return "error", [], problems
    changes = _diff(values, current)
    if current is None:
        return "create", changes, []
    return ("update" if changes else "unchanged"), changes, []


def _diff(values, current):
    changes = []
    for key in CUSTOMER_FIELDS:
        if key in values and (current is None or values[key] != current[key]):
            changes.append((key, current[key] if current else None, values[key]))
    for year, figures in sorted(values.get("years", {}).items()):
        old = current["years"].get(year) if current else None
        for key in FIGURES:
            if key in figures and (old is None or figures[key] != old[key]):
                changes.append((f"{key}:{year}", old[key] if old else None, figures[key]))
    return changes


def _shown_value(key, value, references):
    """A value as the preview keeps it (JSON), to be shown by `_display()`:
    names for the branch and the account manager, text for dates and amounts."""
    if key in ("branch", "account_manager"):
        record = (references.branches if key == "branch" else references.users).get(value)
        return str(record) if record else value
    if isinstance(value, (datetime.date, Decimal)):
        return str(value)
    return value


def _display(key, value):
    """A kept value as the preview shows it, in the user's language."""
    name = key.partition(":")[0]
    if value is None or value == "":
        return ""
    if name in CHOICES:
        return str(CHOICES[name].get(value, value))
    if name == "cooperation_since":
        return formatting.date(datetime.date.fromisoformat(value))
    if name == "provisional":
        return _("Yes") if value else _("No")
    if name in ("sales", "profit", "upcoming_volume"):
        return formatting.money(Decimal(value))
    if name in PERCENT_FIGURES:
        return formatting.percent(Decimal(value), 2)
    if name == "credit_days":
        return formatting.number(value)
    return str(value)


def _values_to_json(values):
    out = dict(values)
    if "cooperation_since" in out:
        out["cooperation_since"] = out["cooperation_since"].isoformat()
    if "years" in out:
        out["years"] = {str(year): {k: str(v) for k, v in figures.items()}
                        for year, figures in out["years"].items()}
    return out


def _values_from_json(data):
    values = dict(data)
    if "cooperation_since" in values:
        values["cooperation_since"] = datetime.date.fromisoformat(values["cooperation_since"])
    if "years" in values:
        values["years"] = {int(year): {k: int(v) if k == "credit_days" else Decimal(v)
                                       for k, v in figures.items()}
                           for year, figures in values["years"].items()}
    return values


# --- Keeping the preview until the user confirms ------------------------------

def keep_upload(filename, data, user):
    """Take an upload: check at once what can be told without reading it (type,
    size, zip bomb) and keep it in a new ImportBatch, queued for `read_upload`
    (services.jobs.queue_preview hands it to the background worker). Returns the
    batch, whose page shows the progress and then the preview. Raises
    SpreadsheetError for a file refused at once."""
    check_upload(filename, data)
    with db.atomic():
        _drop_stale_batches()
        batch = ImportBatch.create(user=user, filename=str(filename or "")[:255],
                                   status="queued", upload=data)
    return batch


def read_upload(batch_id):
    """Read the file of a queued ImportBatch into its preview, recording progress,
    or why it cannot be read (the background job services.jobs.queue_preview()
    starts). The messages are in the uploader's language."""
    batch = ImportBatch.get_or_none(ImportBatch.id == batch_id)
    claimed = batch is not None and (
        ImportBatch.update(status="reading", progress=0)
        .where(ImportBatch.id == batch.id, ImportBatch.status == "queued").execute())
    if not claimed:
        return
    shown = 0

    def progress(percent):
        nonlocal shown
        if percent > shown:
            shown = percent
            ImportBatch.update(progress=percent).where(ImportBatch.id == batch.id).execute()

    user = User.get_by_id(batch.user_id)
    with force_locale(user.language):
        try:
            preview = preview_import(batch.filename, bytes(batch.upload), user, progress)
        except DomainError as error:
            _finish_reading(batch, status="failed", error=str(error))
            return
        except Exception:  # noqa: BLE001 — the user is told, the log has the details
            current_app.logger.exception("import batch %s could not be read", batch.id)
            _finish_reading(batch, status="failed", error=_(
                "The file could not be read because of an error in Tierdesk. Nothing was "
                "saved; please try again, or tell your administrator."))
            return
    _finish_reading(batch, status="preview", payload=preview.to_json(), progress=100)


def _finish_reading(batch, **values):
    """The outcome of reading a batch; the file itself is no longer kept."""
    ImportBatch.update(upload=None, **values).where(ImportBatch.id == batch.id).execute()


def save_preview(preview, user):
    """Keep a preview made in this process (as the job does after reading a file)
    and return its ImportBatch, ready to confirm."""
    with db.atomic():
        _drop_stale_batches()
        return ImportBatch.create(user=user, filename=preview.filename[:255],
                                  payload=preview.to_json())


def _drop_stale_batches():
    """Unconfirmed uploads older than a day are removed."""
    ImportBatch.delete().where(ImportBatch.status != "applied",
                               ImportBatch.created_at < utcnow() - STALE_PREVIEW).execute()


def load_preview(batch):
    """The ImportPreview kept in `batch`."""
    return ImportPreview.from_json(batch.payload)


def discard_import(batch, user):
    """Drop a preview the user does not want. Raises DomainError when the batch
    is not the user's or not a preview any more."""
    if batch.user_id != user.id:
        raise DomainError(_l("This import belongs to another user."))
    changed = (ImportBatch.update(status="discarded")
               .where(ImportBatch.id == batch.id, ImportBatch.status == "preview").execute())
    if not changed:
        raise DomainError(_l("This import has been confirmed or discarded already."))
    batch.status = "discarded"


# --- Writing -------------------------------------------------------------------

def apply_import(batch, user):
    """Write a previewed import: all rows in one transaction, or none.

    Every row is checked again against the database as it is now (a code
    created meanwhile makes the row an update), customers are upserted by
    code with their yearly figures, the batch is marked applied, and one audit
    event records the counts; a file with yearly figures recomputes every customer's
    value classes (models/value_classes.py) in the same transaction. Returns the
    counts {"create", "update", "unchanged"}. Raises DomainError when the batch is
    another user's, not a preview any more, has rows with errors, or the database
    changed so that a row no longer fits; nothing is written then.
    """
    if batch.user_id != user.id:
        raise DomainError(_l("This import belongs to another user."))
    if batch.status != "preview":
        raise DomainError(_l("This import has been confirmed or discarded already."))
    preview = load_preview(batch)
    if preview.has_errors:
        raise DomainError(_l("The file has rows with errors; correct them and upload it "
                             "again. Nothing was imported."))
    rows = [(row.row_number, _values_from_json(row.values)) for row in preview.rows]
    now = utcnow()
    try:
        with write_transaction():
            # Claim the batch first: a second confirmation (another click, another
            # worker) waits for this one and then finds nothing to claim.
            claimed = (ImportBatch.update(status="applied", applied_at=now)
                       .where(ImportBatch.id == batch.id, ImportBatch.user == user.id,
                              ImportBatch.status == "preview").execute())
            if not claimed:
                raise DomainError(_l("This import has been confirmed or discarded already."))
            counts = _write_rows(rows, user, now)
            if (counts["create"] or counts["update"]) and \
                    any("years" in values for _n, values in rows):
                recompute_value_classes()  # the ranking is the whole book's
            audit("customer_import", actor=user, object_type="import_batch",
                  object_id=batch.id, after={**counts, "filename": batch.filename})
    except IntegrityError as error:
        # Another change got in between (a customer created with one of the codes).
        raise DomainError(_l("The customers changed while the file was being imported. "
                             "Nothing was imported; please confirm again.")) from error
    batch.status, batch.applied_at = "applied", now
    return counts


def _write_rows(rows, user, now):
    references = _References()
    current = _load_current({values["code"] for _n, values in rows})
    plans = []
    for number, values in rows:
        action, changes, problems = _plan_row(values, current.get(values["code"]), references,
                                              user)
        if problems:
            key, message = problems[0]
            raise DomainError(_l("The customers changed since the preview (row %(row)s, "
                                 "%(column)s: %(message)s). Nothing was imported; upload the "
                                 "file again.", row=number, column=field_label(key),
                                 message=message))
        plans.append((action, values, changes))
    counts = {"create": 0, "update": 0, "unchanged": 0}
    for action, _values, _changes in plans:
        counts[action] += 1
    _insert_customers([values for action, values, _c in plans if action == "create"], user, now)
    ids = {code: row["id"] for code, row in current.items()}
    ids.update(_ids_of([values["code"] for action, values, _c in plans if action == "create"]))
    _update_customers([(ids[values["code"]], changes) for action, values, changes in plans
                       if action == "update"], now)
    _write_figures(plans, ids, current)
    record_ownership([(ids[values["code"]], (current.get(values["code"]) or {}).get(
        "account_manager"), values["account_manager"])
        for action, values, _c in plans
        if action in ("create", "update") and "account_manager" in values], user, "import", now)
    return counts


def _insert_customers(rows, user, now):
    records = []
    for values in rows:
        record = {key: values[key] for key in CUSTOMER_FIELDS if key in values}
        record.update(code=values["code"], branch=_target_branch(values, None, user),
                      name_initials=pinyin_initials(values["name"]),
                      created_at=now, updated_at=now)
        records.append(record)
    _insert_many(Customer, records)


def _insert_many(model, records):
    """Insert dicts; a field a dict lacks gets its default.

    The statement is built once and the rows go through the driver's batch
    call: peewee's insert_many() builds SQL value by value, which took half
    of confirming 20,000 new customers with 60,000 yearly figures.
    """
    if not records:
        return
    # Every column, so that peewee adds none of its own (it adds those with defaults).
    fields = [f for f in model._meta.sorted_fields if not f.primary_key]
    defaults = {f.name: f.default() if callable(f.default) else f.default for f in fields}
    rows = [tuple(f.db_value(record.get(f.name, defaults[f.name])) for f in fields)
            for record in records]
    sql, _params = model.insert_many(rows[:1], fields=fields).as_rowcount().sql()
    cursor = db.cursor()
    with peewee_errors:  # the driver's errors as peewee's (IntegrityError…), as peewee does
        if is_sqlite():
            cursor.executemany(sql, rows)
        else:
            # psycopg2's executemany() runs one statement per row; execute_values() pages.
            values = sql[:sql.rindex("VALUES") + len("VALUES")] + " %s"
            execute_values(cursor, values, rows, page_size=CHUNK)


def _ids_of(codes):
    ids = {}
    for chunk in chunked(codes, CHUNK):
        ids.update(Customer.select(Customer.code, Customer.id)
                   .where(Customer.code.in_(chunk)).tuples())
    return ids


def _update_customers(updates, now):
    """Write each customer's changed fields; customers that change the same
    fields share one CASE statement per chunk."""
    groups = defaultdict(list)
    for customer_id, changes in updates:
        fields = {key: new for key, _old, new in changes if ":" not in key}
        if "name" in fields:
            fields["name_initials"] = pinyin_initials(fields["name"])
        fields["updated_at"] = now
        groups[tuple(sorted(fields))].append((customer_id, fields))
    for names, rows in groups.items():
        _bulk_update(Customer, names, rows)


def _bulk_update(model, names, rows):
    """UPDATE model SET f = CASE id WHEN … THEN … END, … WHERE id IN (…), per chunk."""
    for chunk in chunked(rows, CHUNK):
        update = {}
        for name in names:
            column = model._meta.fields[name]
            update[column] = Case(model.id, [(row_id, column.db_value(values[name]))
                                             for row_id, values in chunk])
        model.update(update).where(model.id.in_([row_id for row_id, _v in chunk])).execute()


def _write_figures(plans, ids, current):
    inserts, groups, touched = [], defaultdict(list), set()
    for action, values, _changes in plans:
        if action == "unchanged":
            continue
        known = current.get(values["code"], {}).get("years", {})
        for year, figures in values.get("years", {}).items():
            touched.add(ids[values["code"]])
            old = known.get(year)
            if old is None:
                inserts.append({"customer": ids[values["code"]], "year": year,
                                **FIGURE_DEFAULTS, **figures})
                continue
            changed = {k: v for k, v in figures.items() if v != old[k]}
            if changed:
                groups[tuple(sorted(changed))].append((old["id"], changed))
    _insert_many(CustomerYear, inserts)
    for names, rows in groups.items():
        _bulk_update(CustomerYear, names, rows)
    refresh_placements(touched)


# --- Export --------------------------------------------------------------------

EXPORT_FIELDS = ("code", "name", "kind", "nature", "industry", "region", "branch",
                 "account_manager", "cooperation_since", "provisional")


def export_customers(query, fmt):
    """The customers of `query` (already scoped and filtered by the caller, in
    its order) as a spreadsheet with the import's columns and every year's
    figures. Returns (bytes, mimetype, download filename). Headers and choices
    are in the current locale. Raises ValueError for a format other than
    "xlsx" or "csv"."""
    if fmt not in ("xlsx", "csv"):
        raise ValueError(f"unknown export format {fmt!r}")
    references = _References()
    columns = [Customer.id, *(getattr(Customer, key) for key in EXPORT_FIELDS)]
    customers = list(query.select(*columns).tuples())
    figures = {}
    for chunk in chunked([row[0] for row in customers], CHUNK):
        for row in (CustomerYear.select(CustomerYear.customer, CustomerYear.year,
                                        *(getattr(CustomerYear, f) for f in FIGURES))
                    .where(CustomerYear.customer.in_(chunk)).tuples()):
            sales, profit, rate, days, share, volume = row[2:]
            figures[(row[0], row[1])] = (_cents(sales), _cents(profit), _cents(rate), days,
                                         _cents(share), _cents(volume))
    years = sorted({year for _id, year in figures})
    headers = [str(COLUMNS[key].label) for key in EXPORT_FIELDS]
    headers += [field_label(f"{key}:{year}") for year in years for key in FIGURES]
    branch_labels = {b: _export_branch(b, references) for b in references.branches}
    manager_labels = {}
    rows = []
    for customer_id, code, name, kind, nature, industry, region, branch, manager, since, \
            provisional in customers:
        if (manager, branch) not in manager_labels:
            manager_labels[(manager, branch)] = _export_manager(manager, branch, references)
        row = [code, name, str(KINDS.get(kind, kind)), str(NATURES.get(nature, nature)),
               str(INDUSTRIES.get(industry, industry)), region or None, branch_labels.get(branch),
               manager_labels[(manager, branch)], since, _("Yes") if provisional else _("No")]
        for year in years:
            row.extend(figures.get((customer_id, year), (None,) * len(FIGURES)))
        rows.append(row)
    stamp = datetime.date.today().strftime("%Y%m%d")
    if fmt == "xlsx":
        data = write_xlsx(headers, rows, _("Customers"))
        return data, XLSX_MIMETYPE, f"customers-{stamp}.xlsx"
    return write_csv(headers, rows), CSV_MIMETYPE, f"customers-{stamp}.csv"


def _cents(value):
    # SQLite hands back 12345000 for 12345000.00; the file shows what the screens show.
    return None if value is None else Decimal(value).quantize(Decimal("0.01"))


def _export_branch(branch_id, references):
    """The branch's name when the import would find the branch by it, else its code."""
    branch = references.branches[branch_id]
    try:
        return branch.name if references.branch(branch.name) == branch_id else branch.code
    except _CellError:
        return branch.code


def _export_manager(user_id, branch_id, references):
    """The manager's display name when the import would find them by it, else
    their username."""
    user = references.users.get(user_id)
    if user is None:
        return None
    try:
        if references.manager(user.display_name, branch_id) == user_id:
            return user.display_name
    except _CellError:
        pass
    return user.username
