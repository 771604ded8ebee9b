"""Customers, their contacts, yearly figures, activities and tier history."""
import datetime
import re
import unicodedata
from collections import namedtuple

from peewee import (
    JOIN,
    SQL,
    BlobField,
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    DecimalField,
    ForeignKeyField,
    IntegerField,
    Table,
    TextField,
    chunked,
    fn,
)
from pypinyin import Style, lazy_pinyin

from i18n import lazy_gettext as _l

from .audit import audit
from .base import (
    BaseModel,
    DomainError,
    db,
    is_sqlite,
    prepared,
    raw_sql,
    utcnow,
    write_transaction,
)
from .people import Branch, User, scope_shape, scoped_to_branch
from .tiers import Tier

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")

# A 30,000-row file is read in well under a minute; a batch still waiting after this
# was never picked up (no background worker) or lost its worker.
IMPORT_STALLED_AFTER = datetime.timedelta(minutes=10)

KINDS = {"existing": _l("Existing customer"), "prospect": _l("Prospect")}
NATURES = {
    "government": _l("Government agency"),
    "state_owned": _l("State-owned enterprise"),
    "joint_stock": _l("Joint-stock company"),
    "private": _l("Private enterprise"),
    "foreign": _l("Foreign-invested enterprise"),
    "individual": _l("Individual"),
}
INDUSTRIES = {
    "manufacturing": _l("Manufacturing"),
    "construction": _l("Construction"),
    "energy": _l("Energy"),
    "transport": _l("Transport and logistics"),
    "retail": _l("Wholesale and retail"),
    "finance": _l("Finance"),
    "it": _l("Information technology"),
    "healthcare": _l("Healthcare"),
    "education": _l("Education"),
    "agriculture": _l("Agriculture"),
    "real_estate": _l("Real estate"),
    "public": _l("Public administration"),
}


def pinyin_initials(name):
    """Lower-case pinyin initials of a name: 上海浦江 → "shpj". Other
    characters (latin letters, digits) are kept as they are."""
    letters = lazy_pinyin(name or "", style=Style.FIRST_LETTER, errors=lambda s: list(s))
    return "".join(letters).lower().replace(" ", "")


class Customer(BaseModel):
    code = CharField(max_length=32, unique=True)
    name = CharField(max_length=200, index=True)
    # Pinyin initials of the name ("shpj" for 上海浦江…), for search.
    name_initials = CharField(max_length=200, default="", index=True)
    kind = CharField(max_length=16, default="existing")
    nature = CharField(max_length=32, default="private")
    industry = CharField(max_length=32, default="manufacturing")
    region = CharField(max_length=100, default="")
    branch = ForeignKeyField(Branch, backref="customers", on_delete="RESTRICT")
    account_manager = ForeignKeyField(User, null=True, backref="customers",
                                      on_delete="SET NULL")
    tier = ForeignKeyField(Tier, null=True, backref="customers", on_delete="RESTRICT")
    provisional = BooleanField(default=False)
    cooperation_since = DateField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    # Where the portfolio places the customer: its latest year with both a share of
    # wallet and an upcoming volume, and those two figures (None: never both known).
    # Kept by refresh_placements() whenever yearly figures are written, so that the
    # portfolio counts 100,000 customers in SQL without reading their years.
    placed_year = IntegerField(null=True)
    placed_share = DecimalField(max_digits=5, decimal_places=2, null=True)
    placed_volume = DecimalField(max_digits=16, decimal_places=2, null=True)

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.name_initials = pinyin_initials(self.name)
        self.updated_at = utcnow()
        return super().save(*args, **kwargs)

    @classmethod
    def visible_to(cls, user):
        """Customers the user may see: a branch-scoped user sees only the branch."""
        return scoped_to_branch(cls.select(), cls.branch, user)


class CustomerYear(BaseModel):
    """One year's figures of one customer. Amounts in 元."""
    customer = ForeignKeyField(Customer, backref="years", on_delete="CASCADE")
    year = IntegerField()
    sales = DecimalField(max_digits=16, decimal_places=2, default=0)
    profit = DecimalField(max_digits=16, decimal_places=2, default=0)
    # Share of receivables collected, 0–100 (%).
    collection_rate = DecimalField(max_digits=5, decimal_places=2, default=0)
    credit_days = IntegerField(default=0)
    # The portfolio (models/portfolio.py): our share of what the customer buys of the
    # product, 0–100 (%), and what it is about to buy in the coming period (元). None:
    # nobody has entered it.
    share_of_wallet = DecimalField(max_digits=5, decimal_places=2, null=True)
    upcoming_volume = DecimalField(max_digits=16, decimal_places=2, null=True)

    class Meta:
        indexes = ((("customer", "year"), True),)


def refresh_placements(customer_ids=None):
    """Copy each customer's latest year with both a share of wallet and an upcoming
    volume onto the customer (placed_year, placed_share, placed_volume), for the
    customers `customer_ids` (None: all). Called in the transaction that writes the
    yearly figures."""
    Year = CustomerYear.alias()
    both = (Year.customer == Customer.id) & Year.share_of_wallet.is_null(False) \
        & Year.upcoming_volume.is_null(False)
    chunks = [None] if customer_ids is None else list(chunked(sorted(set(customer_ids)), 500))
    for chunk in chunks:
        which = True if chunk is None else Customer.id.in_(chunk)
        Customer.update(placed_year=Year.select(fn.MAX(Year.year)).where(both)).where(
            which).execute()
        at_placed = (Year.customer == Customer.id) & (Year.year == Customer.placed_year)
        Customer.update(
            placed_share=Year.select(Year.share_of_wallet).where(at_placed),
            placed_volume=Year.select(Year.upcoming_volume).where(at_placed),
        ).where(which).execute()
# The value classes (客户价值分类) a customer may hold, several at once; the rules that
# give them are models/value_classes.py's, which keeps this table.
VALUE_CLASSES = {
    "most_valuable": _l("Most valuable"),
    "most_growth": _l("Most growth"),
    "negative_value": _l("Negative value"),
}
# The same, short, for the badges of the customer list (the full name is their title).
VALUE_CLASSES_SHORT = {
    "most_valuable": _l("Valuable"),
    "most_growth": _l("Growth"),
    "negative_value": _l("Negative"),
}


class CustomerValueClass(BaseModel):
    """A value class a customer holds under the rules in force, as last computed (when
    the rules were saved or the yearly figures imported): stored, so that the customer
    list filters and shows them without ranking the whole book on every page."""
    customer = ForeignKeyField(Customer, backref="value_classes", on_delete="CASCADE")
    value_class = CharField(max_length=16)

    class Meta:
        indexes = ((("customer", "value_class"), True), (("value_class", "customer"), False))


def value_classes_of(customer_ids):
    """{customer id: [value class, in VALUE_CLASSES order]} of the customers that hold
    any; one query."""
    found = {}
    if not customer_ids:
        return found
    rows = (CustomerValueClass.select(CustomerValueClass.customer, CustomerValueClass.value_class)
            .where(CustomerValueClass.customer.in_(list(customer_ids))).tuples())
    for customer_id, value_class in rows:
        found.setdefault(customer_id, []).append(value_class)
    order = list(VALUE_CLASSES)
    return {id_: sorted(classes, key=order.index) for id_, classes in found.items()}


class Contact(BaseModel):
    """A person at the customer the account manager deals with."""
    customer = ForeignKeyField(Customer, backref="contacts", on_delete="CASCADE")
    name = CharField(max_length=50)
    title = CharField(max_length=50, default="")
    phone = CharField(max_length=50, default="")
    email = CharField(max_length=100, default="")
    created_at = DateTimeField(default=utcnow)

    def audit_dict(self):
        return {"name": self.name, "title": self.title, "phone": self.phone,
                "email": self.email}


ACTIVITY_KINDS = {
    "call": _l("Phone call"),
    "visit": _l("Visit"),
    "email": _l("E-mail"),
    "holiday_greeting": _l("Holiday greeting"),
    "sales_analysis": _l("Sales analysis"),
    "complaint": _l("Complaint"),
}


class Activity(BaseModel):
    """One logged contact with a customer (客户联系记录)."""
    customer = ForeignKeyField(Customer, backref="activities", on_delete="CASCADE")
    kind = CharField(max_length=32)
    occurred_on = DateField()
    user = ForeignKeyField(User, null=True, backref="activities", on_delete="SET NULL")
    notes = TextField(default="")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("customer", "occurred_on"), False), (("kind", "occurred_on"), False))

    @property
    def kind_label(self):
        return ACTIVITY_KINDS.get(self.kind, self.kind)

    def audit_dict(self):
        return {"customer": self.customer_id, "kind": self.kind,
                "occurred_on": self.occurred_on, "notes": self.notes}


TIER_SOURCES = {
    "initial": _l("Initial grading"),
    "import": _l("Import"),
    "cycle": _l("Grading cycle"),
    "approval": _l("Approved tier change"),
}


class TierHistory(BaseModel):
    """A tier the customer held from `effective_on`, and what set it."""
    customer = ForeignKeyField(Customer, backref="tier_history", on_delete="CASCADE")
    tier = ForeignKeyField(Tier, on_delete="RESTRICT")
    effective_on = DateField()
    source = CharField(max_length=16, default="initial")
    # What set it, in words: a cycle's name or a request's number.
    reference = CharField(max_length=200, default="")
    created_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("customer", "effective_on"), False),)

    @property
    def source_label(self):
        return TIER_SOURCES.get(self.source, self.source)


OWNERSHIP_SOURCES = {
    "form": _l("Customer form"),
    "import": _l("Import"),
    "reassignment": _l("Bulk reassignment"),
}


class OwnershipChange(BaseModel):
    """The customer passed from one account manager to another (None: nobody) at
    `changed_at`: who held it when. Written by every way of changing the manager."""
    customer = ForeignKeyField(Customer, backref="ownership_changes", on_delete="CASCADE")
    from_manager = ForeignKeyField(User, null=True, on_delete="SET NULL",
                                   backref="customers_handed_over")
    to_manager = ForeignKeyField(User, null=True, on_delete="SET NULL",
                                 backref="customers_taken_over")
    changed_at = DateTimeField(default=utcnow)
    changed_by = ForeignKeyField(User, null=True, on_delete="SET NULL",
                                 backref="ownership_changes_made")
    source = CharField(max_length=16)
    # The audit event of a bulk reassignment, which names all its customers.
    reference = CharField(max_length=64, default="")

    class Meta:
        indexes = ((("customer", "changed_at"), False),)

    @property
    def source_label(self):
        return OWNERSHIP_SOURCES.get(self.source, self.source)


def record_ownership(changes, user, source, now=None, reference=""):
    """Write one OwnershipChange per (customer id, from manager id, to manager id) whose
    managers differ, in one statement per chunk."""
    now = now or utcnow()
    rows = [{"customer": customer_id, "from_manager": old, "to_manager": new,
             "changed_at": now, "changed_by": getattr(user, "id", user), "source": source,
             "reference": reference}
            for customer_id, old, new in changes if old != new]
    for chunk in chunked(rows, 500):
        OwnershipChange.insert_many(chunk).execute()


def ownership_history(customer):
    """The customer's account managers, newest first: [(manager or None, since, until or
    None, the change that gave it)]. Before the first recorded change, the customer was
    held by that change's previous manager since it was created.

    The people are read apart, and only when there is a change: most customers have
    none, and the one query joining the user three times took 1.2 ms to find that out
    (SQLite, 100,000 customers), a tenth of the customer's page."""
    changes = list(OwnershipChange.select().where(OwnershipChange.customer == customer.id)
                   .order_by(OwnershipChange.changed_at, OwnershipChange.id))
    if not changes:
        return []
    named = {c.from_manager_id for c in changes} | {c.to_manager_id for c in changes} \
        | {c.changed_by_id for c in changes}
    people = {user.id: user for user in User.select().where(User.id.in_(named - {None}))}
    for change in changes:  # the related users set from those read, not one query each
        change.from_manager = people.get(change.from_manager_id)
        change.to_manager = people.get(change.to_manager_id)
        change.changed_by = people.get(change.changed_by_id)
    periods = []
    if changes[0].from_manager_id is not None:
        periods.append((changes[0].from_manager, customer.created_at, changes[0].changed_at,
                        None))
    for index, change in enumerate(changes):
        until = changes[index + 1].changed_at if index + 1 < len(changes) else None
        periods.append((change.to_manager, change.changed_at, until, change))
    return periods[::-1]


class ImportBatch(BaseModel):
    """An uploaded customer file, from upload through its preview to confirmation.

    Held in the database, not on disk, so any worker on any host can read,
    and confirm, what another one received. Status: queued and reading while
    the background worker reads the file (`upload`, `progress` in percent);
    then preview (the `payload`), or failed (the `error`, for the user);
    finally applied or discarded.
    """
    user = ForeignKeyField(User, on_delete="CASCADE")
    filename = CharField(max_length=255)
    # JSON: the parsed rows with their actions and errors.
    payload = TextField(default="")
    status = CharField(max_length=16, default="preview")
    created_at = DateTimeField(default=utcnow)
    applied_at = DateTimeField(null=True)
    upload = BlobField(null=True)  # the file, until it has been read
    progress = IntegerField(default=0)
    error = TextField(default="")

    @property
    def stalled(self):
        """Still waiting long after any file is read: the worker is not running."""
        return self.status in ("queued", "reading") and \
            self.created_at < utcnow() - IMPORT_STALLED_AFTER

    @property
    def reading(self):
        return self.status in ("queued", "reading") and not self.stalled


# --- Finding customers -------------------------------------------------------

SORTS = {
    "code": Customer.code,
    "name": Customer.name_initials,
    "branch": Branch.code,
    "tier": Tier.rank,
    "kind": Customer.kind,
    "updated": Customer.updated_at,
}


def normalise_query(text):
    """What the user typed, as search sees it: NFKC (full-width → half-width), without
    control characters (SQLite ends a pattern at a NUL: `%00ab` matched everyone),
    trimmed, lower-case."""
    text = unicodedata.normalize("NFKC", text or "")
    return CONTROL_CHARACTERS.sub("", text).strip().lower()


# --- The customer's file: what the detail page reads, by customer id ---------

# These five stay prepared() statements (issue 19, part 3): built by the query builder on
# every request, the detail page missed its target on SQLite at 100,000 customers (bench,
# p95 3.2x the floor, p50 10.1 ms, against 2.9x and 8.9 ms prepared; two runs each).

@prepared
def particulars(scoped, *, customer, branch):
    """The customer, if a user of this scope (`branch` theirs) may see it, with its
    branch, tier and account manager."""
    manager = User.alias()
    return (Customer.visible_to(scope_shape(scoped, branch))
            .select(Customer, Branch.id, Branch.name, Tier, manager.id, manager.display_name)
            .join(Branch, on=(Customer.branch == Branch.id), attr="branch")
            .switch(Customer).join(Tier, JOIN.LEFT_OUTER, on=(Customer.tier == Tier.id),
                                   attr="tier")
            .switch(Customer).join(manager, JOIN.LEFT_OUTER,
                                   on=(Customer.account_manager == manager.id),
                                   attr="account_manager")
            .where(Customer.id == customer))


@prepared
def contacts_of(*, customer):
    return Contact.select().where(Contact.customer == customer).order_by(Contact.id)


@prepared
def years_of(*, customer):
    return (CustomerYear.select().where(CustomerYear.customer == customer)
            .order_by(CustomerYear.year))


@prepared
def tier_history_of(*, customer):
    """Newest first, with each tier."""
    return (TierHistory.select(TierHistory, Tier).join(Tier)
            .where(TierHistory.customer == customer)
            .order_by(TierHistory.effective_on.desc(), TierHistory.id.desc()))


@prepared
def activities_of(*, customer, limit):
    """The latest `limit` activities, with who logged them."""
    return (Activity.select(Activity, User.id, User.display_name)
            .join(User, JOIN.LEFT_OUTER, on=(Activity.user == User.id))
            .where(Activity.customer == customer)
            .order_by(Activity.occurred_on.desc(), Activity.id.desc()).limit(limit))


def search_condition(q):
    """The condition "the code starts with, the name contains, or the pinyin initials
    start with" what the user typed (normalised), or None for an empty search."""
    q = normalise_query(q)
    if not q:
        return None
    return (Customer.code.startswith(q) | Customer.name.contains(q)
            | Customer.name_initials.startswith(q))


# SQLite: a term held by at most this many customers is looked up in an index of what
# customers hold (migrations 12 and 18), and the search reads only those customers; more,
# and reading the book in order finds a page of them sooner.
FEW_HOLDERS = 500
# SQLite: a term of three characters or more held by more than FEW_HOLDERS but at most
# this many is still found from the trigram index, read again as a subquery: reading
# the book in order for a page of matches held by one customer in a hundred ("bjh" at
# 100,000 customers) walks a third of it, three times as long.
SOME_HOLDERS = 5000

# The ids of the customers that hold a term, `{p}` its parameter: a one- or two-character
# term among each customer's pieces (migration 18), a longer one in SQLite's trigram table
# (migration 12; the parameter is an FTS5 phrase).
HOLDERS_OF_PIECE = "SELECT customer_id FROM customer_search_piece WHERE piece = {p}"
HOLDERS_OF_PHRASE = "SELECT rowid FROM customer_search_fts WHERE customer_search_fts MATCH {p}"

# Every one- and two-character piece of each customer's name, and the first one and two
# characters of its code and initials, lower-case (migration 18; kept by triggers).
SearchPiece = Table("customer_search_piece", ("piece", "customer_id"))


def _holders_sql(q):
    """(SQL, parameter) of the ids of the customers holding `q` (normalised)."""
    if len(q) <= 2:
        return HOLDERS_OF_PIECE, q
    return HOLDERS_OF_PHRASE, '"' + q.replace('"', '""') + '"'  # all literal


def few_holding(q):
    """SQLite: the ids of the customers whose code, name or initials hold `q`
    (normalised), when at most FEW_HOLDERS do; else None."""
    sql, term = _holders_sql(q)
    ids = [row[0] for row in raw_sql(f"{sql} LIMIT {{p}}", (term, FEW_HOLDERS + 1))]
    return ids if len(ids) <= FEW_HOLDERS else None


def held_by_few(q):
    """SQLite: a condition on Customer.id keeping only the customers that hold `q`
    (normalised), read from the index of what customers hold when that is the shorter
    way: the few holders as a list, so that the search starts from them, or, for a term
    of three characters or more, up to SOME_HOLDERS as a subquery; else None (the search
    reads the book in order).

    A superset of search_condition()'s matches, which still applies: it only spares the
    search a pass over every customer for a term that few or none hold."""
    few = few_holding(q)
    if few is not None:
        return Customer.id.in_(few)
    if len(q) >= 3:
        sql, term = _holders_sql(q)
        # Only constants are written into the text; the term is a parameter.
        held = raw_sql(f"SELECT COUNT(*) FROM ({sql} LIMIT {{p}})",  # noqa: S608
                       (term, SOME_HOLDERS + 1)).fetchone()[0]
        if held <= SOME_HOLDERS:
            return Customer.id.in_(SQL("(" + sql.replace("{p}", db.param) + ")", (term,)))
    return None


def matching(q):
    """search_condition(q) for `q` (normalised, not empty), in the form each database
    finds fastest.

    PostgreSQL: whoever matches holds the term's first two characters as a piece, and for
    a term of one or two characters holding it is matching (the pieces are exactly those
    search_condition() compares). The planner knows from the pieces' statistics how many
    hold one, so it starts from the few holders or walks the book in order for the many,
    at any size of the book. With the ILIKEs alone it could not tell how many match a
    Chinese name, and read the whole book (20,000 customers) for a term nobody holds."""
    matches = search_condition(q)
    if is_sqlite():
        held = held_by_few(q)
        return matches if held is None else matches & held
    holders = Customer.id.in_(SearchPiece.select(SearchPiece.customer_id)
                              .where(SearchPiece.piece == q[:2]))
    return holders if len(q) <= 2 else holders & matches


def find_customers(user, q="", branch_id=None, tier_id=None, kind=None, nature=None,
                   industry=None, manager_id=None, provisional=None, value_class=None):
    """Customers visible to `user` that match the filters.

    `q` matches the code, any part of the name, or the pinyin initials
    ("shpj" finds 上海浦江…). `tier_id=0` means "no tier yet". `value_class` is one
    of VALUE_CLASSES, as stored.
    """
    query = Customer.visible_to(user)
    q = normalise_query(q)
    if q:
        query = query.where(matching(q))
    if branch_id:
        query = query.where(Customer.branch == branch_id)
    if tier_id == 0:
        query = query.where(Customer.tier.is_null())
    elif tier_id:
        query = query.where(Customer.tier == tier_id)
    for field, value in ((Customer.kind, kind), (Customer.nature, nature),
                         (Customer.industry, industry), (Customer.account_manager, manager_id)):
        if value:
            query = query.where(field == value)
    if provisional is not None:
        query = query.where(Customer.provisional == provisional)
    if value_class in VALUE_CLASSES:
        # A join rather than IN (…): at 100,000 customers it counts and pages a class of
        # 20,000–40,000 in some 40 % less time on SQLite, a little less on PostgreSQL.
        # A customer holds a class once (the unique index), so no row comes twice.
        query = (query.join(CustomerValueClass, on=(
            (CustomerValueClass.customer == Customer.id)
            & (CustomerValueClass.value_class == value_class))).switch(Customer))
    return query


def count_found(query):
    """How many customers a Customer.visible_to() or find_customers() query finds.

    COUNT(*) of the query itself, not peewee's count(), which wraps the query in a
    subquery: SQLite counts a whole table from its b-tree's pages only when asked
    COUNT(*) directly, and stepped through every row of the book (100,000 of them on
    an administrator's list and dashboard) for the wrapped count."""
    return query.select(fn.COUNT(SQL("*"))).scalar()


# A row of customer_page(). One class made once: peewee's namedtuples() makes a new
# class for every query it runs.
class CustomerRow(namedtuple("CustomerRow", "id code name kind nature industry tier "
                                            "provisional branch_name manager_name held")):
    __slots__ = ()

    @property
    def value_classes(self):
        """The value classes the customer holds, in VALUE_CLASSES order."""
        held = self.held.split(",") if self.held else ()
        return [value_class for value_class in VALUE_CLASSES if value_class in held]


def held_classes():
    """The value classes the outer query's customer holds, comma-separated (NULL: none),
    as a correlated subquery: read with the page's own rows, not in a query of its own."""
    Held = CustomerValueClass.alias()
    joined = fn.GROUP_CONCAT(Held.value_class) if is_sqlite() \
        else fn.string_agg(Held.value_class, ",")
    return Held.select(joined).where(Held.customer == Customer.id)


def customer_page(query, sort="code", descending=False):
    """The rows of a find_customers() query, sorted, as light named tuples with
    the branch's and account manager's names and the value classes held: one query
    for a whole page. (Counting uses the query itself, without the joins.) `tier` is
    the tier's id; look it up in Tier.by_id()."""
    Manager = User.alias()
    column = SORTS.get(sort, Customer.code)
    order = column.desc(nulls="LAST") if descending else column.asc(nulls="LAST")
    return (query.select(Customer.id, Customer.code, Customer.name, Customer.kind,
                         Customer.nature, Customer.industry, Customer.tier,
                         Customer.provisional, Branch.name.alias("branch_name"),
                         Manager.display_name.alias("manager_name"),
                         held_classes().alias("held"))
            .join(Branch, on=(Customer.branch == Branch.id))
            .switch(Customer).join(Tier, JOIN.LEFT_OUTER, on=(Customer.tier == Tier.id))
            .switch(Customer).join(Manager, JOIN.LEFT_OUTER,
                                   on=(Customer.account_manager == Manager.id))
            .order_by(order, Customer.id)
            .objects(CustomerRow))


def first_ids(query):
    """The ids a search's query selects (no row objects).

    PostgreSQL plans it without parallel workers. With them, it walked the book in
    display order until it had the matches, slowly wherever they lie late in that
    order (the codes "C9…" at the end of the book); alone, it also weighs hashing the
    term's holders against one read of the code index (index-only, migration 27),
    which takes the same short time wherever they lie. The setting goes in the same
    round trip as the query: one message is one transaction, which SET LOCAL does not
    outlive."""
    if is_sqlite():
        return [row[0] for row in db.execute(query).fetchall()]
    sql, params = query.sql()
    cursor = db.execute_sql("SET LOCAL max_parallel_workers_per_gather = 0; " + sql, params)
    return [row[0] for row in cursor.fetchall()]


def search_page(query, sort, descending, page, size, cap):
    """(total, rows, capped) of page `page` of a search-as-you-type query, or None when
    the page lies beyond `cap` matches.

    A term that many customers hold is found by reading the book in display order (no
    ordinary index finds a name that matches anywhere; held_by_few() and the trigram
    index serve the terms few hold), so counting its matches and then finding a page
    would read it twice. This takes the ids of the first `cap` + 1 matches in display
    order in one pass, which stops early for a common term; past `cap` the total reads
    "more than `cap`" (capped True)."""
    if page * size > cap:
        return None
    column = SORTS.get(sort, Customer.code)
    order = column.desc(nulls="LAST") if descending else column.asc(nulls="LAST")
    if column.model is not Customer:  # sorting by the tier's rank or the branch's name
        query = query.join(column.model, JOIN.LEFT_OUTER)
    # Codes are unique: ordered by code alone, the pass reads the covering search index
    # (a tie-break on id sends SQLite to the table, row by row).
    keys = (order,) if column is Customer.code else (order, Customer.id)
    ids = first_ids(query.select(Customer.id).order_by(*keys).limit(cap + 1))
    shown = ids[(page - 1) * size:page * size]
    rows = list(customer_page(Customer.select().where(Customer.id.in_(shown)), sort,
                              descending)) if shown else []
    return min(len(ids), cap), rows, len(ids) > cap


# --- Changing customers ------------------------------------------------------

EDITABLE_FIELDS = ("code", "name", "kind", "nature", "industry", "region", "branch",
                   "account_manager", "provisional", "cooperation_since")


def customer_audit_dict(customer):
    return {
        "code": customer.code, "name": customer.name, "kind": customer.kind,
        "nature": customer.nature, "industry": customer.industry, "region": customer.region,
        "branch": customer.branch_id, "account_manager": customer.account_manager_id,
        "provisional": customer.provisional, "cooperation_since": customer.cooperation_since,
    }


# What a branch-scoped user is told about a code some customer holds: the same words
# whichever branch holds it, so that no one learns which codes other branches use.
# (The customer form gives a malformed code the same words, for the same users.)
CODE_UNAVAILABLE = _l("This customer code cannot be used; please choose another (letters, "
                      "digits, '.', '-' and '_').")


def code_refusal(code, customer=None, branch_scoped=False):
    """Why `code` cannot be the code of `customer` (None: a new customer), or None when it
    is free. A branch-scoped user reads CODE_UNAVAILABLE: not that the code is taken, nor
    whose it is."""
    clash = Customer.select().where(Customer.code == code)
    if customer is not None:
        clash = clash.where(Customer.id != customer.id)
    if not clash.exists():
        return None
    if branch_scoped:
        return CODE_UNAVAILABLE
    return _l("The customer code %(code)s is taken.", code=code)


def save_customer(customer, user, **values):
    """Create (`customer` is None) or update a customer from `values`, audited.

    Only EDITABLE_FIELDS are taken: a tier, an id or anything else passed in
    is ignored. Raises DomainError when the code is taken (see code_refusal),
    the branch lies outside the user's scope, or the account manager is not of
    that branch.
    """
    values = {k: v for k, v in values.items() if k in EDITABLE_FIELDS}
    if "code" in values:  # as the import reads codes: Ｃ００１ is C001
        values["code"] = unicodedata.normalize("NFKC", values["code"]).strip()
    with write_transaction():
        branch = values.get("branch", customer.branch if customer else None)
        branch_id = getattr(branch, "id", branch)
        if branch_id is None or not Branch.select().where(Branch.id == branch_id).exists():
            raise DomainError(_l("Choose a branch."))
        if user.is_branch_scoped and branch_id != user.branch_id:
            raise DomainError(_l("You can only keep customers of your own branch."))
        manager = values.get("account_manager")
        manager_id = getattr(manager, "id", manager)
        if manager_id and not User.select().where(User.id == manager_id,
                                                  User.branch == branch_id).exists():
            raise DomainError(_l("The account manager must work in the customer's branch."))
        refusal = code_refusal(values.get("code", customer.code if customer else ""),
                               customer, user.is_branch_scoped)
        if refusal:
            raise DomainError(refusal)
        creating = customer is None
        before = None if creating else customer_audit_dict(customer)
        customer = customer or Customer()
        for key, value in values.items():
            setattr(customer, key, value)
        customer.save()
        after = customer_audit_dict(customer)
        if not creating and after == before:
            return customer
        record_ownership([(customer.id, before["account_manager"] if before else None,
                           after["account_manager"])], user, "form")
        audit("customer_created" if creating else "customer_updated", customer,
              before=before, after=after)
    return customer


def log_activity(customer, user, kind, occurred_on, notes=""):
    """Record a contact with the customer, audited. Raises DomainError for an
    unknown kind or a date in the future."""
    if kind not in ACTIVITY_KINDS:
        raise DomainError(_l("Unknown kind of contact."))
    if occurred_on > datetime.date.today():
        raise DomainError(_l("A contact cannot be logged for a future date."))
    with db.atomic():
        activity = Activity.create(customer=customer, user=user, kind=kind,
                                   occurred_on=occurred_on, notes=notes or "")
        audit("activity_logged", activity, after=activity.audit_dict())
    return activity


def add_contact(customer, **values):
    """Add a contact person to the customer, audited."""
    with db.atomic():
        contact = Contact.create(customer=customer, **values)
        audit("contact_added", contact, after={"customer": customer.id,
                                               **contact.audit_dict()})
    return contact


def remove_contact(contact):
    """Remove a contact person, audited with what was removed."""
    with db.atomic():
        audit("contact_removed", contact, before={"customer": contact.customer_id,
                                                  **contact.audit_dict()})
        contact.delete_instance()


def save_portfolio_figures(customer, user, *, year, share_of_wallet, upcoming_volume):
    """Set the customer's share of wallet (%) and upcoming purchase volume (元) for
    `year`, audited; either may be None (not known). A year without figures yet gets a
    row of its own. Raises DomainError for a share outside 0–100 or a negative volume,
    and then saves nothing."""
    # A form reads "nan" as a number that compares with nothing: refused like any other.
    if share_of_wallet is not None and (not share_of_wallet.is_finite()
                                        or not 0 <= share_of_wallet <= 100):
        raise DomainError(_l("The share of wallet is a percentage from 0 to 100."))
    if upcoming_volume is not None and (not upcoming_volume.is_finite() or upcoming_volume < 0):
        raise DomainError(_l("The upcoming purchase volume cannot be negative."))
    with write_transaction():
        row = CustomerYear.get_or_none(CustomerYear.customer == customer.id,
                                       CustomerYear.year == year)
        before = None if row is None else {"share_of_wallet": row.share_of_wallet,
                                           "upcoming_volume": row.upcoming_volume}
        row = row or CustomerYear(customer=customer.id, year=year)
        row.share_of_wallet, row.upcoming_volume = share_of_wallet, upcoming_volume
        row.save()
        refresh_placements([customer.id])
        audit("portfolio_figures_saved", customer, before=before, after={
            "year": year, "share_of_wallet": share_of_wallet,
            "upcoming_volume": upcoming_volume})
    return row
