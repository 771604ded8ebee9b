"""Value classes (客户价值分类): which customers are the most valuable (最有价值客户), grow
the most (最具增长性客户) or cost more than they bring (负值客户), from their yearly figures.

The rules are versioned like the portfolio's setting: every save is a new
ValueClassRule row, in force from the moment it is saved. Each customer's classes are
stored (models.customers.CustomerValueClass) and recomputed in SQL when the rules are
saved and when yearly figures are imported, so that the customer list reads them
without ranking the whole book on every page.

The figures of one year: the latest year in which any customer has sales or profit (a
year that only holds a share of wallet and an upcoming volume does not count). In it:

- most valuable: among the customers with figures that year, the top N % by profit,
  rounded up to whole customers (a tie at the cut-off is in), and only with a profit
  above zero;
- most growth: sales more than X % above those of two years before (which must be
  above zero);
- negative value: a loss (profit below zero), or sales with a collection rate below
  Y %.

A customer may hold several classes; one without figures in that year holds none.
"""
from collections import namedtuple
from decimal import ROUND_CEILING, Decimal

from peewee import (
    JOIN,
    DateTimeField,
    DecimalField,
    ForeignKeyField,
    IntegerField,
    Value,
    fn,
)

from i18n import lazy_gettext as _l

from .audit import audit
from .base import BaseModel, DomainError, db, is_sqlite, utcnow, write_transaction
from .customers import VALUE_CLASSES, CustomerValueClass, CustomerYear
from .kept_counts import PORTFOLIO, bump
from .people import User

# What holds while no administrator has saved rules.
DEFAULT_TOP_PERCENT = Decimal("20")
DEFAULT_GROWTH_PERCENT = Decimal("30")
DEFAULT_COLLECTION_FLOOR = Decimal("60")
# The most growth the rule may ask for: ten times the sales of two years before.
MAX_GROWTH_PERCENT = Decimal("1000")
# Growth is measured against the sales of this many years before the latest.
GROWTH_SPAN = 2

RULE_FIELDS = ("top_percent", "growth_percent", "collection_floor")


class ValueClassRule(BaseModel):
    """One version of the value classes' rules, in force from when it was saved."""
    version = IntegerField(unique=True)
    top_percent = DecimalField(max_digits=5, decimal_places=2)  # N: top N % by profit
    growth_percent = DecimalField(max_digits=7, decimal_places=2)  # X: sales growth, %
    collection_floor = DecimalField(max_digits=5, decimal_places=2)  # Y: collection rate, %
    created_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)

    def values(self):
        return {name: Decimal(getattr(self, name)) for name in RULE_FIELDS}

    def audit_dict(self):
        return {"version": self.version, **self.values()}


def default_rules():
    """The rules that hold before any are saved (version 0, never stored)."""
    return ValueClassRule(version=0, top_percent=DEFAULT_TOP_PERCENT,
                          growth_percent=DEFAULT_GROWTH_PERCENT,
                          collection_floor=DEFAULT_COLLECTION_FLOOR)


def rules_in_force():
    """The latest saved rules, else the defaults."""
    return ValueClassRule.select().order_by(ValueClassRule.version.desc()).first() \
        or default_rules()


def rule_history():
    """Every saved version, newest first, with who saved it."""
    return list(ValueClassRule.select(ValueClassRule, User)
                .join(User, JOIN.LEFT_OUTER, on=(ValueClassRule.created_by == User.id))
                .order_by(ValueClassRule.version.desc()))


def _within(value, most):
    """Whether `value` is a number from 0 to `most` (NaN, which a form reads from "nan",
    is none: it cannot even be compared)."""
    return value is not None and Decimal(value).is_finite() and 0 <= value <= most


def check_rules(top_percent, growth_percent, collection_floor):
    """Raises DomainError for a value outside its range: N and Y are percentages from 0
    to 100, X from 0 to MAX_GROWTH_PERCENT."""
    if not _within(top_percent, 100):
        raise DomainError(_l("The share of most valuable customers is a percentage from 0 "
                             "to 100."))
    if not _within(growth_percent, MAX_GROWTH_PERCENT):
        raise DomainError(_l("The sales growth is a percentage from 0 to %(most)s.",
                             most=int(MAX_GROWTH_PERCENT)))
    if not _within(collection_floor, 100):
        raise DomainError(_l("The collection rate is a percentage from 0 to 100."))


def save_rules(user, **values):
    """A new version of the rules, in force at once: every customer's classes are
    recomputed in the same transaction, and the save is audited with how many customers
    each class now holds. Returns the new ValueClassRule.

    Raises DomainError, saving nothing, for a value out of range (check_rules) or when
    nothing differs from the latest version."""
    values = {name: values.get(name) for name in RULE_FIELDS}
    check_rules(**values)
    values = {name: Decimal(value).quantize(Decimal("0.01")) for name, value in values.items()}
    with write_transaction():
        latest = ValueClassRule.select().order_by(ValueClassRule.version.desc()).first()
        if latest is not None and latest.values() == values:
            raise DomainError(_l("Nothing changed: the rules are as they were."))
        rules = ValueClassRule.create(version=(latest.version + 1) if latest else 1,
                                      created_by=user, **values)
        counts = recompute(rules)
        audit("value_class_rules_saved", rules,
              before=latest.audit_dict() if latest else None,
              after={**rules.audit_dict(), "year": counts.year, "counts": counts.by_class})
    return rules


# --- Computing the classes -----------------------------------------------------------

def _has_figures(years):
    """The condition "this row holds yearly figures" (not only the portfolio's)."""
    return (years.sales != 0) | (years.profit != 0)


def latest_year():
    """The latest year in which any customer has sales or profit, or None."""
    return (CustomerYear.select(fn.MAX(CustomerYear.year))
            .where(_has_figures(CustomerYear)).scalar())


def _hundredths(percent):
    """A percentage in hundredths of a per cent, a whole number: SQL compares exactly."""
    return int(Decimal(percent) * 100)


def top_count(customers, top_percent):
    """How many of `customers` the top N % are: rounded up to a whole customer."""
    return int((Decimal(customers) * Decimal(top_percent) / 100)
               .to_integral_value(rounding=ROUND_CEILING))


Counts = namedtuple("Counts", "year by_class")


def recompute(rules=None):
    """Store every customer's value classes under `rules` (default: those in force),
    replacing what was stored, in a few statements whatever the size of the book.
    Returns Counts(the year used or None, {class: customers holding it})."""
    rules = rules or rules_in_force()
    with write_transaction():
        if not is_sqlite():
            # Two recomputations at once would each insert what the other deleted
            # unseen; the second waits for the first. Readers are not held up.
            db.execute_sql("LOCK TABLE customer_value_class IN SHARE ROW EXCLUSIVE MODE")
        CustomerValueClass.delete().execute()
        bump(PORTFOLIO)  # the portfolio's counts filtered by a value class
        year = latest_year()
        if year is None:
            return Counts(None, dict.fromkeys(VALUE_CLASSES, 0))
        in_year = (CustomerYear.year == year) & _has_figures(CustomerYear)
        fields = [CustomerValueClass.customer, CustomerValueClass.value_class]
        selects = []

        top = top_count(CustomerYear.select().where(in_year).count(), rules.top_percent)
        if top:
            Ranked = CustomerYear.alias()
            cutoff = (Ranked.select(Ranked.profit)
                      .where(Ranked.year == year, _has_figures(Ranked))
                      .order_by(Ranked.profit.desc()).limit(1).offset(top - 1))
            selects.append(CustomerYear.select(CustomerYear.customer, Value("most_valuable"))
                           .where(in_year, CustomerYear.profit > 0,
                                  CustomerYear.profit >= cutoff))

        Before = CustomerYear.alias()
        selects.append(
            CustomerYear.select(CustomerYear.customer, Value("most_growth"))
            .join(Before, on=((Before.customer == CustomerYear.customer)
                              & (Before.year == year - GROWTH_SPAN)))
            .where(in_year, Before.sales > 0,
                   CustomerYear.sales * 10000
                   > Before.sales * (10000 + _hundredths(rules.growth_percent))))

        selects.append(
            CustomerYear.select(CustomerYear.customer, Value("negative_value"))
            .where(in_year, (CustomerYear.profit < 0)
                   | ((CustomerYear.sales > 0)
                      & (CustomerYear.collection_rate * 100
                         < _hundredths(rules.collection_floor)))))

        for select in selects:
            CustomerValueClass.insert_from(select, fields).execute()
        return Counts(year, stored_counts())


def stored_counts():
    """{value class: how many customers hold it}, as stored."""
    found = dict(CustomerValueClass.select(CustomerValueClass.value_class, fn.COUNT(1))
                 .group_by(CustomerValueClass.value_class).tuples())
    return {name: found.get(name, 0) for name in VALUE_CLASSES}


def classes_from_figures(years, rules):
    """The same rules in plain Python, for checking the stored classes: `years` holds
    (customer id, year, sales, profit, collection rate) rows; returns {customer id:
    {value class}} of the customers that hold any."""
    def has_figures(row):
        return row[2] != 0 or row[3] != 0

    rows = [row for row in years if has_figures(row)]
    if not rows:
        return {}
    year = max(row[1] for row in rows)
    latest = {row[0]: row for row in rows if row[1] == year}
    sales_before = {row[0]: row[2] for row in years if row[1] == year - GROWTH_SPAN}
    found = {}
    top = top_count(len(latest), rules.top_percent)
    profits = sorted((Decimal(row[3]) for row in latest.values()), reverse=True)
    cutoff = profits[top - 1] if top else None
    for customer, (_c, _y, sales, profit, rate) in latest.items():
        sales, profit, rate = Decimal(sales), Decimal(profit), Decimal(rate)
        classes = set()
        if cutoff is not None and profit > 0 and profit >= cutoff:
            classes.add("most_valuable")
        before = sales_before.get(customer)
        if before is not None and before > 0 and \
                sales > before * (1 + Decimal(rules.growth_percent) / 100):
            classes.add("most_growth")
        if profit < 0 or (sales > 0 and rate < Decimal(rules.collection_floor)):
            classes.add("negative_value")
        if classes:
            found[customer] = classes
    return found
