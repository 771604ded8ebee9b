"""Tiers (等级) and their versioned service policies (服务政策). Who is overdue for the
service a policy promises is compliance.py's."""
import datetime
import re

from flask_babel import get_locale
from peewee import (
    JOIN,
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

from .audit import audit
from .base import (
    BaseModel,
    DomainError,
    utcnow,
    write_transaction,
)
from .people import User

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
        """Every tier, top first, as a list: forms and pages read them on every request."""
        return list(cls.ordered())

    @classmethod
    def by_id(cls):
        """{id: tier} of every tier (a handful of rows), for pages that show many."""
        return {tier.id: tier for tier in cls.in_order()}

    @classmethod
    def top(cls):
        return cls.ordered().first()

    def audit_dict(self):
        return {"code": self.code, "name_zh": self.name_zh, "name_en": self.name_en,
                "rank": self.rank, "colour": self.colour}


def save_tier(tier, user, *, code, name_zh, name_en, colour):
    """Create (`tier` is None; it goes to the bottom of the list) or change a tier,
    audited. Raises DomainError for a malformed or taken code or a bad colour."""
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
    for policy in (TierPolicy.select().where(TierPolicy.effective_on <= today)
                   .order_by(TierPolicy.effective_on, TierPolicy.version)):
        found[policy.tier_id] = policy
    return found


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
