"""Customer allocation (客户分配): which account manager holds which customer.

Each branch keeps an ordered list of rules. A rule names what a customer must be (a
region, an industry, an enterprise nature, a tier, a value class; any left empty
matches everything) and one account manager or a pool of them. The first rule a
customer matches proposes its manager; from a pool, the member holding the fewest
customers of that customer's tier (then the fewest customers, then by name), so that a
pool fills evenly. Rules name only active people of their own branch.

The rules propose a manager for a new customer (the form and the import) and drive a
bulk reassignment: customers chosen by filter or by the manager who leaves, a preview
per new manager, then one audited change that holds only if nothing moved since the
preview. The workload view shows each manager's book by tier against the branch's
average.
"""
import hashlib
from collections import Counter, defaultdict, namedtuple
from decimal import Decimal

from peewee import CharField, DateTimeField, ForeignKeyField, IntegerField, chunked, fn

from i18n import lazy_gettext as _l

from .audit import audit
from .base import BaseModel, DomainError, is_sqlite, utcnow, write_transaction
from .compliance import overdue_counts
from .customers import (
    INDUSTRIES,
    NATURES,
    VALUE_CLASSES,
    Customer,
    CustomerValueClass,
    record_ownership,
    value_classes_of,
)
from .people import Branch, User, scoped_to_branch
from .tiers import Tier

CRITERIA = ("region", "industry", "nature", "tier", "value_class")
# A manager whose book is this many times the branch's average, or this many times
# below it, is out of balance, unless the viewer sets another ratio.
DEFAULT_IMBALANCE = Decimal("1.5")
# The most customers a preview lists one by one; its counts hold them all.
PREVIEW_ROWS = 50
UNASSIGNED = -1  # the "from manager" of customers nobody holds


class AllocationRule(BaseModel):
    """One rule of a branch's ordered list: what a customer must be, and who gets it."""
    branch = ForeignKeyField(Branch, backref="allocation_rules", on_delete="CASCADE")
    position = IntegerField()
    region = CharField(max_length=100, default="")  # contained in the customer's region
    industry = CharField(max_length=32, default="")
    nature = CharField(max_length=32, default="")
    tier = ForeignKeyField(Tier, null=True, on_delete="CASCADE")
    value_class = CharField(max_length=16, default="")
    created_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("branch", "position"), False),)

    @classmethod
    def visible_to(cls, user):
        """The rules of the branches the user may read."""
        return scoped_to_branch(cls.select(), cls.branch, user)

    def matches(self, customer):
        """Whether `customer` (a Candidate) is what the rule asks for."""
        return ((not self.region or self.region in (customer.region or ""))
                and (not self.industry or self.industry == customer.industry)
                and (not self.nature or self.nature == customer.nature)
                and (self.tier_id is None or self.tier_id == customer.tier_id)
                and (not self.value_class or self.value_class in customer.value_classes))

    def audit_dict(self):
        return {"branch": self.branch_id, "position": self.position, "region": self.region,
                "industry": self.industry, "nature": self.nature, "tier": self.tier_id,
                "value_class": self.value_class,
                "managers": [m.id for m in getattr(self, "managers", [])]}


class AllocationRuleManager(BaseModel):
    """A manager a rule gives customers to; several make a pool."""
    rule = ForeignKeyField(AllocationRule, backref="manager_links", on_delete="CASCADE")
    manager = ForeignKeyField(User, on_delete="CASCADE")

    class Meta:
        indexes = ((("rule", "manager"), True),)


# What a rule or a bulk reassignment reads of a customer.
Candidate = namedtuple("Candidate", "id code name region industry nature tier_id "
                                    "account_manager_id value_classes")


def rules_of(branch_id):
    """The branch's rules in order, each with `managers` (Users, by name): two queries."""
    rules = list(AllocationRule.select().where(AllocationRule.branch == branch_id)
                 .order_by(AllocationRule.position, AllocationRule.id))
    managers = defaultdict(list)
    if rules:
        links = (AllocationRuleManager.select(AllocationRuleManager, User)
                 .join(User).where(AllocationRuleManager.rule.in_([r.id for r in rules]))
                 .order_by(User.display_name))
        for link in links:
            managers[link.rule_id].append(link.manager)
    for rule in rules:
        rule.managers = managers[rule.id]
    return rules


def check_managers(branch_id, manager_ids):
    """The active Users of the branch named by `manager_ids`, by name. Raises DomainError
    for none, an unknown or inactive person, or one of another branch."""
    if not manager_ids:
        raise DomainError(_l("Choose at least one account manager."))
    people = list(User.select().where(User.id.in_(list(manager_ids)))
                  .order_by(User.display_name))
    if len(people) != len(set(manager_ids)):
        raise DomainError(_l("An account manager chosen does not exist."))
    for person in people:
        if person.branch_id != branch_id:
            raise DomainError(_l("%(name)s does not work in this branch.",
                                 name=person.display_name))
        if not person.active:
            raise DomainError(_l("%(name)s is no longer active.", name=person.display_name))
    return people


def _check_criteria(criteria):
    if criteria["industry"] and criteria["industry"] not in INDUSTRIES:
        raise DomainError(_l("Unknown industry."))
    if criteria["nature"] and criteria["nature"] not in NATURES:
        raise DomainError(_l("Unknown enterprise nature."))
    if criteria["value_class"] and criteria["value_class"] not in VALUE_CLASSES:
        raise DomainError(_l("Unknown value class."))
    if criteria["tier"] is not None and not Tier.select().where(
            Tier.id == criteria["tier"]).exists():
        raise DomainError(_l("Unknown tier."))


def save_rule(rule, user, branch_id, manager_ids, **criteria):
    """Create (`rule` None: last in the branch's order) or change a rule, audited.
    Raises DomainError, saving nothing, for managers check_managers() refuses or an
    unknown industry, nature, tier or value class."""
    criteria = {name: criteria.get(name) or ("" if name != "tier" else None)
                for name in CRITERIA}
    criteria["region"] = criteria["region"].strip()
    _check_criteria(criteria)
    with write_transaction():
        managers = check_managers(branch_id, manager_ids)
        before = None
        if rule is None:
            last = (AllocationRule.select(fn.MAX(AllocationRule.position))
                    .where(AllocationRule.branch == branch_id).scalar())
            rule = AllocationRule(branch=branch_id, position=(last or 0) + 1, created_by=user)
        else:
            rule.managers = [link.manager for link in rule.manager_links]
            before = rule.audit_dict()
        for name, value in criteria.items():
            setattr(rule, name, value)
        rule.save()
        AllocationRuleManager.delete().where(AllocationRuleManager.rule == rule.id).execute()
        AllocationRuleManager.insert_many(
            [{"rule": rule.id, "manager": m.id} for m in managers]).execute()
        rule.managers = managers
        audit("allocation_rule_saved", rule, before=before, after=rule.audit_dict())
    return rule


def delete_rule(rule, user):
    """Remove a rule, audited with what it said; the rules after it move up."""
    with write_transaction():
        rule.managers = [link.manager for link in rule.manager_links]
        audit("allocation_rule_deleted", rule, before=rule.audit_dict())
        rule.delete_instance(recursive=True)
        _renumber(_in_order(rule.branch_id))


def move_rule(rule, user, step):
    """Move a rule one place up (`step` -1) or down (+1) in its branch's order, audited;
    at either end nothing moves."""
    with write_transaction():
        rules = _in_order(rule.branch_id)
        index = next(i for i, r in enumerate(rules) if r.id == rule.id)
        other = index + step
        if not 0 <= other < len(rules):
            return
        rules[index], rules[other] = rules[other], rules[index]
        _renumber(rules)
        audit("allocation_rule_moved", rule, before={"position": index + 1},
              after={"position": other + 1})


def _in_order(branch_id):
    return list(AllocationRule.select().where(AllocationRule.branch == branch_id)
                .order_by(AllocationRule.position, AllocationRule.id))


def _renumber(rules):
    """Positions 1, 2, … in the order of `rules`."""
    for position, rule in enumerate(rules, start=1):
        if rule.position != position:
            AllocationRule.update(position=position).where(
                AllocationRule.id == rule.id).execute()


class Allocator:
    """A branch's rules, ready to propose managers for many customers in a row: each
    proposal counts as taken, so that a pool fills evenly across a whole import or
    reassignment. People in `exclude` (a manager who leaves) get nobody."""

    def __init__(self, branch_id, exclude=()):
        self.rules = rules_of(branch_id)
        self.exclude = set(exclude)
        self.by_tier, self.total = Counter(), Counter()
        if any(len(rule.managers) > 1 for rule in self.rules):
            books = (Customer.select(Customer.account_manager, Customer.tier, fn.COUNT(Customer.id))
                     .where(Customer.branch == branch_id, Customer.account_manager.is_null(False))
                     .group_by(Customer.account_manager, Customer.tier).tuples())
            for manager_id, tier_id, count in books:
                self.by_tier[(manager_id, tier_id)] += count
                self.total[manager_id] += count

    @property
    def reads_value_classes(self):
        return any(rule.value_class for rule in self.rules)

    def propose(self, customer):
        """(manager User, rule) for `customer` (a Candidate), or (None, None) when no
        rule with an active manager matches."""
        for rule in self.rules:
            if not rule.matches(customer):
                continue
            pool = [m for m in rule.managers if m.active and m.id not in self.exclude]
            if pool:
                tier = customer.tier_id
                return min(pool, key=lambda m: (self.by_tier[(m.id, tier)], self.total[m.id],
                                                m.display_name, m.id)), rule
        return None, None

    def take(self, customer, manager_id):
        """Count `customer` as moved to `manager_id` from whoever held it."""
        tier, old = customer.tier_id, customer.account_manager_id
        if old is not None:
            self.by_tier[(old, tier)] -= 1
            self.total[old] -= 1
        self.by_tier[(manager_id, tier)] += 1
        self.total[manager_id] += 1


def new_customer(region="", industry="", nature=""):
    """A Candidate for a customer not yet saved (no tier, no value class)."""
    return Candidate(None, "", "", region or "", industry or "", nature or "", None, None, ())


def arriving_customer(customer_id, tier_id, manager_id, region="", industry="", nature=""):
    """A Candidate for a customer that moves in from another branch: its tier, the
    manager who holds it now (counted away from them) and the value classes it holds."""
    classes = value_classes_of([customer_id]).get(customer_id, ())
    return Candidate(customer_id, "", "", region or "", industry or "", nature or "",
                     tier_id, manager_id, frozenset(classes))


def propose_manager(branch_id, region="", industry="", nature=""):
    """(manager User, rule) the branch's rules propose for a new customer, or (None,
    None)."""
    if not branch_id:
        return None, None
    return Allocator(branch_id).propose(new_customer(region, industry, nature))


# --- Bulk reassignment ---------------------------------------------------------

Move = namedtuple("Move", "customer new_manager_id rule")
Plan = namedtuple("Plan", "moves staying per_manager fingerprint")


def _chosen(branch_id, from_manager_id=None, tier_id=None, industry=None, value_class=None,
            lock=False):
    """The branch's customers the filters choose, as Candidates, by code."""
    query = (Customer.select(Customer.id, Customer.code, Customer.name, Customer.region,
                             Customer.industry, Customer.nature, Customer.tier,
                             Customer.account_manager)
             .where(Customer.branch == branch_id))
    if from_manager_id == UNASSIGNED:
        query = query.where(Customer.account_manager.is_null())
    elif from_manager_id:
        query = query.where(Customer.account_manager == from_manager_id)
    if tier_id == 0:
        query = query.where(Customer.tier.is_null())
    elif tier_id:
        query = query.where(Customer.tier == tier_id)
    if industry:
        query = query.where(Customer.industry == industry)
    if value_class:
        query = query.where(Customer.id.in_(
            CustomerValueClass.select(CustomerValueClass.customer)
            .where(CustomerValueClass.value_class == value_class)))
    if lock and not is_sqlite():
        # A reassignment that confirmed meanwhile has moved these rows: waiting on
        # their locks, this one reads them as they are now (the IMMEDIATE transaction
        # does the same on SQLite).
        query = query.for_update()
    return list(query.order_by(Customer.code).tuples())


def _value_classes(ids):
    found = defaultdict(set)
    for chunk in chunked(ids, 5000):
        rows = (CustomerValueClass.select(CustomerValueClass.customer,
                                          CustomerValueClass.value_class)
                .where(CustomerValueClass.customer.in_(chunk)).tuples())
        for customer_id, value_class in rows:
            found[customer_id].add(value_class)
    return found


def plan_reassignment(branch_id, *, from_manager_id=None, tier_id=None, industry=None,
                      value_class=None, to_manager_id=None, lock=False):
    """Who would hold each chosen customer of the branch: to `to_manager_id`, or by the
    branch's rules when it is None (the manager they leave, `from_manager_id`, gets none
    of them). Returns a Plan: the moves (customers whose manager changes), the customers
    that stay (no rule proposes anyone else), Counters of moves per new manager and tier,
    and a fingerprint of the moves that confirm_reassignment() compares.

    Raises DomainError when `to_manager_id` is not an active person of the branch."""
    if to_manager_id:
        check_managers(branch_id, [to_manager_id])
    rows = _chosen(branch_id, from_manager_id, tier_id, industry, value_class, lock)
    allocator = None if to_manager_id else Allocator(
        branch_id, exclude=[from_manager_id] if from_manager_id else [])
    classes = (_value_classes([row[0] for row in rows])
               if allocator and allocator.reads_value_classes else {})
    moves, staying = [], []
    per_manager = defaultdict(Counter)
    for row in rows:
        customer = Candidate(*row, frozenset(classes.get(row[0], ())))
        if allocator:
            manager, rule = allocator.propose(customer)
            new_id = manager.id if manager else None
        else:
            new_id, rule = to_manager_id, None
        if new_id is None or new_id == customer.account_manager_id:
            staying.append(customer)
            continue
        if allocator:
            allocator.take(customer, new_id)
        moves.append(Move(customer, new_id, rule))
        per_manager[new_id][customer.tier_id] += 1
    digest = hashlib.sha256(";".join(
        f"{m.customer.id}:{m.customer.account_manager_id}:{m.new_manager_id}"
        for m in moves).encode()).hexdigest()[:32]
    return Plan(moves, staying, per_manager, digest)


def confirm_reassignment(user, branch_id, fingerprint, **choice):
    """Carry out the plan the user previewed (plan_reassignment(**choice) whose
    fingerprint is `fingerprint`) as one change: every customer's new manager, one
    OwnershipChange each, and one audit event that names every move. Returns the Plan.

    Raises DomainError, changing nothing, when the plan is no longer what was previewed
    (someone reassigned, edited or added these customers meanwhile), or moves nobody."""
    now = utcnow()
    with write_transaction():
        plan = plan_reassignment(branch_id, lock=True, **choice)
        if plan.fingerprint != fingerprint:
            raise DomainError(_l("These customers changed after the preview (someone else "
                                 "may have reassigned them). Nothing was changed; check the "
                                 "new preview and confirm again."))
        if not plan.moves:
            raise DomainError(_l("No customer would change hands: nothing to confirm."))
        groups = defaultdict(list)
        for move in plan.moves:
            groups[move.new_manager_id].append(move.customer.id)
        for manager_id, ids in groups.items():
            for chunk in chunked(ids, 5000):
                Customer.update(account_manager=manager_id, updated_at=now).where(
                    Customer.id.in_(chunk)).execute()
        changes = [(m.customer.id, m.customer.account_manager_id, m.new_manager_id)
                   for m in plan.moves]
        event = audit("customers_reassigned", object_type="branch", object_id=branch_id,
                      before={"choice": {k: v for k, v in choice.items() if v}},
                      after={"count": len(changes), "moves": [list(c) for c in changes]})
        record_ownership(changes, user, "reassignment", now=now, reference=str(event.id))
    return plan


# --- Workload ------------------------------------------------------------------

WorkloadRow = namedtuple("WorkloadRow", "manager by_tier total top overdue balance")


def workload(user, branch_id, ratio=DEFAULT_IMBALANCE):
    """Each account manager's book in the branch: [WorkloadRow] by name, then a row for
    the customers nobody holds (manager None). `by_tier` counts per tier id (None: no
    tier yet), `top` those of the top tier, `overdue` their overdue service commitments
    (contacts, visits, sales analyses), `balance` "high" or "low" when the book is
    `ratio` times above or below the average of the branch's managers, else None.

    The managers are the branch's active people who hold customers or sell (sales
    reps), and anyone inactive who still holds customers."""
    books = defaultdict(Counter)
    for manager_id, tier_id, count in (
            Customer.select(Customer.account_manager, Customer.tier, fn.COUNT(Customer.id))
            .where(Customer.branch == branch_id)
            .group_by(Customer.account_manager, Customer.tier).tuples()):
        books[manager_id][tier_id] += count
    people = list(User.select().where(
        (User.branch == branch_id) & ((User.active & User.roles_text.contains(",sales_rep,"))
                                      | User.id.in_([k for k in books if k is not None])))
        .order_by(User.display_name, User.id))
    overdue = overdue_counts(user, group_by="account_manager", branch_id=branch_id)
    tiers = Tier.in_order()
    top = tiers[0].id if tiers else None
    totals = [sum(books[p.id].values()) for p in people if p.active]
    average = Decimal(sum(totals)) / len(totals) if totals else Decimal(0)
    rows = []
    for person in people:
        book = books[person.id]
        total = sum(book.values())
        balance = None
        if person.active and average:
            if total > average * ratio:
                balance = "high"
            elif total * ratio < average:
                balance = "low"
        rows.append(WorkloadRow(person, book, total, book[top],
                                sum(overdue.get(person.id, {}).values()), balance))
    if books.get(None):
        book = books[None]
        rows.append(WorkloadRow(None, book, sum(book.values()), book[top],
                                sum(overdue.get(None, {}).values()), None))
    return rows, average

