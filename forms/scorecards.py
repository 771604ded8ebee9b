"""The scorecard template editor: criteria with their levels, and grade bands.

The form only parses what was typed (whole numbers, the row structure); the
rules live in models.scorecards.validate_template(), whose errors are put
back on the fields here. Rows are added and removed by submit buttons
(name="action"), so the editor works without JavaScript.
"""
from wtforms import (
    FieldList,
    Form,
    FormField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Optional
from wtforms.widgets import TextInput

from forms import Form as PageForm
from forms import choices
from i18n import lazy_gettext as _l
from models import Tier
from models.scorecards import (
    DESCRIPTION_MAX,
    GUIDANCE_MAX,
    LEVEL_NAME_MAX,
    NAME_MAX,
    TEMPLATE_KINDS,
)

# Enough rows for any real scorecard; a request beyond it is cut, not stored.
MAX_CRITERIA, MAX_LEVELS, MAX_BANDS = 40, 20, 20
# Points are typed into short text boxes: a number input is too wide for the
# level rows, and its spinner adds nothing to "15".
POINTS = {"widget": TextInput(), "validators": [Optional()]}
POINTS_BOX = {"inputmode": "numeric", "size": 5, "autocomplete": "off"}


class LevelForm(Form):
    name = StringField(_l("Level name"), render_kw={"maxlength": LEVEL_NAME_MAX, "size": 32})
    min_points = IntegerField(_l("Points from"), render_kw=POINTS_BOX, **POINTS)
    max_points = IntegerField(_l("Points to"), render_kw=POINTS_BOX, **POINTS)


class CriterionForm(Form):
    name = StringField(_l("Criterion name"), render_kw={"maxlength": NAME_MAX})
    max_points = IntegerField(_l("Max points"), render_kw=POINTS_BOX, **POINTS)
    guidance = TextAreaField(_l("Guidance for the assessor"),
                             render_kw={"rows": 2, "maxlength": GUIDANCE_MAX})
    levels = FieldList(FormField(LevelForm), max_entries=MAX_LEVELS)


class BandForm(Form):
    # The tiers are checked by validate_template(), with a message on the field.
    tier = SelectField(_l("Tier"), validate_choice=False)
    min_total = IntegerField(_l("Minimum total"), render_kw=POINTS_BOX, **POINTS)


class TemplateForm(PageForm):
    name = StringField(_l("Template name"), render_kw={"maxlength": NAME_MAX})
    kind = SelectField(_l("Applies to"), choices=choices(TEMPLATE_KINDS))
    description = TextAreaField(_l("Description"),
                                render_kw={"rows": 2, "maxlength": DESCRIPTION_MAX})
    criteria = FieldList(FormField(CriterionForm), max_entries=MAX_CRITERIA)
    bands = FieldList(FormField(BandForm), max_entries=MAX_BANDS)
    # Which button was pressed: "save", or a row action such as "add_level:2".
    action = StringField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tier_choices = choices([("", _l("— choose —"))]
                                    + [(t.code, t.display_name) for t in Tier.ordered()])
        for entry in self.bands:
            entry.form.tier.choices = self.tier_choices
        # Errors about a list as a whole ("add at least one criterion"), by list name.
        self.list_errors = {}
        # After a row action: the id of the part that changed, and of the new row's
        # first field (autofocus: the browser, or htmx, brings it into view).
        self.changed = self.focus = None

    # --- rows -----------------------------------------------------------
    def apply_row_action(self):
        """Add or remove the row the pressed button names. Returns True when the
        request was such a row action (then nothing is to be saved)."""
        verb, _, where = (self.action.data or "").partition(":")
        try:
            index = [int(part) for part in where.split(":") if part != ""]
        except ValueError:
            return verb != "save"
        criteria = self.criteria.entries
        if verb == "add_criterion":
            entry = self.criteria.append_entry()
            entry.form.levels.append_entry()
            self.changed, self.focus = f"criterion-{len(criteria) - 1}", entry.form.name.id
        elif verb == "remove_criterion" and len(index) == 1 and index[0] < len(criteria):
            criteria.pop(index[0])
            self.changed = f"criterion-{index[0] - 1}" if index[0] else "criteria-card"
        elif verb == "add_level" and len(index) == 1 and index[0] < len(criteria):
            entry = criteria[index[0]].form.levels.append_entry()
            self.changed, self.focus = f"criterion-{index[0]}", entry.form.name.id
        elif verb == "remove_level" and len(index) == 2 and index[0] < len(criteria) \
                and index[1] < len(criteria[index[0]].form.levels.entries):
            criteria[index[0]].form.levels.entries.pop(index[1])
            self.changed = f"criterion-{index[0]}"
        elif verb == "add_band":
            entry = self.bands.append_entry()
            entry.form.tier.choices = self.tier_choices
            self.changed, self.focus = "bands-card", entry.form.tier.id
        elif verb == "remove_band" and len(index) == 1 and index[0] < len(self.bands.entries):
            self.bands.entries.pop(index[0])
            self.changed = "bands-card"
        else:
            return verb != "save"
        return True

    # --- data in and out ------------------------------------------------------
    def values(self):
        """What was typed, as the plain data validate_template() and save_template() take.

        A level whose upper end is left empty is worth fixed points.
        """
        def level(form):
            low, high = form.min_points.data, form.max_points.data
            return {"name": form.name.data, "min_points": low,
                    "max_points": low if high is None and not form.max_points.errors else high}

        return {
            "name": self.name.data, "kind": self.kind.data,
            "description": self.description.data,
            "criteria": [{
                "name": c.form.name.data, "guidance": c.form.guidance.data,
                "max_points": c.form.max_points.data,
                "levels": [level(lv.form) for lv in c.form.levels],
            } for c in self.criteria],
            "bands": [{"tier": b.form.tier.data, "min_total": b.form.min_total.data}
                      for b in self.bands],
        }

    def field_at(self, path):
        """The field (or list) a validate_template() path names, or None."""
        node = self
        try:
            for part in path.split("."):
                node = node[int(part)] if part.isdigit() else node[part]
        except (KeyError, IndexError, TypeError):
            return None
        return node

    def add_errors(self, errors):
        """Put (path, message) pairs on their fields. A field that already
        shows an error (say, "not a whole number") keeps just that one."""
        for path, message in errors:
            node = self.field_at(path)
            if node is None:
                node = self.name
            if isinstance(node, FieldList):
                self.list_errors.setdefault(node.name, []).append(message)
            elif not node.errors:
                node.errors = [*node.errors, message]

    def error_summary(self):
        """[(where, message, field id)] for the summary at the top of the form."""
        items = [(_l("Criteria") if name == "criteria" else _l("Grade bands")
                  if name == "bands" else self._place(name), message, name)
                 for name, messages in self.list_errors.items() for message in messages]
        for field in self._leaves():
            for message in field.errors:
                items.append((self._place(field.name, field.label.text), message, field.id))
        return items

    def _leaves(self):
        if "csrf_token" in self._fields:
            yield self["csrf_token"]
        for name in ("name", "kind", "description"):
            yield self[name]
        for criterion in self.criteria:
            for name in ("name", "max_points", "guidance"):
                yield criterion.form[name]
            for level in criterion.form.levels:
                yield from level.form
        for band in self.bands:
            yield from band.form

    def _place(self, name, label=None):
        """"Criterion 2 · Level 1 · Points to" for criteria-1-levels-0-max_points."""
        parts, words = name.split("-"), []
        # Whole phrases through the catalog: a word glued to a number stays English
        # (and reads 评分项 2 where Chinese may want another order).
        positions = {"criteria": (self.criteria, lambda n: _l("Criterion %(n)s", n=n)),
                     "bands": (self.bands, lambda n: _l("Grade band %(n)s", n=n))}
        if parts[0] in positions and len(parts) > 1:
            entries, phrase = positions[parts[0]]
            index = next(i for i, e in enumerate(entries) if e.name == f"{parts[0]}-{parts[1]}")
            words.append(phrase(index + 1))
            if len(parts) > 3 and parts[2] == "levels":
                levels = entries[index].form.levels
                level = next(i for i, e in enumerate(levels)
                             if e.name == f"{levels.name}-{parts[3]}")
                words.append(_l("Level %(n)s", n=level + 1))
        if label:
            words.append(str(label))
        return " · ".join(str(w) for w in words)
