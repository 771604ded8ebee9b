"""Scorecard templates: the editor, the rules, versions, history and the blank sheet."""
import copy
import html as html_module
import re

import pytest
from flask_babel import force_locale

from models import AuditEvent, Criterion, CriterionLevel, GradeBand, ScorecardTemplate, Tier, db
from models.scorecards import (
    TemplateInvalid,
    create_template,
    freeze,
    max_total,
    save_template,
    validate_template,
)
from services.demo import DEFAULT_BANDS, DEFAULT_CRITERIA, TIERS
from tests.conftest import make_pg_schema, pg_execute, pg_url

SCORECARD_TABLES = (ScorecardTemplate, Criterion, CriterionLevel, GradeBand)


def _tiers(codes="ABCD"):
    """The tiers A–D of the demo (or the first few)."""
    for code, zh, en, rank, colour in TIERS:
        if code in codes:
            Tier.create(code=code, name_zh=zh, name_en=en, rank=rank, colour=colour)
    return {t.code: t for t in Tier.select()}


def _data(criteria=DEFAULT_CRITERIA, bands=DEFAULT_BANDS, name="客户质量等级评估表",
          kind="existing"):
    """Plain template data (the shape of as_data()) from create_template-style tuples."""
    return {
        "name": name, "kind": kind, "description": "",
        "criteria": [{"name": n, "max_points": top, "guidance": "",
                      "levels": [{"name": lv, "min_points": lo, "max_points": hi}
                                 for lv, lo, hi in levels]} for n, top, levels in criteria],
        "bands": [{"tier": code, "min_total": minimum} for code, minimum in bands],
    }


def _form(data, action="save"):
    """The editor's POST body for `data`."""
    def text(value):
        return "" if value is None else str(value)
    body = {"name": data["name"], "kind": data["kind"], "description": data["description"],
            "action": action}
    for i, c in enumerate(data["criteria"]):
        body.update({f"criteria-{i}-name": c["name"], f"criteria-{i}-guidance": c["guidance"],
                     f"criteria-{i}-max_points": text(c["max_points"])})
        for j, lv in enumerate(c["levels"]):
            prefix = f"criteria-{i}-levels-{j}-"
            body.update({prefix + "name": lv["name"], prefix + "min_points": text(
                lv["min_points"]), prefix + "max_points": text(lv["max_points"])})
    for i, b in enumerate(data["bands"]):
        body.update({f"bands-{i}-tier": b["tier"], f"bands-{i}-min_total": text(b["min_total"])})
    return body


def _counts():
    return {m.__name__: m.select().count() for m in SCORECARD_TABLES} | {
        "events": AuditEvent.select().where(AuditEvent.action.startswith("scorecard")).count()}


def _field_errors(html, field_id):
    """The error messages shown inside the field block of the input `field_id`, as the
    browser reads them (entities decoded)."""
    match = re.search(r'<div class="field[^"]*">\s*(?:<label[^>]*>[^<]*</label>\s*)?'
                      r'<(?:input|select|textarea)[^>]*id="' + re.escape(field_id) + r'"'
                      r'(?:(?!<div class="field).)*', html, re.S)
    assert match, f"no field {field_id}"
    return [html_module.unescape(e) for e in re.findall(r'<small class="error">([^<]*)</small>',
                                                           match.group(0))]


@pytest.fixture
def admin(login_as):
    return login_as("admin", language="en", display_name="Admin Wang")


# --- Creating ----------------------------------------------------------------

def test_the_default_template_is_made_through_the_form(client, admin):
    """An admin enters DESIGN.md's default scorecard in the editor and gets exactly it."""
    _tiers()
    response = client.post("/scorecards/new", data=_form(_data()))
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    template = ScorecardTemplate.get()
    assert response.headers["Location"] == f"/scorecards/{template.id}"
    assert template.as_data() == _data()
    assert (template.version, template.kind, template.created_by.id) == (1, "existing", admin.id)
    assert max_total(template) == 100
    assert [(t, template.grade_for(t).code) for t in (100, 75, 74, 60, 59, 0)] == [
        (100, "A"), (75, "A"), (74, "B"), (60, "B"), (59, "C"), (0, "C")]
    page = client.get(f"/scorecards/{template.id}").get_data(as_text=True)
    for text in ("客户性质", "政府/国有企业", "15 points", "10–15 points", "与最高层关系默契",
                 'data-testid="max-total">100<', "total ≥ 75", "60 ≤ total &lt; 75",
                 "total &lt; 60"):
        assert text in page, text
    event = AuditEvent.get(AuditEvent.action == "scorecard_created")
    assert event.actor_name == admin.username and event.after_data["name"] == "客户质量等级评估表"


def test_a_level_left_open_at_the_top_is_worth_fixed_points(client, admin):
    """Leaving "Points to" empty makes a fixed-points level (min == max)."""
    _tiers()
    data = _data()
    data["criteria"][0]["levels"][0]["max_points"] = None
    assert client.post("/scorecards/new", data=_form(data)).status_code == 303
    level = CriterionLevel.get(CriterionLevel.name == "政府/国有企业")
    assert (level.min_points, level.max_points, level.is_fixed) == (15, 15, True)


SEVEN = [(f"评分项{n}", 30 if n < 7 else 20,
          [("高", 20, 30 if n < 7 else 20), ("中", 10, 19), ("低", 0, 9)]) for n in range(1, 8)]


def test_another_company_gets_exactly_its_own_bands(app, admin):
    """Seven criteria and A ≥ 150, B ≥ 100, C ≥ 80, D below grade exactly at the boundaries."""
    _tiers("ABC")
    Tier.create(code="D", name_zh="D级", name_en="Tier D", rank=4)
    template = create_template("七项评分表", "existing", SEVEN,
                               [("A", 150), ("B", 100), ("C", 80), ("D", 0)], user=admin)
    assert len(template.criteria_with_levels()) == 7
    assert max_total(template) == 200
    grades = {t: template.grade_for(t).code for t in (0, 79, 80, 99, 100, 149, 150, 200)}
    assert grades == {0: "D", 79: "D", 80: "C", 99: "C", 100: "B", 149: "B", 150: "A",
                      200: "A"}
    assert [(b.tier.code, low, above) for b, low, above in template.band_ranges()] == [
        ("A", 150, None), ("B", 100, 150), ("C", 80, 100), ("D", 0, 80)]


def test_tiers_of_another_name_work_too(app):
    """A company grading 白金/黄金/铁/铅 uses its own tier codes, nothing assumes A–D."""
    for rank, (code, name) in enumerate([("PT", "白金"), ("AU", "黄金"), ("FE", "铁"),
                                         ("PB", "铅")], 1):
        Tier.create(code=code, name_zh=name, name_en=code, rank=rank)
    template = create_template("金属等级", "prospect", SEVEN[:2],
                               [("PT", 55), ("AU", 40), ("FE", 20), ("PB", 0)])
    assert [template.grade_for(t).code for t in (60, 55, 54, 20, 19)] == [
        "PT", "PT", "AU", "FE", "PB"]
    assert template.kind == "prospect"


def test_the_rules_need_no_request(app):
    """validate_template() names every broken rule by field path, outside any request."""
    _tiers()
    data = _data()
    data["criteria"][1]["levels"][0]["max_points"] = 16
    data["bands"][2]["min_total"] = 10
    assert [path for path, _ in validate_template(data)] == [
        "criteria.1.levels.0.max_points", "bands.2.min_total"]
    assert validate_template(_data()) == []


# --- Refusing ---------------------------------------------------------------------

def _break(change):
    data = _data()
    change(data)
    return data


def _set(path, value):
    def change(data):
        node = data
        *parents, last = path.split(".")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value
    return change


BROKEN = {
    # rule: (change, field id that shows the error, message fragment)
    "level above the criterion's maximum": (
        _set("criteria.1.levels.0.max_points", 16), "criteria-1-levels-0-max_points",
        "Above the criterion's maximum of 15 points"),
    "negative level": (
        _set("criteria.1.levels.2.min_points", -1), "criteria-1-levels-2-min_points",
        "cannot be negative"),
    "range upside down": (
        _set("criteria.1.levels.1.max_points", 4), "criteria-1-levels-1-max_points",
        "cannot end below its start"),
    "criterion max below 1": (
        _set("criteria.0.max_points", 0), "criteria-0-max_points", "at least 1 point"),
    "criterion without a name": (
        _set("criteria.2.name", " "), "criteria-2-name", "Give the criterion a name"),
    "two criteria of one name": (
        _set("criteria.3.name", "客户实力"), "criteria-3-name", "already called 客户实力"),
    "level without a name": (
        _set("criteria.0.levels.1.name", ""), "criteria-0-levels-1-name", "Give the level"),
    "template without a name": (_set("name", ""), "name", "Give the template a name"),
    "unknown tier": (_set("bands.0.tier", "Z"), "bands-0-tier", "There is no tier Z"),
    "a tier twice": (_set("bands.1.tier", "A"), "bands-1-tier", "has a band already"),
    "bands out of order": (
        lambda d: d.update(bands=[{"tier": "B", "min_total": 75}, {"tier": "A", "min_total": 60},
                                  {"tier": "C", "min_total": 0}]),
        "bands-1-tier", "from the best tier down"),
    "minimum not below the band above": (
        _set("bands.1.min_total", 75), "bands-1-min_total", "A lower tier needs a lower minimum"),
    "totals left without a grade": (
        _set("bands.2.min_total", 10), "bands-2-min_total", "The lowest band must start at 0"),
    "band out of reach": (
        _set("bands.0.min_total", 101), "bands-0-min_total", "No total can reach 101"),
    "not a whole number": (
        _set("criteria.0.max_points", "fifteen"), "criteria-0-max_points", "integer"),
}


@pytest.mark.parametrize("rule", list(BROKEN))
def test_each_rule_is_refused_at_its_field_and_nothing_is_saved(client, admin, rule):
    """A template that breaks a rule gets the message next to the field, a summary, no rows."""
    _tiers()
    change, field_id, message = BROKEN[rule]
    before = _counts()
    response = client.post("/scorecards/new", data=_form(_break(change)))
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    errors = _field_errors(html, field_id)
    assert any(message in e for e in errors), (errors, message)
    assert 'data-testid="error-summary"' in html and f'href="#{field_id}"' in html
    assert _counts() == before


@pytest.mark.parametrize("which", ["criteria", "bands"])
def test_an_empty_list_is_refused(client, admin, which):
    """No criteria, or no bands, is refused with a message at the list; nothing saved."""
    _tiers()
    before = _counts()
    data = _data()
    data[which] = []
    html = client.post("/scorecards/new", data=_form(data)).get_data(as_text=True)
    assert re.search(rf'<p class="error" id="{which}">Add at least one', html)
    assert _counts() == before


def test_a_template_breaking_its_bands_gets_a_clear_message(client, admin):
    """The bands of an invalid template are explained in words, and nothing is saved."""
    _tiers()
    before = _counts()
    html = client.post("/scorecards/new", data=_form(_data(bands=[("A", 75), ("B", 60),
                                                                   ("C", 20)]))).get_data(
        as_text=True)
    assert ("The lowest band must start at 0, or totals below 20 get no grade." in
            html.replace("&#39;", "'"))
    assert "Nothing was saved" in html
    assert _counts() == before
    with pytest.raises(TemplateInvalid) as refused, force_locale("en"):
        create_template("x", "existing", DEFAULT_CRITERIA, [("A", 75), ("B", 60), ("C", 20)])
    assert [path for path, _ in refused.value.errors] == ["bands.2.min_total"]
    assert _counts() == before


def test_a_name_in_use_is_refused(client, admin):
    """Two templates cannot share a name; the check happens at save, on the name field."""
    _tiers()
    create_template("客户质量等级评估表", "existing", DEFAULT_CRITERIA, DEFAULT_BANDS)
    before = _counts()
    html = client.post("/scorecards/new", data=_form(_data())).get_data(as_text=True)
    assert any("Another template is called" in e for e in _field_errors(html, "name"))
    assert _counts() == before


# --- Versions -------------------------------------------------------------------------

def test_editing_a_frozen_template_makes_version_2(client, admin):
    """A frozen version never changes: saving it makes version 2 of the same family."""
    _tiers()
    first = create_template("客户质量等级评估表", "existing", DEFAULT_CRITERIA, DEFAULT_BANDS)
    freeze(first)
    frozen = ScorecardTemplate.get_by_id(first.id)
    original = frozen.as_data()
    page = client.get(f"/scorecards/{first.id}/edit").get_data(as_text=True)
    assert 'data-testid="frozen-notice"' in page and "Save as version 2" in page
    changed = _data()
    changed["criteria"][0]["max_points"] = 20
    changed["bands"][0]["min_total"] = 80
    response = client.post(f"/scorecards/{first.id}/edit", data=_form(changed))
    assert response.status_code == 303
    second = ScorecardTemplate.get(ScorecardTemplate.version == 2)
    assert response.headers["Location"] == f"/scorecards/{second.id}"
    assert (second.family, second.frozen_at, second.created_by.id) == (
        first.family, None, admin.id)
    assert second.as_data() == changed and second.max_total == 105
    untouched = ScorecardTemplate.get_by_id(first.id)
    assert untouched.as_data() == original and untouched.frozen_at == frozen.frozen_at
    assert untouched.grade_for(75).code == "A" and second.grade_for(75).code == "B"
    event = AuditEvent.get(AuditEvent.action == "scorecard_versioned")
    assert event.object_id == str(second.id)
    assert event.before_data == original and event.after_data == changed
    # Version 1 is no longer the one to edit: its edit page leads to version 2.
    response = client.get(f"/scorecards/{first.id}/edit")
    assert response.headers["Location"] == f"/scorecards/{second.id}/edit"
    with pytest.raises(Exception, match="newer"):
        save_template(untouched, changed, admin)


def test_editing_an_unfrozen_template_changes_it_in_place(client, admin):
    """An unfrozen version is edited in place: same id, same version, audited."""
    _tiers()
    template = create_template("客户质量等级评估表", "existing", DEFAULT_CRITERIA, DEFAULT_BANDS)
    before = template.as_data()
    changed = _data()
    changed["criteria"].pop()  # drop 战略重要性 (20 points)
    changed["bands"] = [{"tier": "A", "min_total": 60}, {"tier": "B", "min_total": 45},
                        {"tier": "C", "min_total": 0}]
    response = client.post(f"/scorecards/{template.id}/edit", data=_form(changed))
    assert response.headers["Location"] == f"/scorecards/{template.id}"
    assert ScorecardTemplate.select().count() == 1
    again = ScorecardTemplate.get_by_id(template.id)
    assert again.version == 1 and again.as_data() == changed and again.max_total == 80
    assert Criterion.select().count() == 5
    event = AuditEvent.get(AuditEvent.action == "scorecard_updated")
    assert event.before_data == before and event.after_data == changed


def test_freezing_is_recorded_once(app):
    """freeze() sets frozen_at once, audits it, and does nothing the second time."""
    _tiers()
    template = create_template("t", "existing", DEFAULT_CRITERIA, DEFAULT_BANDS)
    freeze(template)
    stamp = ScorecardTemplate.get_by_id(template.id).frozen_at
    freeze(template)
    assert ScorecardTemplate.get_by_id(template.id).frozen_at == stamp is not None
    assert AuditEvent.select().where(AuditEvent.action == "scorecard_frozen").count() == 1


def test_history_lists_both_versions_and_what_changed(client, admin, make):
    """The history of either version shows every version, who made it, and the diff."""
    _tiers()
    maker = make.user(roles=("admin",), display_name="李建国")
    first = create_template("客户质量等级评估表", "existing", DEFAULT_CRITERIA, DEFAULT_BANDS,
                            user=maker)
    freeze(first)
    changed = _data()
    changed["criteria"][0]["max_points"] = 20
    assert client.post(f"/scorecards/{first.id}/edit", data=_form(changed)).status_code == 303
    second = ScorecardTemplate.get(ScorecardTemplate.version == 2)
    for template in (first, second):
        html = client.get(f"/scorecards/{template.id}/history").get_data(as_text=True)
        assert html.count('data-testid="version"') == 2
        table = html[html.index('<table class="table history"'):]
        assert table.index("Version 2") < table.index("Version 1")
        for text in ("李建国", "Admin Wang", "客户性质: max points", "<del>15</del> → 20",
                     "Frozen"):
            assert text in table, text


def test_the_list_shows_each_template_once_with_its_latest_version(client, admin):
    """One row per template: its latest version, whom it grades, whether it is in use."""
    _tiers()
    first = create_template("客户质量等级评估表", "existing", DEFAULT_CRITERIA, DEFAULT_BANDS)
    freeze(first)
    save_template(first, _data(), admin)
    create_template("潜在客户评估表", "prospect", SEVEN[:3], [("A", 60), ("B", 0)])
    html = client.get("/scorecards").get_data(as_text=True)
    rows = re.findall(r"<tr>\s*<td><a href=\"/scorecards/(\d+)\">([^<]+)</a>", html)
    second = ScorecardTemplate.get(ScorecardTemplate.version == 2)
    assert (str(second.id), "客户质量等级评估表") in rows and len(rows) == 2
    assert "v2" in html and "History (2 versions)" in html and "Prospects" in html
    assert "an earlier version is in use" in html


# --- The editor's rows -----------------------------------------------------------

def test_row_buttons_add_and_remove_rows_without_saving(client, admin):
    """Add/remove criterion, level and band re-render the form and write nothing."""
    _tiers()
    before = _counts()
    data = _data()

    def rows(action, body=None):
        html = client.post("/scorecards/new", data=body or _form(data, action)).get_data(
            as_text=True)
        return (html.count('data-testid="criterion"'), html.count('data-testid="level"'),
                html.count('data-testid="band"'), html)

    criteria, levels, bands, html = rows("add_level:1")
    assert (criteria, levels, bands) == (6, 19, 3)
    assert re.search(r'<input[^>]*autofocus[^>]*id="criteria-1-levels-3-name"', html)
    assert rows("remove_level:1:0")[:3] == (6, 17, 3)
    assert rows("add_criterion")[:3] == (7, 19, 3)
    assert rows("remove_criterion:5")[:3] == (5, 15, 3)
    assert rows("add_band")[:3] == (6, 18, 4)
    criteria, levels, bands, html = rows("remove_band:0")
    assert (criteria, levels, bands) == (6, 18, 2)
    assert 'value="B"' not in html.split('data-testid="band"')[0]  # band A is gone
    assert "error-summary" not in html  # a row action does not validate
    assert _counts() == before


def test_rows_survive_a_removal_in_the_middle(client, admin):
    """After removing criterion 2, the next post still pairs every field with its row."""
    _tiers()
    data = _data()
    body = _form(data, "remove_criterion:1")
    html = client.post("/scorecards/new", data=body).get_data(as_text=True)
    assert "客户实力" not in html
    # The browser posts the re-rendered names (criteria-0, -2, …): save works from them.
    names = dict(re.findall(r'name="([^"]+)"[^>]*value="([^"]*)"', html))
    names.update({k: v for k, v in re.findall(
        r'<textarea[^>]*name="([^"]+)"[^>]*>\s*([^<]*)</textarea>', html)})
    names.update({m[0]: m[1] for m in re.findall(
        r'<select[^>]*name="([^"]+)"[^>]*>(?:(?!</select>).)*?<option selected value="([^"]*)"',
        html, re.S)})
    names["action"] = "save"
    response = client.post("/scorecards/new", data=names)
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]
    saved = ScorecardTemplate.get()
    assert [c.name for c in saved.criteria_with_levels()] == [
        "客户性质", "客户成长性", "利润贡献", "客户关系", "战略重要性"]


def test_htmx_gets_the_form_alone_and_a_redirect_after_saving(client, admin):
    """With htmx a row action answers the form partial; a save answers HX-Redirect."""
    _tiers()
    response = client.post("/scorecards/new", data=_form(_data(), "add_band"),
                           headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert "<html" not in html and html.count('data-testid="band"') == 4
    assert "HX-Request" in response.headers["Vary"]
    # The swap brings the changed part into view; a failed save shows the summary.
    assert response.headers["HX-Reswap"] == "outerHTML show:#bands-card:top"
    failed = client.post("/scorecards/new", data=_form(_data(name="")),
                         headers={"HX-Request": "true"})
    assert failed.headers["HX-Reswap"] == "outerHTML show:top"
    assert 'data-testid="error-summary"' in failed.get_data(as_text=True)
    response = client.post("/scorecards/new", data=_form(_data()),
                           headers={"HX-Request": "true"})
    assert response.headers["HX-Redirect"] == f"/scorecards/{ScorecardTemplate.get().id}"


# --- Who may -----------------------------------------------------------------------

@pytest.mark.parametrize("role", ["committee_chair", "branch_manager", "sales_director"])
def test_only_admins_edit(client, login_as, make, role):
    """Other roles may read a template but get 403 on new and edit, and change nothing."""
    _tiers()
    template = create_template("客户质量等级评估表", "existing", DEFAULT_CRITERIA, DEFAULT_BANDS)
    login_as(role)
    before = _counts()
    for url in ("/scorecards/new", f"/scorecards/{template.id}/edit"):
        assert client.get(url).status_code == 403
        assert client.post(url, data=_form(_data(name="改"))).status_code == 403
    assert _counts() == before
    for url in ("/scorecards", f"/scorecards/{template.id}", f"/scorecards/{template.id}/history",
                f"/scorecards/{template.id}/sheet"):
        assert client.get(url).status_code == 200, url
    assert "New template" not in client.get("/scorecards").get_data(as_text=True)


# --- Reading ----------------------------------------------------------------------------

def test_the_blank_sheet_has_criteria_levels_and_lines_to_fill(client, admin):
    """The printable sheet lists criteria, levels with points, bands, and blank lines."""
    _tiers()
    template = create_template("客户质量等级评估表", "existing", DEFAULT_CRITERIA, DEFAULT_BANDS)
    response = client.get(f"/scorecards/{template.id}/sheet")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    for name, _top, levels in DEFAULT_CRITERIA:
        assert name in html
        for level, low, high in levels:
            assert level in html
            assert (f"{low} points" if low == high else f"{low}–{high} points") in html
    for text in ("Customer name", "Customer code", "Customer's branch", "Assessment date",
                 "Assessor", "Reviewer", "Comments", "total ≥ 75", "60 ≤ total &lt; 75",
                 "total &lt; 60"):
        assert text in html, text
    assert html.count('<td class="score"></td>') == len(DEFAULT_CRITERIA) + 1
    assert "css/sheet.css" in html and "css/app.css" not in html


def test_reading_a_template_takes_the_same_queries_whatever_its_size(client, admin):
    """criteria_with_levels() is two queries: the detail page does not grow with criteria."""
    _tiers()
    small = create_template("小", "existing", SEVEN[:1], [("A", 20), ("B", 0)])
    large = create_template("大", "existing", SEVEN, [("A", 150), ("B", 0)])

    def queries(template):
        seen = []
        db.obj.query_hooks.append(seen.append)
        try:
            assert client.get(f"/scorecards/{template.id}").status_code == 200
        finally:
            db.obj.query_hooks.remove(seen.append)
        return len(seen)

    assert queries(small) == queries(large)


def test_a_missing_template_is_404(client, admin):
    """Every page of a template that does not exist answers 404."""
    for suffix in ("", "/edit", "/history", "/sheet"):
        assert client.get(f"/scorecards/424242{suffix}").status_code == 404


# --- The migration -------------------------------------------------------------------

def test_the_migration_upgrades_a_version_2_database(backend, tmp_path):
    """Templates made before versions get family = id, stay unfrozen and keep their criteria."""
    from app import create_app
    from models.schema import upgrade
    url = f"sqlite:///{tmp_path / 'v2.db'}" if backend == "sqlite" else pg_url(make_pg_schema())
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": url})
    try:
        with app.app_context():
            assert upgrade(target=2) == [1, 2]
            db.execute_sql("INSERT INTO tier (code, name_zh, name_en, rank, colour) VALUES "
                           "('A', 'A级', 'A', 1, '#000000'), ('B', 'B级', 'B', 2, '#000000')")
            db.execute_sql("INSERT INTO scorecard_template (name, version, kind, created_at) "
                           "VALUES ('老评估表', 1, 'existing', '2026-01-05 08:00:00'), "
                           "('潜在客户表', 1, 'prospect', '2026-01-05 08:00:00')")
            old_id = db.execute_sql("SELECT id FROM scorecard_template WHERE name = '老评估表'"
                                    ).fetchone()[0]
            db.execute_sql(f"INSERT INTO criterion (template_id, position, name, guidance, "
                           f"max_points) VALUES ({old_id}, 1, '实力', '', 10)")
            criterion = db.execute_sql("SELECT id FROM criterion").fetchone()[0]
            db.execute_sql(f"INSERT INTO criterion_level (criterion_id, position, name, "
                           f"min_points, max_points) VALUES ({criterion}, 1, '强', 0, 10)")
            db.execute_sql(f"INSERT INTO grade_band (template_id, tier_id, min_total) VALUES "
                           f"({old_id}, 1, 5), ({old_id}, 2, 0)")
            upgrade()
            old = ScorecardTemplate.get_by_id(old_id)
            assert (old.family, old.version, old.frozen_at, old.description,
                    old.created_by) == (str(old_id), 1, None, "", None)
            families = {t.family for t in ScorecardTemplate.select()}
            assert len(families) == 2
            assert [lv.name for c in old.criteria_with_levels() for lv in c.levels] == ["强"]
            assert old.grade_for(5).code == "A" and old.grade_for(4).code == "B"
            # The upgraded template versions like a new one.
            freeze(old)
            data = copy.deepcopy(old.as_data())
            data["criteria"][0]["max_points"] = 12
            second = save_template(old, data)
            assert (second.family, second.version) == (old.family, 2)
            assert ScorecardTemplate.get_by_id(old_id).as_data()["criteria"][0]["max_points"] == 10
    finally:
        db.close()
        if backend == "postgresql":
            pg_execute(f"DROP SCHEMA {url.rsplit('%3D', 1)[1]} CASCADE")


def test_a_chinese_admin_reads_where_each_problem_is_in_chinese(client, login_as):
    """The editor's error summary names the place of a problem in Chinese (评分项 1 · 档次 2),
    with a full-width colon, and no English word such as "Level"."""
    _tiers()
    login_as("admin")  # reads Chinese
    html = client.post("/scorecards/new", data=_form(_break(
        _set("criteria.0.levels.1.name", "")))).get_data(as_text=True)
    summary = re.search(r'data-testid="error-summary">(.*?)</div>', html, re.S).group(1)
    items = [" ".join(re.sub(r"<[^>]+>", "", item).split())
             for item in re.findall(r"<li>(.*?)</li>", summary, re.S)]
    assert items == ["评分项 1 · 档次 2 · 档次名称：请填写档次名称。"]
    assert "Level" not in summary and "Criterion" not in summary
