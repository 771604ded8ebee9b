"""Service compliance: which customers are overdue for the contact, visit or sales
analysis their tier's policy promises, and whose fall due soon. Above tiers.py (the
policies) and customers.py (who holds which tier)."""
import datetime
import functools
import heapq
import itertools
import operator
from collections import namedtuple

from peewee import SQL, DateField, IntegerField, fn

from i18n import lazy_gettext as _l

from .base import BaseModel, as_date, is_sqlite, marks, raw_sql, write_transaction
from .customers import Customer
from .kept_counts import COMPLIANCE, kept
from .notices import notify
from .people import User, scoped_to_branch
from .tiers import Tier, current_policies

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
    # The customer's id: like the mirrors below, a plain integer the triggers keep.
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
           )

    def due_in(tier_id, cutoff):  # (due date, customer id, tier id, last date), in order
        interval = datetime.timedelta(days=intervals[tier_id])
        for customer_id, last_on in raw_sql(
                sql, [tier_id, cutoff.isoformat(), *scope_params, page * size]):
            last_on = as_date(last_on)
            yield (last_on + interval if last_on > NEVER else NEVER), customer_id, tier_id, last_on

    merged = heapq.merge(*(due_in(tier_id, cutoff) for tier_id, cutoff
                           in _cutoffs(kind, today, policies).items()), key=lambda c: c[0])
    chosen = list(itertools.islice(merged, (page - 1) * size, page * size))
    if not chosen:
        return total, []
    # The page's particulars and each one's last service, written as SQL text as well:
    # the query builder took longer to write fifty ids than the database to read them.
    ids = [c[1] for c in chosen]
    id_marks = marks(len(ids))
    details = {row[0]: row for row in raw_sql(
        "SELECT c.id, c.code, c.name, b.name, m.display_name FROM customer c "  # noqa: S608
        'JOIN branch b ON b.id = c.branch_id LEFT JOIN "user" m ON m.id = c.account_manager_id '
        f"WHERE c.id IN ({id_marks})", ids)}
    activity_kinds = SERVICE_KINDS[kind][3]
    # Sorted here: an ORDER BY makes SQLite walk the (kind, date) index over every
    # activity of the kind instead of the fifty customers' own. The last one wins.
    found = {customer_id: rest for customer_id, *rest in sorted(raw_sql(
        "SELECT customer_id, occurred_on, id, kind, notes FROM activity "  # noqa: S608
        f"WHERE customer_id IN ({id_marks}) "
        f"AND kind IN ({marks(len(activity_kinds))})",
        [*ids, *activity_kinds]))}
    latest = {customer_id: LastActivity(activity_id, activity_kind, as_date(occurred_on), notes)
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


def _cutoff_key(kinds, today, policies):
    return [sorted((tier, cutoff.isoformat()) for tier, cutoff
                   in _cutoffs(kind, today, policies).items()) for kind in kinds]


def overdue_counts(user, today=None, policies=None, group_by=None, branch_id=None,
                   manager_id=None, kinds=tuple(SERVICE_KINDS)):
    """{kind: count} of the customers visible to `user` overdue for each kind. With
    `group_by` ("branch" or "account_manager") {group value: {kind: count}}. Kept
    (models/kept_counts.py) while service_status does not change."""
    today = today or datetime.date.today()
    policies = current_policies(today) if policies is None else policies
    scope, scope_params = _scope_sql(user, branch_id, manager_id)

    def count():
        totals = count_overdue(user, today, policies, group_by, branch_id, manager_id, kinds)
        return list(totals.items()) if group_by else [[None, totals]]

    pairs = kept(["overdue", group_by, scope, scope_params, list(kinds),
                   _cutoff_key(kinds, today, policies)], count, COMPLIANCE)
    return dict(pairs) if group_by else pairs[0][1]


def count_overdue(user, today=None, policies=None, group_by=None, branch_id=None,
                  manager_id=None, kinds=tuple(SERVICE_KINDS)):
    """overdue_counts() counted afresh, without its cache.

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
    sql = " UNION ALL ".join(parts)
    for kind, group, count in raw_sql(sql, params).fetchall():
        if group_by:
            if count:  # a branch's tier with nobody overdue: no group of its own
                totals.setdefault(group, dict.fromkeys(SERVICE_KINDS, 0))[kind] += count
        else:
            totals[kind] += count
    return totals


def tier_counts(user, today=None, tier_id=None):
    """{tier id: (customers holding it, how many of them are overdue for anything)}
    among the customers visible to `user` (of one tier with `tier_id`). Kept
    (models/kept_counts.py) while service_status does not change: counting reads every
    customer's index entry, which for the whole company took the tiers page to 5.6×
    the bench's floor at 100,000 customers on SQLite."""
    today = today or datetime.date.today()
    policies = current_policies(today)
    scope, scope_params = _scope_sql(user)
    pairs = kept(["tiers", tier_id, scope, scope_params,
                   _cutoff_key(tuple(SERVICE_KINDS), today, policies)],
                  lambda: list(count_tiers(user, today, tier_id, policies).items()),
                  COMPLIANCE)
    return {tier: tuple(counts) for tier, counts in pairs}


def count_tiers(user, today=None, tier_id=None, policies=None):
    """tier_counts() counted afresh, without its cache: one pass over the (tier, last
    contact, branch, manager, last visit, last analysis) index, which covers it."""
    today = today or datetime.date.today()
    policies = current_policies(today) if policies is None else policies
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
    return {tier: (count, late or 0) for tier, count, late in raw_sql(sql, params)}


def due_soon(user, today=None, days=7):
    """The account manager's own customers whose contact, visit or sales analysis falls
    due within `days` (not overdue yet): [(due date, kind, customer row)] soonest first."""
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


# --- The weekly digest of overdue service ------------------------------------------

def overdue_by_holder(today=None):
    """{(branch id, account manager id): {tier id: {kind: count}}} of every overdue
    customer, company-wide, counted afresh (the weekly digest's figures)."""
    today = today or datetime.date.today()
    policies = current_policies(today)
    found = {}
    for kind in SERVICE_KINDS:
        for tier_id, condition in _overdue_parts(kind, today, policies):
            for branch_id, manager_id, count in (
                    ServiceStatus.select(ServiceStatus.branch, ServiceStatus.account_manager,
                                         fn.COUNT(SQL("*")))
                    .where(condition)
                    .group_by(ServiceStatus.branch, ServiceStatus.account_manager).tuples()):
                tiers = found.setdefault((branch_id, manager_id), {})
                tiers.setdefault(tier_id, dict.fromkeys(SERVICE_KINDS, 0))[kind] += count
    return found


class _DigestLines:
    """A digest's lines, one per tier, printed in the language the notice is rendered
    in (notify() renders a lazy body in the recipient's)."""

    def __init__(self, by_tier):
        self.by_tier = by_tier

    def __str__(self):
        lines = []
        for tier in Tier.in_order():
            counts = self.by_tier.get(tier.id)
            if counts:
                kinds = [str(_l("%(kind)s %(n)s", kind=SERVICE_KINDS[kind][0], n=n))
                         for kind, n in counts.items() if n]
                lines.append(str(_l("- %(tier)s: %(counts)s", tier=tier.display_name,
                                    counts=str(_l(", ")).join(kinds))))
        return "\n".join(lines)


def _added(into, by_tier):
    for tier_id, counts in by_tier.items():
        mine = into.setdefault(tier_id, dict.fromkeys(SERVICE_KINDS, 0))
        for kind, n in counts.items():
            mine[kind] += n


def notify_overdue_digest(today=None):
    """The weekly digest of overdue service commitments: each active branch manager
    hears the branch's overdue customers, each active account manager their own, as
    counts per tier and kind (contact, visit, sales analysis), with a link to the list.
    Nobody with nothing overdue hears anything. Returns the ids of the people told."""
    found = overdue_by_holder(today)
    branches, managers = {}, {}
    for (branch_id, manager_id), by_tier in found.items():
        _added(branches.setdefault(branch_id, {}), by_tier)
        if manager_id:
            _added(managers.setdefault(manager_id, {}), by_tier)
    told = []
    with write_transaction():
        heads = User.with_role("branch_manager").where(User.active == True,  # noqa: E712
                                                        User.branch.in_(list(branches)))
        digests = [(head, branches[head.branch_id], "/compliance") for head in heads]
        digests += [(person, managers[person.id], f"/compliance?manager={person.id}")
                    for person in User.select().where(User.id.in_(list(managers)),
                                                      User.active == True)]  # noqa: E712
        for person, by_tier, link in digests:
            total = sum(sum(counts.values()) for counts in by_tier.values())
            notify("overdue_digest", person,
                   _l("Overdue service this week: %(n)s", n=total),
                   _l("These service commitments of the tiers' policies are overdue, by "
                      "tier (one customer may be overdue for more than one):\n\n%(lines)s",
                      lines=_DigestLines(by_tier)),
                   link, about=("user", person.id))
            told.append(person.id)
    return told
