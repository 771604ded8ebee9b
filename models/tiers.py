"""Tiers: the ordered, configurable grades a customer can hold."""
from flask_babel import get_locale
from peewee import CharField, IntegerField

from .base import BaseModel


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
    def by_id(cls):
        """{id: tier} of every tier (a handful of rows), for pages that show many."""
        return {tier.id: tier for tier in cls.select()}

    @classmethod
    def top(cls):
        return cls.ordered().first()
