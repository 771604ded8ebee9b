"""Customers and their yearly figures."""
from flask_babel import lazy_gettext as _l
from peewee import (
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    DecimalField,
    ForeignKeyField,
    IntegerField,
)
from pypinyin import Style, lazy_pinyin

from .base import BaseModel, utcnow
from .people import Branch, User
from .tiers import Tier

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

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.name_initials = pinyin_initials(self.name)
        self.updated_at = utcnow()
        return super().save(*args, **kwargs)

    @classmethod
    def visible_to(cls, user):
        """Customers the user may see: a branch-scoped user sees only the branch."""
        query = cls.select()
        if user.is_branch_scoped:
            query = query.where(cls.branch == user.branch_id)
        return query


class CustomerYear(BaseModel):
    """One year's figures of one customer. Amounts in 元."""
    customer = ForeignKeyField(Customer, backref="years", on_delete="CASCADE")
    year = IntegerField()
    sales = DecimalField(max_digits=16, decimal_places=2, default=0)
    profit = DecimalField(max_digits=16, decimal_places=2, default=0)
    # Share of receivables collected, 0–100 (%).
    collection_rate = DecimalField(max_digits=5, decimal_places=2, default=0)
    credit_days = IntegerField(default=0)

    class Meta:
        indexes = ((("customer", "year"), True),)
