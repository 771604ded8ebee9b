"""The share × upcoming-volume portfolio (客户组合): where each customer stands by our
share of what it buys (我方份额) and what it is about to buy (近期采购量), and the
strategy that serves each of the four quadrants.

The thresholds and the strategies are versioned like tier policies: every save is a new
PortfolioSetting row, and the latest one in force holds.
"""
import datetime
from collections import namedtuple
from decimal import Decimal

from peewee import (
    JOIN,
    SQL,
    Case,
    CharField,
    DateField,
    DateTimeField,
    DecimalField,
    ForeignKeyField,
    IntegerField,
    TextField,
    fn,
)

from i18n import lazy_gettext as _l

from .audit import audit
from .base import BaseModel, DomainError, db, utcnow, write_transaction
from .customers import Customer
from .kept_counts import PORTFOLIO, kept
from .people import User

# The quadrants, in the order pages list them: high share first, large volume first.
QUADRANTS = ("keep", "hold_or_win", "develop", "win_or_let_go")

# Where a quadrant lies: (high share, large volume).
QUADRANT_OF = {(True, True): "keep", (True, False): "hold_or_win",
               (False, True): "develop", (False, False): "win_or_let_go"}

# What holds while no administrator has saved a setting.
DEFAULT_SHARE_THRESHOLD = Decimal("30")
DEFAULT_VOLUME_THRESHOLD = Decimal("1000000")
DEFAULT_STRATEGIES = {
    "keep": (_l("Keep close"),
             _l("A dedicated account manager, top-level contact and first call on capacity.")),
    "hold_or_win": (_l("Hold or win"),
                    _l("Hold the share with steady service; win the next order as it grows.")),
    "develop": (_l("Develop"),
                _l("Invest to raise our share: solutions, visits and a plan to win more of "
                   "its orders.")),
    "win_or_let_go": (_l("Win or let go"),
                      _l("Serve through the sales team; win it at low cost or let it go.")),
}


def quadrant(share, volume, setting):
    """The quadrant a share of wallet (%) and an upcoming volume (元) fall in under
    `setting`: "keep", "hold_or_win", "develop" or "win_or_let_go"; None when either
    figure is missing. A figure at its threshold counts as high (large)."""
    if share is None or volume is None:
        return None
    return QUADRANT_OF[(share >= setting.share_threshold, volume >= setting.volume_threshold)]


class PortfolioSetting(BaseModel):
    """One version of the portfolio's thresholds and strategies, in force from
    `effective_on`."""
    version = IntegerField(unique=True)
    effective_on = DateField()
    share_threshold = DecimalField(max_digits=5, decimal_places=2)  # %
    volume_threshold = DecimalField(max_digits=16, decimal_places=2)  # 元
    keep_name = CharField(max_length=50)
    keep_note = TextField()
    hold_or_win_name = CharField(max_length=50)
    hold_or_win_note = TextField()
    develop_name = CharField(max_length=50)
    develop_note = TextField()
    win_or_let_go_name = CharField(max_length=50)
    win_or_let_go_note = TextField()
    created_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("effective_on", "version"), False),)

    def strategy(self, quadrant_):
        """The name of the quadrant's strategy (重点保持…)."""
        return getattr(self, f"{quadrant_}_name")

    def note(self, quadrant_):
        """How the quadrant's customers are served, in a line or two."""
        return getattr(self, f"{quadrant_}_note")

    def values(self):
        return {name: getattr(self, name) for name in SETTING_FIELDS}

    def audit_dict(self):
        return {"version": self.version, "effective_on": self.effective_on, **self.values()}


SETTING_FIELDS = ("share_threshold", "volume_threshold",
                  *(f"{q}_{part}" for q in QUADRANTS for part in ("name", "note")))


def default_setting():
    """The setting that holds before any is saved (version 0, never stored), its
    strategies in the reader's language."""
    texts = {f"{q}_{part}": str(DEFAULT_STRATEGIES[q][i])
             for q in QUADRANTS for i, part in enumerate(("name", "note"))}
    return PortfolioSetting(version=0, effective_on=None,
                            share_threshold=DEFAULT_SHARE_THRESHOLD,
                            volume_threshold=DEFAULT_VOLUME_THRESHOLD, **texts)


def setting_in_force(today=None):
    """The latest saved setting in force on `today`, else the defaults."""
    today = today or datetime.date.today()
    found = (PortfolioSetting.select().where(PortfolioSetting.effective_on <= today)
             .order_by(PortfolioSetting.effective_on.desc(), PortfolioSetting.version.desc())
             .first())
    return found or default_setting()


def setting_history():
    """Every saved version, newest first, with who saved it."""
    return list(PortfolioSetting.select(PortfolioSetting, User)
                .join(User, JOIN.LEFT_OUTER, on=(PortfolioSetting.created_by == User.id))
                .order_by(PortfolioSetting.version.desc()))


def save_setting(user, *, effective_on, **values):
    """A new version of the thresholds and strategies from `effective_on`, audited.

    Raises DomainError, saving nothing, for a share threshold outside 0–100, a negative
    volume threshold, a strategy without a name, or when nothing differs from the
    latest version."""
    values = {name: values.get(name) for name in SETTING_FIELDS}
    share, volume = values["share_threshold"], values["volume_threshold"]
    # A form reads "nan" as a number that compares with nothing: refused like any other.
    if share is None or not share.is_finite() or not 0 <= share <= 100:
        raise DomainError(_l("The share threshold is a percentage from 0 to 100."))
    if volume is None or not volume.is_finite() or volume < 0:
        raise DomainError(_l("The volume threshold cannot be negative."))
    for q in QUADRANTS:
        values[f"{q}_name"] = (values[f"{q}_name"] or "").strip()
        values[f"{q}_note"] = (values[f"{q}_note"] or "").strip()
        if not values[f"{q}_name"]:
            raise DomainError(_l("Give each quadrant's strategy a name."))
    if effective_on is None:
        raise DomainError(_l("Give the date the thresholds take effect."))
    with write_transaction():
        latest = PortfolioSetting.select().order_by(PortfolioSetting.version.desc()).first()
        if latest is not None and latest.effective_on == effective_on \
                and latest.values() == values:
            raise DomainError(_l("Nothing changed: the thresholds and strategies are as "
                                 "they were."))
        setting = PortfolioSetting.create(
            version=(latest.version + 1) if latest else 1, effective_on=effective_on,
            created_by=user, **values)
        audit("portfolio_setting_saved", setting,
              before=latest.audit_dict() if latest else None, after=setting.audit_dict())
    return setting


# --- Placing customers -----------------------------------------------------------
# A customer's place is kept on the customer (Customer.placed_year, placed_share,
# placed_volume: refresh_placements() in models/customers.py), so that counting and
# listing a whole book is one pass of SQL.

# Where one customer stands: the setting in force, its latest year with both figures
# (a CustomerYear, or None) and that year's quadrant (or None).
Placement = namedtuple("Placement", "setting year quadrant")


def placement(years):
    """The Placement of a customer whose yearly figures are `years`, under the setting
    in force (the customer's page, its sheets and the meeting show it)."""
    setting, year = setting_in_force(), latest_placed_year(years)
    return Placement(setting, year, year and quadrant(year.share_of_wallet,
                                                      year.upcoming_volume, setting))


# A placed customer. `tier` is the tier's id.
Placed = namedtuple("Placed", "id code name tier year share volume quadrant")


def placed(customers):
    """The customers of the query `customers` that have a place (a year with both a
    share and a volume). Asked of the volume, so that the counts read the index on
    (branch, volume, share, tier) alone."""
    return customers.where(Customer.placed_volume.is_null(False))


def in_quadrant(quadrant_, setting):
    """The SQL condition of a placed customer lying in `quadrant_` under `setting`."""
    high, large = next(key for key, q in QUADRANT_OF.items() if q == quadrant_)
    share = (Customer.placed_share >= setting.share_threshold if high
             else Customer.placed_share < setting.share_threshold)
    volume = (Customer.placed_volume >= setting.volume_threshold if large
              else Customer.placed_volume < setting.volume_threshold)
    return share & volume


def placed_customers(customers, setting, quadrant_=None, limit=None):
    """The placed customers of the query `customers` (of `quadrant_` only, if given),
    largest upcoming volume first, at most `limit` of them, as Placed tuples."""
    query = placed(customers)
    if quadrant_:
        query = query.where(in_quadrant(quadrant_, setting))
    rows = (query.select(Customer.id, Customer.code, Customer.name, Customer.tier,
                         Customer.placed_year, Customer.placed_share, Customer.placed_volume)
            .order_by(Customer.placed_volume.desc(), Customer.code).limit(limit).tuples())
    return [Placed(id_, code, name, tier, year, share, volume,
                   quadrant(share, volume, setting))
            for id_, code, name, tier, year, share, volume in rows]


def chart_points(customers):
    """(id, code, name, tier id, share, volume) of each placed customer of the query
    `customers`, largest volume first, for the chart's dots: the driver's rows as they
    come, as numbers or Decimals (peewee's conversion of a branch's thousand-odd rows
    was a quarter of the page's time)."""
    return db.execute(placed(customers).select(
        Customer.id, Customer.code, Customer.name, Customer.tier, Customer.placed_share,
        Customer.placed_volume).order_by(Customer.placed_volume.desc(), Customer.code))


def latest_placed_year(years):
    """Of a customer's yearly figures, the latest year with both a share and a volume,
    or None."""
    placed_years = [y for y in years
                    if y.share_of_wallet is not None and y.upcoming_volume is not None]
    return max(placed_years, key=lambda y: y.year) if placed_years else None


def query_key(customers):
    """What a count of the query `customers` depends on besides the tables: its SQL."""
    sql, params = customers.sql()
    return [sql, [str(p) for p in params]]


def counts(customers, setting, tier_ids):
    """({quadrant: {tier id (None: no tier): count, "all": count}}, the same summed over
    the quadrants, the customers without a place) of the query `customers`, every
    quadrant and tier present (zero where none). One GROUP BY, kept while no customer's
    tier, branch, industry or place changes (models/kept_counts.py)."""
    high = Customer.placed_share >= setting.share_threshold
    large = Customer.placed_volume >= setting.volume_threshold

    def count():
        # Grouped by the output names: PostgreSQL does not see two expressions with
        # parameters as the same one.
        return [[None if h is None else bool(h), None if g is None else bool(g), t, n]
                for h, g, t, n in customers.select(
                    high.alias("is_high"), large.alias("is_large"), Customer.tier,
                    fn.COUNT(Customer.id))
                .group_by(SQL("is_high"), SQL("is_large"), Customer.tier).tuples()]

    table = {q: {**{t: 0 for t in (*tier_ids, None)}, "all": 0} for q in QUADRANTS}
    unplaced = 0
    for is_high, is_large, tier, number in kept(
            ["portfolio counts", query_key(customers), str(setting.share_threshold),
             str(setting.volume_threshold)], count, PORTFOLIO):
        if is_high is None or is_large is None:
            unplaced += number
            continue
        row = table[QUADRANT_OF[is_high, is_large]]
        row[tier if tier in row else None] += number
        row["all"] += number
    totals = {key: sum(row[key] for row in table.values()) for key in table[QUADRANTS[0]]}
    return table, totals, unplaced


def volume_range(customers):
    """(smallest volume above zero, largest volume) of the placed customers of the
    query `customers`, None where there is none: two lookups in the volume index."""
    smallest = placed(customers).where(Customer.placed_volume > 0).select(
        fn.MIN(Customer.placed_volume)).scalar()
    return smallest, placed(customers).select(fn.MAX(Customer.placed_volume)).scalar()


def grid_counts(customers, share_edges, volume_edges):
    """{(column, row): count} of the placed customers of the query `customers`: the
    column is how many of `share_edges` (ascending) the share reaches, the row how many
    of `volume_edges` (descending) the volume does not exceed. One GROUP BY, kept as
    counts() is."""
    column = Case(None, [(Customer.placed_share < edge, index)
                         for index, edge in enumerate(share_edges)], len(share_edges))
    row = Case(None, [(Customer.placed_volume > edge, index)
                      for index, edge in enumerate(volume_edges)], len(volume_edges))
    return {(c, r): n for c, r, n in kept(
        ["portfolio grid", query_key(customers), share_edges, volume_edges],
        lambda: [[int(c), int(r), n] for c, r, n in placed(customers).select(
            column.alias("grid_column"), row.alias("grid_row"), fn.COUNT(Customer.id))
            .group_by(SQL("grid_column"), SQL("grid_row")).tuples()],
        PORTFOLIO)}
