"""Tiers (等级), their versioned service policies (服务政策), and service compliance:
which customers are overdue for the contact, visit or sales analysis their tier's
policy promises."""
import datetime
import functools
import heapq
import itertools
import operator
import re
from collections import namedtuple

from flask_babel import get_locale
from peewee import (
    JOIN,
    SQL,
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
    fn,
)

from i18n import lazy_gettext as _l

from .base import (
    BaseModel,
    DomainError,
    db,
    is_sqlite,
    param_mark,
    param_marks,
    prepared,
    utcnow,
    write_transaction,
)
from .people import User, scoped_to_branch

COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
# Tier codes appear in URLs (/tiers/<code>): letters, digits, '-' and '_'.
CODE = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


class Tier(BaseModel):
    code = CharField(max_length=16, unique=True)
    name_zh = CharField(max_length=50)
    name_en = CharField(max_length=50)
    # 1 is the top tier.
    rank = IntegerField(unique=True)
    colour = CharField(max_length=7, default="#64748b")

    class Meta:
        order_by = ("rank",)

    def __str__(self):
        return self.display_name

    @property
    def display_name(self):
        locale = get_locale()
        return self.name_en if locale and locale.language == "en" else self.name_zh

    @classmethod
    def ordered(cls):
        return cls.select().order_by(cls.rank)

    @classmethod
    def in_order(cls):
        """Every tier, top first, as a list: forms and pages read them on every request
        (a prepared query)."""
        return list(_tiers_in_order())

    @classmethod
    def by_id(cls):
        """{id: tier} of every tier (a handful of rows), for pages that show many."""
        return {tier.id: tier for tier in cls.in_order()}

    @classmethod
    def top(cls):
        return cls.ordered().first()

    @classmethod
    def by_code(cls, code):
        """The tier with this code; raises DomainError for an unknown one."""
        tier = cls.get_or_none(cls.code == code)
        if tier is None:
            raise DomainError(_l("There is no tier %(code)s.", code=code))
        return tier

    def audit_dict(self):
        return {"code": self.code, "name_zh": self.name_zh, "name_en": self.name_en,
                "rank": self.rank, "colour": self.colour}


def save_tier(tier, user, *, code, name_zh, name_en, colour):
    """Create (`tier` is None; it goes to the bottom of the list) or change a tier,
    audited. Raises DomainError for a malformed or taken code or a bad colour."""
    from .audit import audit
    code = (code or "").strip()
    if not CODE.match(code):
        raise DomainError(_l("A tier code is 1 to 16 letters, digits, '-' or '_'."))
    if not COLOUR.match(colour or ""):
        raise DomainError(_l("Give the colour as #rrggbb."))
    with write_transaction():
        clash = Tier.select().where(Tier.code == code)
        if tier is not None:
            clash = clash.where(Tier.id != tier.id)
        if clash.exists():
            raise DomainError(_l("The tier code %(code)s is taken.", code=code))
        creating = tier is None
        before = None if creating else tier.audit_dict()
        if creating:
            tier = Tier(rank=(Tier.select(fn.MAX(Tier.rank)).scalar() or 0) + 1)
        tier.code, tier.name_zh, tier.name_en, tier.colour = code, name_zh, name_en, colour
        tier.save()
        audit("tier_created" if creating else "tier_updated", tier, before=before,
              after=tier.audit_dict())
    return tier


def move_tier(tier, user, step):
    """Swap the tier with its neighbour above (`step` -1) or below (+1), audited.
    Raises DomainError when it is already at that end."""
    from .audit import audit
    with write_transaction():
        tier = Tier.get_by_id(tier.id)
        query = Tier.select()
        query = (query.where(Tier.rank < tier.rank).order_by(Tier.rank.desc()) if step < 0
                 else query.where(Tier.rank > tier.rank).order_by(Tier.rank))
        other = query.first()
        if other is None:
            raise DomainError(_l("The tier is already at that end of the list."))
        mine, theirs = tier.rank, other.rank
        # Ranks are unique: park one while the other moves.
        Tier.update(rank=-mine).where(Tier.id == tier.id).execute()
        Tier.update(rank=mine).where(Tier.id == other.id).execute()
        Tier.update(rank=theirs).where(Tier.id == tier.id).execute()
        audit("tier_moved", tier, before={"rank": mine}, after={"rank": theirs})


# --- Service policies ---------------------------------------------------------

PRIORITIES = {"first": _l("First"), "normal": _l("Normal"), "spare": _l("When capacity allows")}
# The fields a policy version holds, in the order the page shows them.
POLICY_FIELDS = ("contact_days", "visit_days", "analysis_days", "response_hours",
                 "holiday_greetings", "dedicated_manager", "production_priority",
                 "credit_terms", "notes")
POLICY_LABELS = {
    "effective_on": _l("Effective from"),
    "contact_days": _l("Contact every (days)"),
    "visit_days": _l("Visit every (days)"),
    "analysis_days": _l("Sales analysis every (days)"),
    "response_hours": _l("Response time (hours)"),
    "holiday_greetings": _l("Holiday greetings"),
    "dedicated_manager": _l("Served by"),
    "production_priority": _l("Production priority"),
    "credit_terms": _l("Credit terms"),
    "notes": _l("Further terms"),
}


class TierPolicy(BaseModel):
    """One version of a tier's service policy, in force from `effective_on`."""
    tier = ForeignKeyField(Tier, backref="policies", on_delete="CASCADE")
    version = IntegerField()
    effective_on = DateField()
    # Intervals in days; None: not promised for this tier.
    contact_days = IntegerField(null=True)
    visit_days = IntegerField(null=True)
    analysis_days = IntegerField(null=True)
    response_hours = IntegerField(null=True)
    holiday_greetings = BooleanField(default=False)
    dedicated_manager = BooleanField(default=False)
    production_priority = CharField(max_length=16, default="normal")
    credit_terms = CharField(max_length=200, default="")
    # Markdown, sanitised when shown.
    notes = TextField(default="")
    created_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("tier", "version"), True), (("tier", "effective_on"), False))

    def values(self):
        return {name: getattr(self, name) for name in POLICY_FIELDS}

    def audit_dict(self):
        return {"tier": self.tier_id, "version": self.version,
                "effective_on": self.effective_on, **self.values()}


def current_policies(today=None):
    """{tier id: the policy version in force on `today`} (a handful of rows)."""
    today = today or datetime.date.today()
    found = {}
    for policy in _policies_until(day=today.isoformat()):
        found[policy.tier_id] = policy
    return found


@prepared
def _tiers_in_order():
    return Tier.select().order_by(Tier.rank)


@prepared
def _policies_until(*, day):
    return (TierPolicy.select().where(TierPolicy.effective_on <= day)
            .order_by(TierPolicy.effective_on, TierPolicy.version))


def current_policy(tier, today=None):
    """The version of `tier`'s policy in force on `today`, or None."""
    today = today or datetime.date.today()
    return (TierPolicy.select().where(TierPolicy.tier == tier, TierPolicy.effective_on <= today)
            .order_by(TierPolicy.effective_on.desc(), TierPolicy.version.desc()).first())


def policy_history(tier):
    """[(version, [(field, before, after)])] newest first: each version with what it
    changed against the version before it (the first one: everything it set)."""
    versions = list(TierPolicy.select(TierPolicy, User)
                    .join(User, JOIN.LEFT_OUTER, on=(TierPolicy.created_by == User.id))
                    .where(TierPolicy.tier == tier).order_by(TierPolicy.version))
    history, previous = [], None
    for version in versions:
        changes = []
        for name in ("effective_on", *POLICY_FIELDS):
            after = getattr(version, name)
            before = getattr(previous, name) if previous else None
            if previous is None or before != after:
                changes.append((name, before, after))
        history.append((version, changes))
        previous = version
    return list(reversed(history))


def save_policy(tier, user, *, effective_on, **values):
    """A new version of the tier's policy from `effective_on`, audited.

    Raises DomainError when nothing differs from the latest version, for a
    negative interval, or an unknown production priority.
    """
    from .audit import audit
    values = {name: values.get(name) for name in POLICY_FIELDS}
    values["notes"] = (values["notes"] or "").strip()
    values["credit_terms"] = (values["credit_terms"] or "").strip()
    values["holiday_greetings"] = bool(values["holiday_greetings"])
    values["dedicated_manager"] = bool(values["dedicated_manager"])
    for name in ("contact_days", "visit_days", "analysis_days", "response_hours"):
        if values[name] is not None and values[name] <= 0:
            raise DomainError(_l("Intervals and response times are whole numbers above zero, "
                                 "or left empty."))
    if values["production_priority"] not in PRIORITIES:
        raise DomainError(_l("Unknown production priority."))
    if effective_on is None:
        raise DomainError(_l("Give the date the policy takes effect."))
    with write_transaction():
        latest = (TierPolicy.select().where(TierPolicy.tier == tier)
                  .order_by(TierPolicy.version.desc()).first())
        if latest is not None and latest.values() == values \
                and latest.effective_on == effective_on:
            raise DomainError(_l("Nothing changed: the policy is as it was."))
        policy = TierPolicy.create(tier=tier, version=(latest.version + 1) if latest else 1,
                                   effective_on=effective_on, created_by=user, **values)
        audit("tier_policy_saved", tier, before=latest.audit_dict() if latest else None,
              after=policy.audit_dict())
    return policy


# --- Service compliance -------------------------------------------------------

# What keeps each promise: any of these activity kinds.
CONTACT_KINDS = ("call", "visit", "email")
SERVICE_KINDS = {
    # kind: (label, policy field, ServiceStatus column, activity kinds)
    "contact": (_l("Contact"), "contact_days", "last_contact_on", CONTACT_KINDS),
    "visit": (_l("Visit"), "visit_days", "last_visit_on", ("visit",)),
    "analysis": (_l("Sales analysis"), "analysis_days", "last_analysis_on",
                 ("sales_analysis",)),
}
# The last date of a service never given: older than any due date, and indexable.
NEVER = datetime.date(1, 1, 1)
# How each tier's overdue list breaks ties between customers last served the same day:
# the rest of its (tier, last date, ...) index in order, and then the row id (migration
# 6), so that it reads straight off the index. The customer id alone as the tie-break
# made SQLite sort each day's customers first.
_TIES = {
    "contact": ("branch_id", "account_manager_id", "last_visit_on", "last_analysis_on"),
    "visit": ("branch_id", "account_manager_id"),
    "analysis": ("branch_id", "account_manager_id"),
}


class ServiceStatus(BaseModel):
    """Each customer's last contact, visit and sales analysis (NEVER when none), with
    mirrors of its tier, branch and account manager. Kept by database triggers on
    `activity` and `customer` (migration 6), so every way of logging an activity or
    moving a customer counts, and the compliance lists read one narrow, indexed table."""
    # The customer's id (customers.py imports this module, so no ForeignKeyField).
    customer = IntegerField(primary_key=True, column_name="customer_id")
    tier = IntegerField(null=True, column_name="tier_id")
    branch = IntegerField(null=True, column_name="branch_id")
    account_manager = IntegerField(null=True, column_name="account_manager_id")
    last_contact_on = DateField(default=NEVER)
    last_visit_on = DateField(default=NEVER)
    last_analysis_on = DateField(default=NEVER)


def _intervals(kind, policies):
    """{tier id: days} of the tiers whose policy promises `kind`."""
    field = SERVICE_KINDS[kind][1]
    return {tier_id: getattr(p, field) for tier_id, p in policies.items() if getattr(p, field)}


def _cutoffs(kind, today, policies):
    """{tier id: date}: a customer of that tier whose last `kind` is before the date is
    overdue."""
    return {tier_id: today - datetime.timedelta(days=days)
            for tier_id, days in _intervals(kind, policies).items()}


def _scoped(query, user, branch_id=None, manager_id=None):
    query = scoped_to_branch(query, ServiceStatus.branch, user)
    if branch_id:
        query = query.where(ServiceStatus.branch == branch_id)
    if manager_id:
        query = query.where(ServiceStatus.account_manager == manager_id)
    return query


def _overdue_parts(kind, today, policies):
    """[(tier id, SQL condition)]: one range of one index per tier."""
    last = getattr(ServiceStatus, SERVICE_KINDS[kind][2])
    return [(tier_id, (ServiceStatus.tier == tier_id) & (last < cutoff))
            for tier_id, cutoff in _cutoffs(kind, today, policies).items()]


def overdue(user, kind, today=None, branch_id=None, manager_id=None, policies=None):
    """ServiceStatus rows of the customers visible to `user` overdue for `kind`
    ("contact", "visit", "analysis"): their tier's policy promises it, and the last one
    is older than the interval (or there never was one)."""
    today = today or datetime.date.today()
    policies = current_policies(today) if policies is None else policies
    parts = [condition for _tier, condition in _overdue_parts(kind, today, policies)]
    condition = functools.reduce(operator.or_, parts) if parts else SQL("1 = 0")
    return _scoped(ServiceStatus.select().where(condition), user, branch_id, manager_id)


def overdue_page(user, kind, today=None, branch_id=None, manager_id=None, policies=None,
                 page=1, size=50, total=None):
    """(total, rows) of one page of the overdue list, most overdue first (never served at
    the top). Each row, an OverdueRow, has the customer's particulars, `last_on` (None:
    never), `days_overdue` (None: never) and `last`, the last activity of that kind.

    Each tier's overdue customers come out of their own index already in order, and its
    due dates in the same order; the tiers are merged here as they are read, so a page
    reads page*size rows in all, not page*size of each tier, and nothing is sorted."""
    today = today or datetime.date.today()
    policies = current_policies(today) if policies is None else policies
    intervals = _intervals(kind, policies)
    column = SERVICE_KINDS[kind][2]
    if total is None:
        total = overdue_counts(user, today, policies, branch_id=branch_id,
                               manager_id=manager_id, kinds=(kind,))[kind]
    # Only constants (column names) are written into the text; values are parameters.
    scope, scope_params = _scope_sql(user, branch_id, manager_id)
    sql = (f"SELECT customer_id, {column} FROM service_status "  # noqa: S608
           f"WHERE tier_id = {{p}} AND {column} < {{p}}{scope} "
           f"ORDER BY {column}, {', '.join(_TIES[kind])}, customer_id LIMIT {{p}}"
           ).replace("{p}", param_mark())

    def due_in(tier_id, cutoff):  # (due date, customer id, tier id, last date), in order
        interval = datetime.timedelta(days=intervals[tier_id])
        for customer_id, last_on in db.execute_sql(
                sql, [tier_id, cutoff.isoformat(), *scope_params, page * size]):
            last_on = _date(last_on)
            yield (last_on + interval if last_on > NEVER else NEVER), customer_id, tier_id, last_on

    merged = heapq.merge(*(due_in(tier_id, cutoff) for tier_id, cutoff
                           in _cutoffs(kind, today, policies).items()), key=lambda c: c[0])
    chosen = list(itertools.islice(merged, (page - 1) * size, page * size))
    if not chosen:
        return total, []
    # The page's particulars and each one's last service, written as SQL text as well:
    # the query builder took longer to write fifty ids than the database to read them.
    ids = [c[1] for c in chosen]
    marks = param_marks(len(ids))
    details = {row[0]: row for row in db.execute_sql(
        "SELECT c.id, c.code, c.name, b.name, m.display_name FROM customer c "  # noqa: S608
        'JOIN branch b ON b.id = c.branch_id LEFT JOIN "user" m ON m.id = c.account_manager_id '
        f"WHERE c.id IN ({marks})", ids)}
    activity_kinds = SERVICE_KINDS[kind][3]
    # Sorted here: an ORDER BY makes SQLite walk the (kind, date) index over every
    # activity of the kind instead of the fifty customers' own. The last one wins.
    found = {customer_id: rest for customer_id, *rest in sorted(db.execute_sql(
        "SELECT customer_id, occurred_on, id, kind, notes FROM activity "  # noqa: S608
        f"WHERE customer_id IN ({marks}) "
        f"AND kind IN ({param_marks(len(activity_kinds))})",
        [*ids, *activity_kinds]))}
    latest = {customer_id: LastActivity(activity_id, activity_kind, _date(occurred_on), notes)
              for customer_id, (occurred_on, activity_id, activity_kind, notes) in found.items()}
    rows = []
    for _due, customer_id, tier_id, last_on in chosen:
        _id, code, name, branch_name, manager_name = details[customer_id]
        never = last_on <= NEVER
        rows.append(OverdueRow(
            customer_id, code, name, branch_name, manager_name, tier_id,
            None if never else last_on, latest.get(customer_id),
            None if never else (today - last_on).days - intervals[tier_id]))
    return total, rows


# A row of overdue_page(), made once: a template reads a named tuple's fields faster
# than a dict's keys (Jinja tries the attribute first).
OverdueRow = namedtuple("OverdueRow", "id code name branch_name manager_name tier last_on last "
                                      "days_overdue")
# Its `last`: a peewee Activity took eight times as long to make, fifty times a page.
LastActivity = namedtuple("LastActivity", "id kind occurred_on notes")


def _date(value):
    """A date read by SQL text: SQLite hands dates back as text."""
    return datetime.date.fromisoformat(value) if isinstance(value, str) else value


def _scope_sql(user, branch_id=None, manager_id=None):
    """(SQL, params) narrowing service_status as _scoped() does."""
    clauses, params = [], []
    for wanted, value in ((user.is_branch_scoped, user.branch_id), (branch_id, branch_id)):
        if wanted:
            clauses.append("branch_id = {p}")
            params.append(value)
    if manager_id:
        clauses.append("account_manager_id = {p}")
        params.append(manager_id)
    return "".join(f" AND {c}" for c in clauses), params


def overdue_counts(user, today=None, policies=None, group_by=None, branch_id=None,
                   manager_id=None, kinds=tuple(SERVICE_KINDS)):
    """{kind: count} of the customers visible to `user` overdue for each kind. With
    `group_by` ("branch" or "account_manager") {group value: {kind: count}}.

    One UNION ALL statement: a count per kind and tier, each over one (tier, last date)
    index range; per branch, a count per branch and tier over the (branch, tier, last
    date) index. Written as SQL text: it runs on every dashboard, and building it
    through the query builder cost more than running it."""
    today = today or datetime.date.today()
    policies = current_policies(today) if policies is None else policies
    scope, scope_params = _scope_sql(user, branch_id, manager_id)
    key = {"branch": "branch_id", "account_manager": "account_manager_id"}.get(group_by)
    parts, params = [], []
    for kind in kinds:  # only constants are written into the text; values are parameters
        column = SERVICE_KINDS[kind][2]
        cutoffs = _cutoffs(kind, today, policies)
        if key == "branch_id" and cutoffs:
            # Per branch, a count of one (branch, tier, date) index range for each tier:
            # SQLite neither groups nor sorts, and the statement stays short to prepare
            # (every request's connection prepares it anew).
            pairs = ", ".join(["({p}, {p})"] * len(cutoffs))
            parts.append(f"SELECT '{kind}', b.id, (SELECT COUNT(*) FROM service_status "  # noqa: S608
                         f"WHERE branch_id = b.id AND tier_id = c.column1 "
                         f"AND {column} < c.column2{scope}) "
                         f"FROM branch b, (VALUES {pairs}) AS c")
            params += scope_params
            # PostgreSQL types a VALUES column by its values: dates there, since text
            # does not compare with a date column (elsewhere the column types the text).
            for tier_id, cutoff in cutoffs.items():
                params += [tier_id, cutoff.isoformat() if is_sqlite() else cutoff]
            continue
        for tier_id, cutoff in cutoffs.items():
            parts.append(f"SELECT '{kind}', {key or 'NULL'}, COUNT(*) FROM service_status "  # noqa: S608
                         f"WHERE tier_id = {{p}} AND {column} < {{p}}{scope}"
                         + (f" GROUP BY {key}" if key else ""))
            params += [tier_id, cutoff.isoformat(), *scope_params]
    totals = {} if group_by else dict.fromkeys(SERVICE_KINDS, 0)
    if not parts:
        return totals
    sql = " UNION ALL ".join(parts).replace("{p}", param_mark())
    for kind, group, count in db.execute_sql(sql, params).fetchall():
        if group_by:
            if count:  # a branch's tier with nobody overdue: no group of its own
                totals.setdefault(group, dict.fromkeys(SERVICE_KINDS, 0))[kind] += count
        else:
            totals[kind] += count
    return totals


def tier_counts(user, today=None, tier_id=None):
    """{tier id: (customers holding it, how many of them are overdue for anything)}
    among the customers visible to `user` (of one tier with `tier_id`).

    One pass over the (tier, last contact, branch, manager, last visit, last analysis)
    index, which covers it: no table row is read."""
    today = today or datetime.date.today()
    policies = current_policies(today)
    cutoffs = {kind: _cutoffs(kind, today, policies) for kind in SERVICE_KINDS}
    cases, params = [], []
    for tier in {t for cut in cutoffs.values() for t in cut}:
        late = [(SERVICE_KINDS[kind][2], cut[tier]) for kind, cut in cutoffs.items()
                if tier in cut]
        cases.append("WHEN {p} THEN CASE WHEN "
                     + " OR ".join(f"{column} < {{p}}" for column, _cut in late)
                     + " THEN 1 ELSE 0 END")
        params += [tier, *(cut.isoformat() for _column, cut in late)]
    late_sql = f"CASE tier_id {' '.join(cases)} ELSE 0 END" if cases else "0"
    scope, scope_params = _scope_sql(user)
    where = "tier_id = {p}" if tier_id else "tier_id IS NOT NULL"
    sql = (f"SELECT tier_id, COUNT(*), SUM({late_sql}) FROM service_status "  # noqa: S608
           f"WHERE {where}{scope} GROUP BY tier_id")  # constants only; values are params
    params += ([tier_id] if tier_id else []) + scope_params
    rows = db.execute_sql(sql.replace("{p}", param_mark()), params).fetchall()
    return {tier: (count, late or 0) for tier, count, late in rows}


def due_soon(user, today=None, days=7):
    """The account manager's own customers whose contact, visit or sales analysis falls
    due within `days` (not overdue yet): [(due date, kind, customer row)] soonest first."""
    from .customers import Customer
    today = today or datetime.date.today()
    policies = current_policies(today)
    found = []
    for kind, (_label, _field, column, _kinds) in SERVICE_KINDS.items():
        last = getattr(ServiceStatus, column)
        intervals = _intervals(kind, policies)
        parts = [(ServiceStatus.tier == tier_id)
                 & (last >= today - datetime.timedelta(days=interval))
                 & (last < today - datetime.timedelta(days=interval - days))
                 for tier_id, interval in intervals.items()]
        if not parts:
            continue
        query = (ServiceStatus.select(Customer.id, Customer.code, Customer.name,
                                      ServiceStatus.tier, last.alias("last_on"))
                 .join(Customer, on=(ServiceStatus.customer == Customer.id))
                 .where(ServiceStatus.account_manager == user.id,
                        functools.reduce(operator.or_, parts)))
        for row in query.dicts():
            due = row["last_on"] + datetime.timedelta(days=intervals[row["tier"]])
            found.append((due, kind, row))
    return sorted(found, key=lambda item: (item[0], item[2]["code"]))
