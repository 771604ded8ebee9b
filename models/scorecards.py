"""Scorecard templates: criteria with maximum points and guidance levels,
and grade bands that turn a total into a tier.

Templates are versioned. All versions of one template share a `family`;
a version that a grading cycle uses is frozen (`freeze()`) and never changes
again: editing it makes the next version. The rules live here as plain
functions, usable without a request:

- `validate_template(data)` → [(field path, message)] for the plain-data
  shape that `template.as_data()` returns and `save_template()` takes;
- `save_template(template, data, user)` creates, edits in place, or makes a
  new version of a frozen one — all or nothing, audited;
- `create_template(name, kind, criteria, bands)` builds one from tuples
  (demo data, tests);
- `freeze(template)`, `max_total(template)`, `template.grade_for(total)`,
  `template.criteria_with_levels()`, `template.bands_desc()`.
"""
import uuid

from peewee import (
    JOIN,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    IntegrityError,
    TextField,
    fn,
    prefetch,
)

from i18n import lazy_gettext as _l

from .audit import audit
from .base import BaseModel, DomainError, is_sqlite, utcnow, write_transaction
from .people import User
from .tiers import Tier

TEMPLATE_KINDS = {"existing": _l("Existing customers"), "prospect": _l("Prospects")}
CUSTOMER_KINDS = tuple(TEMPLATE_KINDS)


NAME_MAX, LEVEL_NAME_MAX, DESCRIPTION_MAX, GUIDANCE_MAX = 100, 100, 1000, 2000
# Generous bounds that keep totals within an ordinary integer.
POINTS_LIMIT = 100000


# Criteria of frozen template versions by (family, version); the family is a random
# key, so two databases never share an entry. Read-only once stored.
_FROZEN_CRITERIA = {}
_FROZEN_CACHE_SIZE = 64


def _new_family():
    return uuid.uuid4().hex


class TemplateInvalid(DomainError):
    """The template breaks a rule; `errors` holds (field path, message) pairs."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("; ".join(f"{path}: {message}" for path, message in self.errors))


class ScorecardTemplate(BaseModel):
    name = CharField(max_length=NAME_MAX)
    version = IntegerField(default=1)
    # Every version of one template carries the same family key.
    family = CharField(max_length=32, default=_new_family)
    # Which customers it grades: "existing" or "prospect".
    kind = CharField(max_length=16, default="existing")
    description = TextField(default="")
    created_by = ForeignKeyField(User, null=True, backref="+", on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    # Set when a grading cycle starts using this version; it never changes after.
    frozen_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("family", "version"), True),)

    def __str__(self):
        return self.name

    @property
    def is_frozen(self):
        return self.frozen_at is not None

    @property
    def kind_label(self):
        return TEMPLATE_KINDS.get(self.kind, self.kind)

    # --- reading ---------------------------------------------------------
    def criteria_with_levels(self):
        """The criteria in order, each with `.levels` as a list in order (two queries,
        none for a frozen version seen before: it never changes, so the process keeps
        it — a meeting reads the same scorecard thousands of times)."""
        if getattr(self, "_criteria", None) is None:
            key = (self.family, self.version)
            cached = _FROZEN_CRITERIA.get(key) if self.is_frozen else None
            if cached is None:
                criteria = Criterion.select().where(Criterion.template == self).order_by(
                    Criterion.position, Criterion.id)
                levels = CriterionLevel.select().order_by(CriterionLevel.position,
                                                          CriterionLevel.id)
                cached = list(prefetch(criteria, levels))
                if self.is_frozen:
                    if len(_FROZEN_CRITERIA) >= _FROZEN_CACHE_SIZE:
                        _FROZEN_CRITERIA.clear()
                    _FROZEN_CRITERIA[key] = cached
            self._criteria = cached
        return self._criteria

    def bands_desc(self):
        """The grade bands with their tiers, highest minimum first (one query)."""
        if getattr(self, "_bands", None) is None:
            self._bands = list(GradeBand.select(GradeBand, Tier).join(Tier)
                               .where(GradeBand.template == self.id)
                               .order_by(GradeBand.min_total.desc()))
        return self._bands

    def band_ranges(self):
        """[(band, lowest total, the band above's minimum or None)], top band
        first: band holds the totals from `lowest` up to (not including) the
        band above's minimum. Totals may be fractions (committee averages)."""
        ranges, above = [], None
        for band in self.bands_desc():
            ranges.append((band, max(band.min_total, 0), above))
            above = band.min_total
        return ranges

    def grade_for(self, total):
        """The tier whose band holds `total`: the highest minimum it reaches.
        None when the total lies below every band (a valid template has none)."""
        for band in self.bands_desc():
            if total >= band.min_total:
                return band.tier
        return None

    @property
    def max_total(self):
        return max_total(self)

    def tiers_out_of_reach(self, tiers):
        """The tiers of `tiers` (in their order) that no total on this template can get."""
        reach = reachable_tiers([(band.min_total, band.tier) for band in self.bands_desc()],
                                self.max_total)
        return [tier for tier in tiers if tier.id not in reach]

    def versions(self):
        """Every version of this template's family, newest first."""
        return (ScorecardTemplate.select(ScorecardTemplate, User)
                .join(User, on=(ScorecardTemplate.created_by == User.id),
                      join_type=JOIN.LEFT_OUTER, attr="created_by")
                .where(ScorecardTemplate.family == self.family)
                .order_by(ScorecardTemplate.version.desc()))

    def latest_version(self):
        """The newest version of this template's family (maybe this one)."""
        return (ScorecardTemplate.select()
                .where(ScorecardTemplate.family == self.family)
                .order_by(ScorecardTemplate.version.desc()).first())

    def as_data(self):
        """The template as plain data: the shape validate_template() and
        save_template() take, and what the audit trail records."""
        return {
            "name": self.name, "kind": self.kind, "description": self.description or "",
            "criteria": [{
                "name": c.name, "guidance": c.guidance or "", "max_points": c.max_points,
                "levels": [{"name": lv.name, "min_points": lv.min_points,
                            "max_points": lv.max_points} for lv in c.levels],
            } for c in self.criteria_with_levels()],
            "bands": [{"tier": b.tier.code, "min_total": b.min_total}
                      for b in self.bands_desc()],
        }


class Criterion(BaseModel):
    template = ForeignKeyField(ScorecardTemplate, backref="criteria", on_delete="CASCADE")
    position = IntegerField()
    name = CharField(max_length=NAME_MAX)
    guidance = TextField(default="")
    max_points = IntegerField()


class CriterionLevel(BaseModel):
    criterion = ForeignKeyField(Criterion, backref="levels", on_delete="CASCADE")
    position = IntegerField()
    name = CharField(max_length=LEVEL_NAME_MAX)
    min_points = IntegerField()
    max_points = IntegerField()

    @property
    def is_fixed(self):
        """A level worth fixed points rather than a range."""
        return self.min_points == self.max_points


class GradeBand(BaseModel):
    template = ForeignKeyField(ScorecardTemplate, backref="bands", on_delete="CASCADE")
    tier = ForeignKeyField(Tier, on_delete="RESTRICT")
    min_total = IntegerField()


def reachable_tiers(bands, top):
    """The ids of the tiers some total from 0 to `top` gets on `bands` ([(minimum, tier)],
    highest first): a band above `top`, or below another band of the same minimum, is
    never reached."""
    reach, minima = set(), set()
    for minimum, tier in bands:
        if minimum <= top and minimum not in minima:
            reach.add(tier.id)
        minima.add(minimum)
    return reach


def max_total(template):
    """The highest total the template allows: the sum of its criteria's maxima."""
    criteria = getattr(template, "_criteria", None)
    if criteria is not None:
        return sum(c.max_points for c in criteria)
    return (Criterion.select(fn.COALESCE(fn.SUM(Criterion.max_points), 0))
            .where(Criterion.template == template).scalar())


# --- Rules ---------------------------------------------------------------------

def _text(value):
    return (value or "").strip() if isinstance(value, str) or value is None else str(value)


def _number(value):
    """An int, or None for a blank or non-number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def clean_data(data):
    """`data` with trimmed text and numbers as ints (None when blank)."""
    return {
        "name": _text(data.get("name")),
        "kind": _text(data.get("kind")) or "existing",
        "description": _text(data.get("description")),
        "criteria": [{
            "name": _text(c.get("name")), "guidance": _text(c.get("guidance")),
            "max_points": _number(c.get("max_points")),
            "levels": [{"name": _text(lv.get("name")),
                        "min_points": _number(lv.get("min_points")),
                        "max_points": _number(lv.get("max_points"))}
                       for lv in c.get("levels") or []],
        } for c in data.get("criteria") or []],
        "bands": [{"tier": _text(b.get("tier")), "min_total": _number(b.get("min_total"))}
                  for b in data.get("bands") or []],
    }


def validate_template(data):
    """Every rule `data` breaks, as [(field path, message)]; [] when it is valid.

    Paths name the field: "name", "criteria.0.levels.1.max_points",
    "bands.2.tier"; "criteria" and "bands" stand for the list as a whole.
    Needs the database (for the tiers), not a request.
    """
    data = clean_data(data)
    errors = []

    def error(path, message):
        errors.append((path, message))

    if not data["name"]:
        error("name", _l("Give the template a name."))
    elif len(data["name"]) > NAME_MAX:
        error("name", _l("At most %(count)s characters.", count=NAME_MAX))
    if data["kind"] not in TEMPLATE_KINDS:
        error("kind", _l("Choose whom the template grades."))
    if len(data["description"]) > DESCRIPTION_MAX:
        error("description", _l("At most %(count)s characters.", count=DESCRIPTION_MAX))

    if not data["criteria"]:
        error("criteria", _l("Add at least one criterion."))
    seen_criteria = set()
    for i, criterion in enumerate(data["criteria"]):
        path = f"criteria.{i}"
        name, top = criterion["name"], criterion["max_points"]
        if not name:
            error(f"{path}.name", _l("Give the criterion a name."))
        elif len(name) > NAME_MAX:
            error(f"{path}.name", _l("At most %(count)s characters.", count=NAME_MAX))
        elif name in seen_criteria:
            error(f"{path}.name", _l("Another criterion is already called %(name)s.",
                                     name=name))
        seen_criteria.add(name)
        if len(criterion["guidance"]) > GUIDANCE_MAX:
            error(f"{path}.guidance", _l("At most %(count)s characters.", count=GUIDANCE_MAX))
        if top is None:
            error(f"{path}.max_points", _l("Enter the maximum points as a whole number."))
        elif top < 1:
            error(f"{path}.max_points", _l("The maximum must be at least 1 point."))
        elif top > POINTS_LIMIT:
            error(f"{path}.max_points", _l("At most %(count)s points.", count=POINTS_LIMIT))
        seen_levels = set()
        for j, level in enumerate(criterion["levels"]):
            lpath = f"{path}.levels.{j}"
            low, high = level["min_points"], level["max_points"]
            if not level["name"]:
                error(f"{lpath}.name", _l("Give the level a name."))
            elif len(level["name"]) > LEVEL_NAME_MAX:
                error(f"{lpath}.name", _l("At most %(count)s characters.", count=LEVEL_NAME_MAX))
            elif level["name"] in seen_levels:
                error(f"{lpath}.name", _l("Another level of this criterion is called "
                                          "%(name)s.", name=level["name"]))
            seen_levels.add(level["name"])
            if low is None:
                error(f"{lpath}.min_points", _l("Enter the points as a whole number."))
            elif low < 0:
                error(f"{lpath}.min_points", _l("Points cannot be negative."))
            if high is None:
                error(f"{lpath}.max_points", _l("Enter the points as a whole number."))
            elif low is not None and low >= 0 and high < low:
                error(f"{lpath}.max_points", _l("The range cannot end below its start (%(low)s).",
                                                low=low))
            elif top is not None and top >= 1 and high > top:
                error(f"{lpath}.max_points", _l(
                    "Above the criterion's maximum of %(max)s points.", max=top))

    errors.extend(_band_errors(data))
    return errors


def _band_errors(data):
    """The grade band rules: known, distinct tiers listed from the best down,
    strictly falling minima, the lowest at 0 or below, none out of reach."""
    errors = []
    bands = data["bands"]
    if not bands:
        return [("bands", _l("Add at least one grade band."))]
    tiers = {t.code: t for t in Tier.select()}
    criteria_ok = data["criteria"] and all(c["max_points"] is not None and c["max_points"] >= 1
                                           for c in data["criteria"])
    top = sum(c["max_points"] for c in data["criteria"]) if criteria_ok else None
    previous = None  # the band above: (tier, min_total)
    seen = set()
    for i, band in enumerate(bands):
        path = f"bands.{i}"
        tier, minimum = tiers.get(band["tier"]), band["min_total"]
        if not band["tier"]:
            errors.append((f"{path}.tier", _l("Choose a tier.")))
        elif tier is None:
            errors.append((f"{path}.tier", _l("There is no tier %(code)s.", code=band["tier"])))
        elif tier.code in seen:
            errors.append((f"{path}.tier", _l("Tier %(tier)s has a band already.",
                                              tier=tier.display_name)))
        elif previous and previous[0] and tier.rank < previous[0].rank:
            errors.append((f"{path}.tier", _l(
                "List the bands from the best tier down: %(tier)s ranks above %(above)s.",
                tier=tier.display_name, above=previous[0].display_name)))
        if tier is not None:
            seen.add(tier.code)
        if minimum is None:
            errors.append((f"{path}.min_total", _l("Enter the minimum total as a whole number.")))
        elif minimum < -POINTS_LIMIT:
            errors.append((f"{path}.min_total", _l("At least %(count)s.", count=-POINTS_LIMIT)))
        elif previous and previous[1] is not None and minimum >= previous[1]:
            errors.append((f"{path}.min_total", _l(
                "A lower tier needs a lower minimum: below %(above)s, the band above's.",
                above=previous[1])))
        elif top is not None and minimum > top:
            errors.append((f"{path}.min_total", _l(
                "No total can reach %(min)s: the most a customer can score is %(max)s.",
                min=minimum, max=top)))
        elif i == len(bands) - 1 and minimum > 0:
            errors.append((f"{path}.min_total", _l(
                "The lowest band must start at 0, or totals below %(min)s get no grade.",
                min=minimum)))
        previous = (tier, minimum)
    return errors


# --- Changes ------------------------------------------------------------------

def _name_taken(name, family):
    """Whether another template (its latest version) is called `name`."""
    latest = (ScorecardTemplate
              .select(ScorecardTemplate.family, fn.MAX(ScorecardTemplate.version).alias("v"))
              .group_by(ScorecardTemplate.family))
    query = (ScorecardTemplate.select()
             .join(latest, on=((ScorecardTemplate.family == latest.c.family)
                               & (ScorecardTemplate.version == latest.c.v)))
             .where(ScorecardTemplate.name == name))
    if family is not None:
        query = query.where(ScorecardTemplate.family != family)
    return query.exists()


def _write_children(template, data):
    tiers = {t.code: t.id for t in Tier.select()}
    for position, c in enumerate(data["criteria"], 1):
        criterion = Criterion.create(template=template, position=position, name=c["name"],
                                     guidance=c["guidance"], max_points=c["max_points"])
        if c["levels"]:
            CriterionLevel.insert_many([
                {"criterion": criterion.id, "position": lp, "name": lv["name"],
                 "min_points": lv["min_points"], "max_points": lv["max_points"]}
                for lp, lv in enumerate(c["levels"], 1)]).execute()
    GradeBand.insert_many([{"template": template.id, "tier": tiers[b["tier"]],
                            "min_total": b["min_total"]} for b in data["bands"]]).execute()


def save_template(template, data, user=None):
    """Create (`template` is None) or change a template from plain `data`; returns
    the version that holds the data.

    A frozen template is never changed: saving it makes the next version of its
    family (same family, version + 1) and leaves it as it was. An unfrozen one is
    edited in place. Only the latest version of a family can be edited.
    Raises TemplateInvalid (with field-level errors) or DomainError; then
    nothing is saved. Audited with the data before and after.
    """
    data = clean_data(data)
    errors = validate_template(data)
    if errors:
        raise TemplateInvalid(errors)
    try:
        return _save(template, data, user)
    except IntegrityError as error:
        # Two editors saving the same version at once: the second one loses.
        raise DomainError(_l("Someone else saved this template at the same moment. "
                             "Reload it and try again.")) from error


def _save(template, data, user):
    with write_transaction():
        if template is not None:
            query = ScorecardTemplate.select().where(ScorecardTemplate.id == template.id)
            # PostgreSQL: wait for a concurrent freeze() to finish before deciding.
            template = (query if is_sqlite() else query.for_update()).first()
            if template is None:
                raise DomainError(_l("The template no longer exists."))
            latest = template.latest_version()
            if latest.id != template.id:
                raise DomainError(_l("Version %(version)s is newer: edit that one.",
                                     version=latest.version))
        if _name_taken(data["name"], template.family if template else None):
            raise TemplateInvalid([("name", _l("Another template is called %(name)s.",
                                                name=data["name"]))])
        fields = {"name": data["name"], "kind": data["kind"],
                  "description": data["description"]}
        if template is None:
            saved = ScorecardTemplate.create(version=1, created_by=user, **fields)
            _write_children(saved, data)
            audit("scorecard_created", saved, after=data, actor=user)
        elif template.is_frozen:
            before = template.as_data()
            saved = ScorecardTemplate.create(family=template.family,
                                             version=template.version + 1,
                                             created_by=user, **fields)
            _write_children(saved, data)
            audit("scorecard_versioned", saved, before=before, after=data, actor=user)
        else:
            before = template.as_data()
            if before == data:
                return template
            (ScorecardTemplate.update(**fields)
             .where(ScorecardTemplate.id == template.id, ScorecardTemplate.frozen_at.is_null())
             .execute())
            Criterion.delete().where(Criterion.template == template).execute()
            GradeBand.delete().where(GradeBand.template == template).execute()
            _write_children(template, data)
            audit("scorecard_updated", template, before=before, after=data, actor=user)
            saved = template
    return ScorecardTemplate.get_by_id(saved.id)


def create_template(name, kind, criteria, bands, user=None, description=""):
    """Build a template from plain Python data; returns it.

    `criteria`: [(name, max points, [(level, min, max), …])], optionally with
    guidance as a fourth item; `bands`: [(tier code, minimum total)], best
    tier first. Raises TemplateInvalid like save_template().
    """
    data = {
        "name": name, "kind": kind, "description": description,
        "criteria": [{"name": c[0], "max_points": c[1],
                      "guidance": c[3] if len(c) > 3 else "",
                      "levels": [{"name": n, "min_points": lo, "max_points": hi}
                                 for n, lo, hi in c[2]]} for c in criteria],
        "bands": [{"tier": code, "min_total": minimum} for code, minimum in bands],
    }
    return save_template(None, data, user)


def freeze(template, user=None):
    """Freeze `template` for good: a grading cycle uses it. Idempotent.

    From now on save_template() makes a new version instead of changing it.
    """
    with write_transaction():
        changed = (ScorecardTemplate.update(frozen_at=utcnow())
                   .where(ScorecardTemplate.id == template.id,
                          ScorecardTemplate.frozen_at.is_null())
                   .execute())
        fresh = ScorecardTemplate.get_by_id(template.id)
        if changed:
            audit("scorecard_frozen", fresh, after={"frozen_at": fresh.frozen_at}, actor=user)
    template.frozen_at = fresh.frozen_at
    return template


def template_families():
    """The latest version of every template, with `version_count`,
    `family_frozen_at` (the last freeze in the family), `total` (its max total)
    and `created_by` joined in; one query."""
    latest = (ScorecardTemplate
              .select(ScorecardTemplate.family, fn.MAX(ScorecardTemplate.version).alias("v"))
              .group_by(ScorecardTemplate.family).alias("latest"))
    Other = ScorecardTemplate.alias("other")
    count = Other.select(fn.COUNT(Other.id)).where(Other.family == ScorecardTemplate.family)
    frozen = Other.select(fn.MAX(Other.frozen_at)).where(Other.family == ScorecardTemplate.family)
    totals = (Criterion.select(fn.COALESCE(fn.SUM(Criterion.max_points), 0))
              .where(Criterion.template == ScorecardTemplate.id))
    return (ScorecardTemplate
            .select(ScorecardTemplate, User, count.alias("version_count"),
                    frozen.alias("family_frozen_at"), totals.alias("total"))
            .join(latest, on=((ScorecardTemplate.family == latest.c.family)
                              & (ScorecardTemplate.version == latest.c.v)))
            .switch(ScorecardTemplate)
            .join(User, on=(ScorecardTemplate.created_by == User.id), join_type=JOIN.LEFT_OUTER,
                  attr="created_by")
            .order_by(ScorecardTemplate.kind, ScorecardTemplate.name))


def describe_changes(before, after):
    """What differs between two as_data() dicts, for people:
    [(what, before text, after text)], criteria matched by name."""
    before, after = before or {}, after or {}
    lines = []
    for key, label in (("name", _l("Name")), ("kind", _l("For")),
                       ("description", _l("Description"))):
        if before.get(key) != after.get(key):
            was, now = before.get(key), after.get(key)
            if key == "kind":
                was, now = TEMPLATE_KINDS.get(was, was), TEMPLATE_KINDS.get(now, now)
            lines.append((label, was, now))
    old = {c["name"]: c for c in before.get("criteria", [])}
    new = {c["name"]: c for c in after.get("criteria", [])}

    def levels(c):
        return " · ".join(f"{lv['name']} {_points(lv['min_points'], lv['max_points'])}"
                          for lv in c["levels"]) or "—"

    for name, c in new.items():
        if name not in old:
            lines.append((_l("Criterion added"), None, f"{name} ({c['max_points']})"))
            continue
        o = old[name]
        if o["max_points"] != c["max_points"]:
            lines.append((_l("%(criterion)s: max points", criterion=name), o["max_points"],
                          c["max_points"]))
        if o["guidance"] != c["guidance"]:
            lines.append((_l("%(criterion)s: guidance", criterion=name), o["guidance"],
                          c["guidance"]))
        if o["levels"] != c["levels"]:
            lines.append((_l("%(criterion)s: levels", criterion=name), levels(o), levels(c)))
    for name, o in old.items():
        if name not in new:
            lines.append((_l("Criterion removed"), f"{name} ({o['max_points']})", None))
    if [c["name"] for c in before.get("criteria", []) if c["name"] in new] != \
            [c["name"] for c in after.get("criteria", []) if c["name"] in old]:
        lines.append((_l("Order of criteria"),
                      " · ".join(c["name"] for c in before.get("criteria", [])),
                      " · ".join(c["name"] for c in after.get("criteria", []))))

    def bands(data):
        return " · ".join(f"{b['tier']} ≥ {b['min_total']}" for b in data.get("bands", []))

    if before.get("bands") != after.get("bands"):
        lines.append((_l("Grade bands"), bands(before) or None, bands(after)))
    return lines


def _points(low, high):
    return f"{low}" if low == high else f"{low}–{high}"
