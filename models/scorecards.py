"""Scorecard templates: criteria with maximum points and guidance levels,
and grade bands that turn a total into a tier.

This is the minimal shape the demo data needs; the grading issue builds
the editor, versioning and validation on it.
"""
from peewee import CharField, DateTimeField, ForeignKeyField, IntegerField, TextField

from .base import BaseModel, utcnow
from .tiers import Tier

CUSTOMER_KINDS = ("existing", "prospect")


class ScorecardTemplate(BaseModel):
    name = CharField(max_length=100)
    version = IntegerField(default=1)
    # Which customers it grades: "existing" or "prospect".
    kind = CharField(max_length=16, default="existing")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("name", "version"), True),)

    def grade_for(self, total):
        """The tier whose band holds `total`: the highest minimum it reaches."""
        for band in self.bands.order_by(GradeBand.min_total.desc()):
            if total >= band.min_total:
                return band.tier
        return None


class Criterion(BaseModel):
    template = ForeignKeyField(ScorecardTemplate, backref="criteria", on_delete="CASCADE")
    position = IntegerField()
    name = CharField(max_length=100)
    guidance = TextField(default="")
    max_points = IntegerField()


class CriterionLevel(BaseModel):
    criterion = ForeignKeyField(Criterion, backref="levels", on_delete="CASCADE")
    position = IntegerField()
    name = CharField(max_length=100)
    min_points = IntegerField()
    max_points = IntegerField()


class GradeBand(BaseModel):
    template = ForeignKeyField(ScorecardTemplate, backref="bands", on_delete="CASCADE")
    tier = ForeignKeyField(Tier, on_delete="RESTRICT")
    min_total = IntegerField()
