"""Grading cycles: setup, guarded phases, preliminary sheets and committee scores."""
import datetime
import re

import pytest

from models import (
    Assessment,
    AuditEvent,
    Criterion,
    CriterionLevel,
    DomainError,
    Score,
    ScorecardTemplate,
)
from models.cycles import (
    StaleScore,
    save_cycle,
    save_score,
    submit_preliminary,
)
from models.phases import advance, missing_for_next_phase
from services.demo import ensure_reference_data


@pytest.fixture
def setup(app, make):
    """Two branches of customers, the default scorecard, a chair and two members."""
    return make_setup(app, make)


def make_setup(app, make):
    with app.test_request_context():
        template = ensure_reference_data()
        east, west = make.branch("E", "华东分公司"), make.branch("W", "西南分公司")
        customers = [make.customer(east, f"华东客户{n}") for n in range(3)]
        customers += [make.customer(west, f"西南客户{n}") for n in range(2)]
        chair = make.user("chair", roles=("committee_chair",))
        members = [make.user(f"m{n}", roles=("committee_member",)) for n in (1, 2)]
        bm_east = make.user("bm_e", roles=("branch_manager",), branch=east)
        bm_west = make.user("bm_w", roles=("branch_manager",), branch=west)
        admin = make.user("admin", roles=("admin",))
    return dict(template=template, east=east, west=west, customers=customers, chair=chair,
                members=members, bm_east=bm_east, bm_west=bm_west, admin=admin)


def _cycle(app, s, **overrides):
    values = dict(name="2027年度客户分级评定", year=2027, template_existing=s["template"],
                  template_prospect=None, scope={}, chair=s["chair"], members=s["members"])
    values.update(overrides)
    with app.test_request_context():
        return save_cycle(None, s["admin"], **values)


def _criteria(template):
    return list(Criterion.select().where(Criterion.template == template)
                .order_by(Criterion.position))


def _level(criterion, name):
    return CriterionLevel.get(CriterionLevel.criterion == criterion, CriterionLevel.name == name)


def test_setup_rules(app, setup):
    """The chair is not also a member; templates must fit the customer kind."""
    with app.test_request_context(), pytest.raises(DomainError):
        save_cycle(None, setup["admin"], name="x", year=2027,
                   template_existing=setup["template"], template_prospect=None, scope={},
                   chair=setup["chair"], members=[setup["chair"]])
    prospect = ScorecardTemplate.create(name="潜在客户评估表", kind="prospect")
    with app.test_request_context(), pytest.raises(DomainError):
        save_cycle(None, setup["admin"], name="x", year=2027, template_existing=prospect,
                   template_prospect=None, scope={}, chair=setup["chair"], members=[])
    cycle = _cycle(app, setup)
    assert sorted(m.username for m in cycle.members()) == ["m1", "m2"]
    assert AuditEvent.get(AuditEvent.action == "cycle_created").after_data["members"]


def test_only_the_chair_or_an_admin_starts_it_and_it_says_what_is_missing(app, setup):
    """A draft without members cannot start; a member cannot start it; the chair can."""
    cycle = _cycle(app, setup, members=[])
    with app.test_request_context():
        assert missing_for_next_phase(cycle)
        with pytest.raises(DomainError, match="委员会委员"):
            advance(cycle, setup["chair"])
    cycle = _cycle(app, setup, scope={"branches": [setup["east"].id]})
    with app.test_request_context():
        with pytest.raises(DomainError):
            advance(cycle, setup["members"][0])
        cycle = advance(cycle, setup["chair"])
    assert cycle.phase == "preliminary"
    sheets = list(Assessment.select().where(Assessment.cycle == cycle))
    assert len(sheets) == 3 and {a.branch_id for a in sheets} == {setup["east"].id}
    assert ScorecardTemplate.get_by_id(setup["template"].id).frozen_at is not None


def _started(app, setup):
    cycle = _cycle(app, setup)
    with app.test_request_context():
        return advance(cycle, setup["chair"])


def test_preliminary_scores_stay_in_their_ranges(app, setup):
    """A level's points range holds; a fixed level fills its points by itself."""
    cycle = _started(app, setup)
    sheet = Assessment.get(Assessment.cycle == cycle, Assessment.branch == setup["east"])
    nature, strength = _criteria(setup["template"])[:2]
    with app.test_request_context():
        score = save_score(sheet, setup["bm_east"], "preliminary", nature.id,
                           _level(nature, "股份公司").id, None, "", 0)
        assert score.points == 10 and score.revision == 1
        with pytest.raises(DomainError, match="10–15"):
            save_score(sheet, setup["bm_east"], "preliminary", strength.id,
                       _level(strength, "强大").id, 3, "", 0)
        save_score(sheet, setup["bm_east"], "preliminary", strength.id,
                   _level(strength, "强大").id, 13, "规模大", 0)
    assert Assessment.get_by_id(sheet.id).preliminary_total == 23


def test_another_branchs_manager_cannot_fill_the_sheet(app, setup):
    """Only the branch's own manager fills its preliminary sheets."""
    cycle = _started(app, setup)
    sheet = Assessment.get(Assessment.cycle == cycle, Assessment.branch == setup["east"])
    nature = _criteria(setup["template"])[0]
    with app.test_request_context(), pytest.raises(DomainError):
        save_score(sheet, setup["bm_west"], "preliminary", nature.id, None, 5, "", 0)
    assert Score.select().count() == 0


def _fill(sheet, user, template, points=10):
    for criterion in _criteria(template):
        level = CriterionLevel.select().where(
            CriterionLevel.criterion == criterion, CriterionLevel.min_points <= points,
            CriterionLevel.max_points >= points).first()
        save_score(sheet, user, "preliminary", criterion.id, level.id if level else None,
                   points if level else None, "", 0)


def test_submission_needs_every_criterion_and_then_locks(app, setup):
    """A sheet with a criterion unscored is refused; a submitted sheet no longer changes."""
    cycle = _started(app, setup)
    sheet = Assessment.get(Assessment.cycle == cycle, Assessment.branch == setup["east"])
    with app.test_request_context():
        with pytest.raises(DomainError, match="每个评分项"):
            submit_preliminary(sheet, setup["bm_east"])
        _fill(sheet, setup["bm_east"], setup["template"])
        submit_preliminary(sheet, setup["bm_east"], "整体良好")
        with pytest.raises(DomainError, match="已提交"):
            save_score(sheet, setup["bm_east"], "preliminary",
                       _criteria(setup["template"])[0].id, None, 5, "", 1)


def test_phase_guard_counts_open_sheets_per_branch(app, setup):
    """Moving to the committee lists each branch's unsubmitted sheets, and then allows it."""
    cycle = _started(app, setup)
    with app.test_request_context():
        missing = [str(m) for m in missing_for_next_phase(cycle)]
        assert any("华东分公司" in m and "3" in m for m in missing)
        assert any("西南分公司" in m and "2" in m for m in missing)
        for sheet in Assessment.select().where(Assessment.cycle == cycle):
            user = setup["bm_east"] if sheet.branch_id == setup["east"].id else setup["bm_west"]
            _fill(sheet, user, setup["template"])
            submit_preliminary(sheet, user)
        assert missing_for_next_phase(cycle) == []
        assert advance(cycle, setup["admin"]).phase == "committee"


def _in_committee(app, setup):
    cycle = _started(app, setup)
    with app.test_request_context():
        for sheet in Assessment.select().where(Assessment.cycle == cycle):
            user = setup["bm_east"] if sheet.branch_id == setup["east"].id else setup["bm_west"]
            _fill(sheet, user, setup["template"])
            submit_preliminary(sheet, user)
        return advance(cycle, setup["chair"])


def test_members_score_separately_and_stale_tabs_are_caught(app, setup):
    """Two members' scores live side by side; a stale revision is refused, not overwritten."""
    cycle = _in_committee(app, setup)
    sheet = Assessment.select().where(Assessment.cycle == cycle).first()
    growth = _criteria(setup["template"])[2]
    m1, m2 = setup["members"]
    with app.test_request_context():
        a = save_score(sheet, m1, "committee", growth.id, None, 12, "", 0)
        b = save_score(sheet, m2, "committee", growth.id, None, 4, "", 0)
        assert (a.points, b.points) == (12, 4)
        save_score(sheet, m1, "committee", growth.id, None, 13, "", a.revision)
        with pytest.raises(StaleScore) as stale:  # the second tab still shows revision 1
            save_score(sheet, m1, "committee", growth.id, None, 2, "", a.revision)
        assert stale.value.current.points == 13
        with pytest.raises(DomainError):  # a branch manager is not on the committee
            save_score(sheet, setup["bm_east"], "committee", growth.id, None, 5, "", 0)
    points = {s.member_id: s.points for s in Score.select().where(
        Score.assessment == sheet, Score.stage == "committee")}
    assert points == {m1.id: 13, m2.id: 4}


def test_each_sheet_keeps_its_totals_whoever_writes_the_scores(app, setup):
    """The preliminary total and the committee mean the summary reads off each sheet
    follow every score written, changed or removed, and agree with the chair's panel."""
    from models.cycles import committee_summary
    cycle = _in_committee(app, setup)  # every preliminary sheet: 10 points x 6 criteria
    sheet, other = list(Assessment.select().where(Assessment.cycle == cycle))[:2]
    criteria = _criteria(setup["template"])
    m1, m2 = setup["members"]

    def kept(assessment):
        row = Assessment.get_by_id(assessment.id)
        return row.preliminary_total, row.committee_mean

    assert kept(sheet) == (60, None) and isinstance(kept(sheet)[0], int)  # whole points
    with app.test_request_context():
        save_score(sheet, m1, "committee", criteria[0].id, None, 12, "", 0)
        save_score(sheet, m1, "committee", criteria[1].id, None, 8, "", 0)
        assert kept(sheet) == (60, 20)
        first = save_score(sheet, m2, "committee", criteria[0].id, None, 5, "", 0)
        assert kept(sheet) == (60, 12.5)  # (20 + 5) / 2 members
        save_score(sheet, m2, "committee", criteria[0].id, None, 15, "", first.revision)
        assert kept(sheet) == (60, 17.5)
        assert kept(sheet)[1] == committee_summary(sheet)["mean"]
    # Written another way (a bulk load, a removal): the triggers still follow.
    Score.insert_many([{"assessment": other.id, "criterion": criteria[0].id,
                        "stage": "committee", "member": m1.id, "points": 7, "revision": 1,
                        "comment": "", "updated_at": datetime.datetime(2027, 3, 25)}]).execute()
    assert kept(other) == (60, 7)
    Score.delete().where(Score.assessment == sheet.id, Score.member == m2.id).execute()
    Score.update(points=Score.points + 1).where(Score.assessment == sheet.id,
                                                Score.stage == "preliminary").execute()
    assert kept(sheet) == (66, 20)
    Score.delete().where(Score.assessment == sheet.id).execute()
    assert kept(sheet) == (None, None)


def test_final_grade_defaults_to_the_mean_and_locks(app, setup):
    """The mean's band needs no words; another grade needs a rationale; then saves stop."""
    from models import Tier
    from models.cycles import committee_summary, finalise, reopen
    cycle = _in_committee(app, setup)
    sheet = Assessment.select().where(Assessment.cycle == cycle).first()
    m1, m2 = setup["members"]
    criteria = _criteria(setup["template"])
    with app.test_request_context():
        # m1 gives 80 in all, m2 gives 70 in all (maxima 15, 15, 15, 15, 20, 20).
        for criterion, p1, p2 in zip(criteria, (12, 12, 12, 12, 16, 16),
                                     (10, 10, 10, 10, 15, 15)):
            save_score(sheet, m1, "committee", criterion.id, None, p1, "", 0)
            save_score(sheet, m2, "committee", criterion.id, None, p2, "", 0)
        summary = committee_summary(sheet)
        assert summary["member_totals"] == {m1.id: 80, m2.id: 70}
        assert summary["mean"] == 75 and summary["mean_grade"].code == "A"
        assert summary["disagree"]  # 80 (A) and 70 (B) lie on two sides of 75
        tier_b = Tier.get(Tier.code == "B")
        with pytest.raises(DomainError, match="理由"):
            finalise(sheet, setup["chair"], tier_b)
        with pytest.raises(DomainError, match="主任"):
            finalise(sheet, m1, Tier.get(Tier.code == "A"))
        finalise(sheet, setup["chair"], tier_b, rationale="回款率偏低，暂定B级")
        with pytest.raises(DomainError, match="最终等级"):
            save_score(sheet, m1, "committee", criteria[0].id, None, 1, "", 1)
        reopen(sheet, setup["chair"], "补充材料")
        assert Assessment.get_by_id(sheet.id).final_tier_id is None
    actions = [e.action for e in AuditEvent.select().order_by(AuditEvent.id)]
    assert "assessment_finalised" in actions and "assessment_reopened" in actions


# --- Over HTTP ------------------------------------------------------------------

def test_setup_and_start_through_the_pages(app, client, setup):
    """An admin sets a cycle up; a member may not start it; the chair starts it."""
    from tests.conftest import login
    login(client, "admin")
    response = client.post("/cycles/new", data={
        "name": "2027年度客户分级评定", "year": "2027",
        "template_existing": str(setup["template"].id), "template_prospect": "0",
        "chair": str(setup["chair"].id), "members": [str(m.id) for m in setup["members"]],
        "branches": [str(setup["east"].id)], "disagreement_points": "10"})
    assert response.status_code == 303
    detail = response.headers["Location"]
    page = client.get(detail).get_data(as_text=True)
    assert "2027年度客户分级评定" in page and "草稿" in page
    client.post("/logout")
    login(client, "m1")
    assert client.post(detail + "/advance").status_code == 403
    client.post("/logout")
    login(client, "chair")
    client.post(detail + "/advance")
    page = client.get(detail).get_data(as_text=True)
    assert "华东分公司：3 份初评表尚未提交" in page
    assert Assessment.select().count() == 3


def test_branch_manager_fills_the_sheet_with_autosave(app, client, setup):
    """Each field saves as it changes; the total updates; a stale tab is told, not obeyed."""
    from tests.conftest import login
    cycle = _started(app, setup)
    sheet = Assessment.get(Assessment.cycle == cycle, Assessment.branch == setup["east"])
    theirs = Assessment.get(Assessment.cycle == cycle, Assessment.branch == setup["west"])
    nature, strength = _criteria(setup["template"])[:2]
    login(client, "bm_e")
    assert client.get(f"/assessments/{theirs.id}").status_code == 404
    assert client.post(f"/assessments/{theirs.id}/scores", data={
        "criterion": nature.id, "points": 5, "stage": "preliminary"}).status_code == 404
    page = client.get(f"/assessments/{sheet.id}").get_data(as_text=True)
    assert "客户质量等级评估表" in page and sheet.customer.name in page
    hx = {"HX-Request": "true"}
    row = client.post(f"/assessments/{sheet.id}/scores", headers=hx, data={
        "criterion": nature.id, "level": _level(nature, "国有企业").id if CriterionLevel.select()
        .where(CriterionLevel.name == "国有企业").exists() else _level(nature, "股份公司").id,
        "points": "", "comment": "", "revision": 0, "stage": "preliminary"}
    ).get_data(as_text=True)
    assert "已保存" in row and 'hx-swap-oob="true"' in row
    # A save answers with what changed, never the controls the user may be typing in.
    assert "<select" not in row and f'id="revision-{nature.id}" value="1"' in row
    refused = client.post(f"/assessments/{sheet.id}/scores", headers=hx, data={
        "criterion": strength.id, "level": _level(strength, "强大").id, "points": 20,
        "revision": 0, "stage": "preliminary"})
    row = refused.get_data(as_text=True)
    assert "10" in row and "15" in row and "state-error" in row
    # Refused, it too answers only the parts that change: what was typed stays.
    assert "HX-Retarget" not in refused.headers and "<select" not in row
    client.post(f"/assessments/{sheet.id}/scores", headers=hx, data={
        "criterion": strength.id, "level": _level(strength, "强大").id, "points": 12,
        "revision": 0, "stage": "preliminary"})
    stale = client.post(f"/assessments/{sheet.id}/scores", headers=hx, data={
        "criterion": strength.id, "level": _level(strength, "一般").id, "points": 6,
        "revision": 0, "stage": "preliminary"}).get_data(as_text=True)
    assert "state-stale" in stale and 'value="12"' in stale
    assert Score.get(Score.criterion == strength.id).points == 12
    assert Assessment.get_by_id(sheet.id).preliminary_total == 22


def _row_parts(text, criterion):
    """The state message and the points input an autosave answered for one row."""
    state = re.search(
        rf'<span class="save-state([^"]*)" id="state-{criterion.id}"[^>]*>(.*?)</span>', text, re.S)
    box = re.search(rf'<input type="text" name="points" id="points-input-{criterion.id}"[^>]*>',
                    text)
    return (state[1].strip(), state[2].strip()) if state else None, box[0] if box else None


@pytest.mark.parametrize("level, typed, reason", [
    ("强大", "99", "该档次分值为 10–15 分。"),  # outside the level's range
    (None, "99", "本项最高 15 分。"),  # above the criterion's maximum
    ("强大", "12.5", "请填写整数。"),  # fractional where points are whole
    (None, "-3", "分数不能为负数。"),
    ("强大", "十二", "请填写整数。"),
])
def test_refused_points_say_why_beside_the_field_and_keep_what_was_typed(
        app, client, setup, level, typed, reason):
    """Points that do not fit are refused beside the field: the typed value stays, marked,
    nothing is stored, "saved" is never shown and the total reads as incomplete."""
    from tests.conftest import login
    cycle = _started(app, setup)
    sheet = Assessment.get(Assessment.cycle == cycle, Assessment.branch == setup["east"])
    strength = _criteria(setup["template"])[1]
    data = {"criterion": strength.id, "level": _level(strength, level).id if level else "",
            "points": typed, "comment": "规模大", "revision": 0, "stage": "preliminary"}
    login(client, "bm_e")
    answer = client.post(f"/assessments/{sheet.id}/scores", data=data,
                         headers={"HX-Request": "true"})
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200  # htmx swaps only a 2xx answer
    (state, message), box = _row_parts(text, strength)
    assert "state-error" in state and message == reason
    assert f'value="{typed}"' in box and 'aria-invalid="true"' in box
    assert "已保存" not in text and "已评 0/6 项" in text
    assert 'id="revision-' not in text  # the row keeps the revision it had
    page = client.post(f"/assessments/{sheet.id}/scores", data=data)  # without script
    text = page.get_data(as_text=True)
    assert page.status_code == 422
    (state, message), box = _row_parts(text, strength)
    assert "state-error" in state and message == reason
    assert f'value="{typed}"' in box and 'value="规模大"' in text
    assert Score.select().count() == 0


def test_a_refused_change_keeps_the_score_saved_before(app, client, setup):
    """A refused change stores nothing: the earlier score stays, and the row is not
    counted in the total while it shows the refused value."""
    from tests.conftest import login
    cycle = _started(app, setup)
    sheet = Assessment.get(Assessment.cycle == cycle, Assessment.branch == setup["east"])
    strength = _criteria(setup["template"])[1]
    login(client, "bm_e")
    hx = {"HX-Request": "true"}
    data = {"criterion": strength.id, "level": _level(strength, "强大").id, "points": 13,
            "revision": 0, "stage": "preliminary"}
    assert "已保存" in client.post(f"/assessments/{sheet.id}/scores", data=data,
                                   headers=hx).get_data(as_text=True)
    text = client.post(f"/assessments/{sheet.id}/scores", headers=hx,
                       data=dict(data, points=16, revision=1)).get_data(as_text=True)
    assert "该档次分值为 10–15 分" in text and "已保存" not in text
    assert "已评 0/6 项" in text and f'id="points-{strength.id}" hx-swap-oob="true">—' in text
    score = Score.get(Score.criterion == strength.id)
    assert (score.points, score.revision) == (13, 1)


def test_a_range_level_proposes_points_that_are_not_saved(app, client, setup):
    """Choosing a level whose points are a range saves the level and proposes its midpoint
    (rounded to whole points), marked as not saved; the sheet stays incomplete until
    points are sent."""
    from tests.conftest import login
    cycle = _started(app, setup)
    sheet = Assessment.get(Assessment.cycle == cycle, Assessment.branch == setup["east"])
    strength = _criteria(setup["template"])[1]
    login(client, "bm_e")
    hx = {"HX-Request": "true"}
    data = {"criterion": strength.id, "level": _level(strength, "强大").id, "points": "",
            "revision": 0, "stage": "preliminary"}
    text = client.post(f"/assessments/{sheet.id}/scores", data=data,
                       headers=hx).get_data(as_text=True)
    (state, message), box = _row_parts(text, strength)
    assert "state-proposed" in state and "已保存" not in text
    assert message == "该档次分值为 10–15 分，建议 13 分（尚未保存）：按回车确认，或改填其他分数。"
    assert 'value="13"' in box and 'data-proposed="13"' in box
    assert "已评 0/6 项" in text and "按等级区间" not in text
    score = Score.get(Score.criterion == strength.id)
    assert (score.level, score.points) == (_level(strength, "强大").id, None)
    # The sheet shows the proposal again, still unsaved; sent, it is saved.
    page = client.get(f"/assessments/{sheet.id}").get_data(as_text=True)
    (state, message), box = _row_parts(page, strength)
    assert "state-proposed" in state and 'value="13"' in box
    text = client.post(f"/assessments/{sheet.id}/scores", headers=hx,
                       data=dict(data, points=13, revision=1)).get_data(as_text=True)
    assert "已保存" in text and "已评 1/6 项" in text
    assert Score.get(Score.criterion == strength.id).points == 13


def test_in_committee_a_range_level_proposes_the_preliminary_points(app, client, setup):
    """A member choosing a range level is offered the preliminary sheet's points when
    they lie in the range, else the range's midpoint."""
    from tests.conftest import login
    cycle = _in_committee(app, setup)  # every preliminary score is 10
    sheet = Assessment.select().where(Assessment.cycle == cycle).first()
    strength = _criteria(setup["template"])[1]
    login(client, "m1")
    for level, proposed in (("强大", "10"), ("较弱", "3")):  # 10–15 holds 10; 0–5 does not
        revision = Score.select().where(Score.member == setup["members"][0].id).count()
        text = client.post(f"/assessments/{sheet.id}/scores", headers={"HX-Request": "true"},
                           data={"criterion": strength.id, "level": _level(strength, level).id,
                                 "points": "", "revision": revision, "stage": "committee"}
                           ).get_data(as_text=True)
        (state, _message), box = _row_parts(text, strength)
        assert "state-proposed" in state and f'value="{proposed}"' in box, text


def test_a_refused_submit_names_the_rows_and_keeps_the_overall_comment(app, client, setup):
    """Submitting an incomplete sheet names every criterion without points, marks their
    rows (and those showing a change not saved), keeps the overall comment, and leaves
    the sheet open; its total reads
    "4 of 6 scored", never a grade."""
    from tests.conftest import login
    cycle = _started(app, setup)
    sheet = Assessment.get(Assessment.cycle == cycle, Assessment.branch == setup["east"])
    criteria = _criteria(setup["template"])
    with app.test_request_context():
        for criterion in criteria[:2] + criteria[3:5]:
            save_score(sheet, setup["bm_east"], "preliminary", criterion.id, None, 10, "", 0)
    missing = [criteria[2], criteria[5]]
    login(client, "bm_e")
    page = client.get(f"/assessments/{sheet.id}").get_data(as_text=True)
    assert "已评 4/6 项，尚不能定级。" in page and "按等级区间" not in page
    comment = "战略客户，建议维持A级\n回款稳定"
    answer = client.post(f"/assessments/{sheet.id}/submit", data={"comment": comment})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422
    names = "、".join(c.name for c in missing)
    assert f"提交前请为每个评分项打分。尚未打分：{names}。" in page
    assert comment in page  # the overall comment is still in its box
    for criterion in criteria:
        marked = f'id="need-{criterion.id}">尚未打分</span>' in page
        assert marked == (criterion in missing), criterion.name
    assert re.search(rf'id="level-input-{missing[0].id}"[^>]*data-autofocus', page)
    answer = client.post(f"/assessments/{sheet.id}/submit", data={"comment": comment},
                         headers={"HX-Request": "true"})
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200 and f"尚未打分：{names}。" in text
    assert f'data-first="{missing[0].id}"' in text and "<textarea" not in text
    assert text.count("尚未打分</span>") == 2 and 'hx-swap-oob="true"' in text
    # A row whose screen shows a change that was refused is named too (the sheet's script
    # says which), though points for it are stored.
    text = client.post(f"/assessments/{sheet.id}/submit", headers={"HX-Request": "true"},
                       data={"comment": comment, "unsaved": [criteria[0].id]}
                       ).get_data(as_text=True)
    assert f"修改尚未保存：{criteria[0].name}。" in text
    # Both reasons read as Chinese sentences do: side by side, no space between.
    assert f"尚未打分：{names}。修改尚未保存：{criteria[0].name}。" in text
    assert f'data-first="{criteria[0].id}"' in text
    assert f'id="need-{criteria[0].id}" hx-swap-oob="true">修改未保存</span>' in text
    assert Assessment.get_by_id(sheet.id).preliminary_submitted_at is None
    with app.test_request_context():
        for criterion in missing:
            save_score(sheet, setup["bm_east"], "preliminary", criterion.id, None, 10, "", 0)
    page = client.get(f"/assessments/{sheet.id}").get_data(as_text=True)
    assert "按等级区间：B级" in page and "尚不能定级" not in page
    answer = client.post(f"/assessments/{sheet.id}/submit", data={"comment": comment},
                         headers={"HX-Request": "true"})
    assert answer.headers["HX-Redirect"] == f"/assessments/{sheet.id}"
    assert Assessment.get_by_id(sheet.id).preliminary_comment == comment


def test_the_agenda_tells_an_unscored_sheet_from_a_zero(app, client, setup):
    """Before the committee review, a sheet nobody has scored has no preliminary total and
    no grade on the agenda (not "0 points, the lowest tier"), and sorts after the scored."""
    from models.cycles import agenda
    from tests.conftest import login
    cycle = _started(app, setup)
    sheets = list(Assessment.select().where(Assessment.cycle == cycle)
                  .order_by(Assessment.agenda_position))
    scored = sheets[-1]
    with app.test_request_context():
        _fill(scored, setup["bm_west"] if scored.branch_id == setup["west"].id
              else setup["bm_east"], setup["template"], 15)
        rows = agenda(cycle, order="grade")
    assert (rows[0].id, rows[0].preliminary, rows[0].preliminary_grade.code) == (
        scored.id, 90, "A")
    assert all(r.preliminary is None and r.preliminary_grade is None for r in rows[1:])
    login(client, "chair")
    page = client.get(f"/cycles/{cycle.id}/meeting").get_data(as_text=True)
    assert page.count("尚未初评") == len(sheets) - 1 and "初评 90 分 A级" in page
    assert "初评 0 分" not in page


def test_meeting_board_from_agenda_to_final_grade(app, client, setup):
    """The chair opens a customer, members score it, the chair sees it and sets the grade."""
    from tests.conftest import login
    cycle = _in_committee(app, setup)
    sheet = Assessment.select().where(Assessment.cycle == cycle).order_by(
        Assessment.agenda_position).first()
    criteria = _criteria(setup["template"])
    login(client, "bm_e")
    assert client.get(f"/cycles/{cycle.id}/meeting").status_code == 404  # not on the committee
    client.post("/logout")
    login(client, "chair")
    page = client.get(f"/cycles/{cycle.id}/meeting").get_data(as_text=True)
    assert "议程" in page and sheet.customer.name in page
    assert "初评 60 分" in page  # each agenda entry's preliminary total, in whole points
    client.post(f"/cycles/{cycle.id}/meeting/current", data={"assessment": sheet.id})
    state = client.get(f"/cycles/{cycle.id}/meeting/state?seen=")
    assert state.headers.get("HX-Refresh") == "true"
    assert client.get(f"/cycles/{cycle.id}/meeting/state?seen={sheet.id}").status_code == 204
    for username, points in (("m1", (12, 12, 12, 12, 16, 16)), ("m2", (3, 3, 3, 3, 4, 4))):
        client.post("/logout")
        login(client, username)
        page = client.get(f"/cycles/{cycle.id}/meeting").get_data(as_text=True)
        assert sheet.customer.name in page and 'name="stage" value="committee"' in page
        for criterion, p in zip(criteria, points):
            row = client.post(f"/assessments/{sheet.id}/scores", headers={"HX-Request": "true"},
                              data={"criterion": criterion.id, "points": p, "revision": 0,
                                    "stage": "committee"}).get_data(as_text=True)
            assert "已保存" in row, row
    client.post("/logout")
    login(client, "chair")
    board = client.get(f"/cycles/{cycle.id}/meeting/board?assessment={sheet.id}",
                       headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<b>80</b>" in board and "<b>20</b>" in board and "<b>50</b>" in board
    assert 'data-testid="disagree"' in board
    tier_c = next(t for t in __import__("models").Tier.select() if t.code == "C")
    client.post(f"/assessments/{sheet.id}/finalise", data={"tier": tier_c.id})
    final = Assessment.get_by_id(sheet.id)
    assert final.final_tier_id == tier_c.id and final.final_total == 50
    # A member's screen, drawn before the grade was set, learns of it at its next poll.
    client.post("/logout")
    login(client, "m1")
    state = client.get(f"/cycles/{cycle.id}/meeting/state?seen={sheet.id}&final=0")
    assert state.headers.get("HX-Refresh") == "true"
    late = client.post(f"/assessments/{sheet.id}/scores", headers={"HX-Request": "true"},
                       data={"criterion": criteria[0].id, "points": 1, "revision": 1,
                             "stage": "committee"})  # a save already on its way: refused
    assert "该客户的最终等级已确定，分数不能再修改。" in late.get_data(as_text=True)
    assert late.headers["HX-Retarget"] == f"#criterion-{criteria[0].id}"
    assert Score.get(Score.assessment == sheet.id, Score.member == setup["members"][0].id,
                     Score.criterion == criteria[0].id).points == 12
    assert client.get(f"/cycles/{cycle.id}/meeting/state?seen={sheet.id}&final=1"
                      ).status_code == 204
    page = client.get(f"/cycles/{cycle.id}/meeting").get_data(as_text=True)
    assert "主任已确定最终等级" in page and "C级" in page


def test_summary_lists_movements_and_what_if(app, client, setup, monkeypatch):
    """The summary counts results per tier against before, lists movements, and re-grades
    for a what-if without saving anything."""
    from models import Tier
    from models.cycles import cycle_summary, finalise
    from tests.conftest import login
    cycle = _in_committee(app, setup)  # every preliminary sheet is 10 points x 6 = 60: a B
    sheets = list(Assessment.select().where(Assessment.cycle == cycle))
    tiers = {t.code: t for t in Tier.select()}
    with app.test_request_context():
        for criterion in _criteria(setup["template"]):
            save_score(sheets[0], setup["members"][0], "committee", criterion.id, None,
                       criterion.max_points, "", 0)
        finalise(sheets[0], setup["chair"], tiers["A"])  # 100 points: an A
        summary = cycle_summary(cycle)
        counts = {tier.code: now for tier, now, _before in summary["distribution"]}
        assert counts == {"A": 1, "B": 4, "C": 0, "D": 0}
        assert [r.id for r in summary["top_list"]] == [sheets[0].id]
        assert len(summary["movements"]["new"]) == 5  # the test customers had no tier yet
        # In agenda order, as the meeting and the report take the sheets.
        order = [a.id for a in Assessment.select().where(Assessment.cycle == cycle)
                 .order_by(Assessment.agenda_position)]
        assert [r.id for r in summary["movements"]["new"]] == order
        first = summary["movements"]["new"][0]
        sheet = Assessment.get_by_id(first.id)
        assert (first.customer_code, first.customer_name, first.branch_name) == (
            sheet.customer.code, sheet.customer.name, sheet.branch.name)
        short = cycle_summary(cycle, shown=2)  # the page lists the first few of each
        assert short["movements"]["new"] == summary["movements"]["new"][:2]
        assert short["counts"]["new"] == 5 and short["counts"]["top_list"] == 1
        what_if = cycle_summary(cycle, {tiers["A"].id: 95, tiers["B"].id: 61,
                                        tiers["C"].id: 0})
        counts = {tier.code: now for tier, now, _before in what_if["distribution"]}
        assert counts == {"A": 1, "B": 0, "C": 4, "D": 0}
    assert Assessment.get_by_id(sheets[1].id).final_tier_id is None  # nothing saved
    login(client, "chair")
    page = client.get(f"/cycles/{cycle.id}").get_data(as_text=True)
    assert "<svg" in page and "等级分布" in page and "首次定级 5 位" in page
    # The page lists the first sheets of each list and counts the rest: with everyone an
    # A (what if A began at 0), two of five, then "5 more".
    monkeypatch.setattr("views.cycles.SUMMARY_SHOWN", 2)
    everyone = client.get(f"/cycles/{cycle.id}?band_{tiers['A'].id}=0").get_data(as_text=True)
    top = re.search(r"A级客户名单 <small[^>]*>(\d+)</small>(.*?)</section>", everyone, re.S)
    assert top.group(1) == "5" and "另有 3 位" in top.group(2)
    assert re.findall(r'<a href="/assessments/(\d+)">', top.group(2)) == [str(i) for i in order[:2]]
    top = re.search(r"A级客户名单 <small[^>]*>1</small>(.*?)</section>", page, re.S).group(1)
    assert '<td class="num">100</td>' in top  # the finalised total, in whole points
    fragment = client.get(f"/cycles/{cycle.id}?band_{tiers['A'].id}=95&band_{tiers['B'].id}=61"
                          f"&band_{tiers['C'].id}=0", headers={"HX-Request": "true"})
    assert "<html" not in fragment.get_data(as_text=True)


def test_dashboard_shows_the_grading_work_waiting(app, client, setup):
    """A branch manager sees the branch's open sheets; a member sees the meeting."""
    from tests.conftest import login
    cycle = _started(app, setup)
    login(client, "bm_e")
    page = client.get("/").get_data(as_text=True)
    assert cycle.name in page and 'class="big">3<' in page and "待填写" in page
    client.post("/logout")
    with app.test_request_context():
        for sheet in Assessment.select().where(Assessment.cycle == cycle):
            user = setup["bm_east"] if sheet.branch_id == setup["east"].id else setup["bm_west"]
            _fill(sheet, user, setup["template"])
            submit_preliminary(sheet, user)
        advance(cycle, setup["chair"])
    login(client, "m1")
    page = client.get("/").get_data(as_text=True)
    assert f"/cycles/{cycle.id}/meeting" in page


def test_sales_hint_places_the_customer_in_the_pyramid(app, client, setup, make):
    """Top 1% of sales is platinum, the next 4% gold; the sheet shows it as a hint only."""
    from models import CustomerYear
    from models.cycles import sales_hint
    customers = [make.customer(setup["east"], f"金字塔客户{n}") for n in range(100)]
    for n, customer in enumerate(customers):
        CustomerYear.create(customer=customer, year=2026, sales=(100 - n) * 10000)
    with app.test_request_context():
        assert str(sales_hint(customers[0].id, 2026)["layer"]) == "白金"
        assert sales_hint(customers[3].id, 2026)["top_percent"] == 4.0
        assert str(sales_hint(customers[3].id, 2026)["layer"]) == "黄金"
        assert str(sales_hint(customers[10].id, 2026)["layer"]) == "铁"
        assert str(sales_hint(customers[50].id, 2026)["layer"]) == "铅"
        assert str(sales_hint(customers[3].id, 2026, cuts=(5, 10, 30))["layer"]) == "白金"
        assert sales_hint(setup["customers"][0].id, 2026) is None
    cycle = _started(app, setup)
    sheet = Assessment.get(Assessment.cycle == cycle, Assessment.customer == customers[0])
    from tests.conftest import login
    login(client, "bm_e")
    page = client.get(f"/assessments/{sheet.id}").get_data(as_text=True)
    assert 'data-testid="hint"' in page and "白金" in page and "仅供参考" in page


def test_the_sheet_hints_where_the_portfolio_places_the_customer(app, client, setup, make):
    """A customer with a share and an upcoming volume gets the portfolio's hint on its
    sheet, naming the year, the figures and the quadrant's strategy; one without them
    gets none."""
    from decimal import Decimal

    from models.customers import save_portfolio_figures
    placed, unplaced = setup["customers"][0], setup["customers"][1]
    with app.test_request_context():
        save_portfolio_figures(placed, setup["chair"], year=2026,
                               share_of_wallet=Decimal("55"), upcoming_volume=Decimal("3e6"))
    cycle = _started(app, setup)
    from tests.conftest import login
    login(client, "bm_e")
    for customer, expected in ((placed, True), (unplaced, False)):
        sheet = Assessment.get(Assessment.cycle == cycle, Assessment.customer == customer)
        response = client.get(f"/assessments/{sheet.id}")
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        assert ('data-testid="portfolio-hint"' in page) is expected, customer.name
    sheet = Assessment.get(Assessment.cycle == cycle, Assessment.customer == placed)
    page = client.get(f"/assessments/{sheet.id}").get_data(as_text=True)
    assert "组合参考：2026年我方份额 55.0%、近期采购量 300.00 万元，属“重点保持”象限。" in page


def test_summary_grades_each_sheet_on_its_own_non_default_scorecard(app, client, setup, make):
    """A company with seven criteria and A ≥ 150, B ≥ 100, C ≥ 80, and a prospects' card of
    its own, gets exactly those grades, counts and movements in the summary and agenda."""
    from models import Customer, Tier
    from models.cycles import agenda, cycle_summary
    from models.scorecards import create_template
    from tests.conftest import login
    tiers = {t.code: t for t in Tier.select()}
    seven = [(f"评分项{n}", 30 if n < 7 else 20,
              [("高", 20, 30 if n < 7 else 20), ("中", 10, 19), ("低", 0, 9)])
             for n in range(1, 8)]
    with app.test_request_context():
        existing = create_template("七项评分表", "existing", seven,
                                   [("A", 150), ("B", 100), ("C", 80), ("D", 0)])
        prospect = create_template("潜在客户评分表", "prospect",
                                   [("需求", 50, [("大", 30, 50), ("小", 0, 29)])],
                                   [("B", 40), ("D", 0)])
    for customer, tier in zip(setup["customers"], "ABCD"):
        Customer.update(tier=tiers[tier].id).where(Customer.id == customer.id).execute()
    newcomer = make.customer(setup["east"], "潜在客户堃喆有限公司", kind="prospect")
    names = [c.name for c in setup["customers"]]
    cycle = _cycle(app, setup, template_existing=existing, template_prospect=prospect)
    with app.test_request_context():
        cycle = advance(cycle, setup["chair"])
        sheets = {s.customer_id: s for s in Assessment.select().where(Assessment.cycle == cycle)}
        # Existing customers (tiers before A, B, C, D, none), points per criterion ->
        # totals 150 (A, on the boundary), 84 (C: down), 105 (B: up), 70 (D), 140 (B: new).
        # The prospect: 45 on its own card, a B there (it would be a D on the seven's).
        for customer, points in zip(setup["customers"], (25, 12, 15, 10, 20)):
            sheet = sheets[customer.id]
            user = setup["bm_east"] if sheet.branch_id == setup["east"].id else setup["bm_west"]
            _fill(sheet, user, existing, points)
        _fill(sheets[newcomer.id], setup["bm_east"], prospect, 45)
        summary = cycle_summary(cycle)
        counts = {tier.code: (now, before) for tier, now, before in summary["distribution"]}
        assert counts == {"A": (1, 1), "B": (3, 1), "C": (1, 1), "D": (1, 1)}
        assert [r.customer_name for r in summary["top_list"]] == [names[0]]
        assert [r.total for r in summary["top_list"]] == [150]
        moved = {key: sorted(r.customer_name for r in rows)
                 for key, rows in summary["movements"].items()}
        assert moved == {"up": [names[2]], "down": [names[1]],
                         "new": sorted([names[4], "潜在客户堃喆有限公司"]), "not_compared": []}
        assert summary["unchanged"] == 2  # names[0] and names[3]: counted, never listed
        grades = {row.customer_id: row.preliminary_grade.code for row in agenda(cycle)}
        assert grades[newcomer.id] == "B"
        assert grades[setup["customers"][3].id] == "D"
    login(client, "chair")
    page = client.get(f"/cycles/{cycle.id}").get_data(as_text=True)
    for name, line in ((names[0], "A级"), (names[2], "C级 → B级"), (names[1], "B级 → C级")):
        assert name in page and line in page


def test_the_customer_page_lists_its_assessment_sheets(app, client, setup):
    """Once a cycle starts, each customer's page links to its sheet in that cycle."""
    from tests.conftest import login
    cycle = _started(app, setup)
    customer = setup["customers"][0]
    sheet = Assessment.get(Assessment.cycle == cycle, Assessment.customer == customer)
    login(client, "bm_e")
    page = client.get(f"/customers/{customer.id}").get_data(as_text=True)
    assert "2027年度客户分级评定" in page and f'href="/assessments/{sheet.id}"' in page
    assert "初评" in page  # the cycle's phase
    other = client.get(f"/customers/{setup['customers'][1].id}").get_data(as_text=True)
    assert "尚未参加任何评级周期" not in other


def test_settled_counts_only_final_grades(app, client, setup):
    """已定级 counts the chair's final grades only; the results the totals would get are
    shown as computed, never counted as settled, on the page, the list and the dashboard."""
    from models import Customer, Tier
    from models.cycles import cycle_summary, finalise
    from tests.conftest import login
    Customer.update(tier=Tier.get(Tier.code == "C").id).execute()
    cycle = _in_committee(app, setup)  # every sheet has a preliminary total: a B
    sheets = list(Assessment.select().where(Assessment.cycle == cycle)
                  .order_by(Assessment.agenda_position))
    with app.test_request_context():
        for criterion in _criteria(setup["template"]):
            save_score(sheets[0], setup["members"][0], "committee", criterion.id, None,
                       criterion.max_points, "", 0)
        finalise(sheets[0], setup["chair"], Tier.get(Tier.code == "A"))
        summary = cycle_summary(cycle)
        assert (summary["settled"], summary["computed"], summary["total"]) == (1, 4, 5)
        what_if = cycle_summary(cycle, {Tier.get(Tier.code == "A").id: 0})
        assert what_if["settled"] == 1  # a what-if settles nothing
    login(client, "chair")
    page = client.get(f"/cycles/{cycle.id}").get_data(as_text=True)
    assert re.search(r"已定级</td><td></td><td[^>]*>1 / 5<", page)
    assert "其中 4 位的结果只是按总分推算的等级，尚未定级。" in page
    moved = re.search(r"升级客户 <small[^>]*>5</small>.*?</section>", page, re.S).group(0)
    assert moved.count("（推算）") == 4  # the final A is not marked
    listing = client.get("/cycles").get_data(as_text=True)
    row = re.search(rf"{cycle.name}.*?</tr>", listing, re.S).group(0)
    assert re.findall(r'<td class="num">(\d+)</td>', row) == ["5", "5", "1"]
    login(client, "m1")
    assert 'class="big">4<' in client.get("/").get_data(as_text=True)  # still to grade


def test_a_tier_the_bands_cannot_give_is_named_and_never_counts_as_a_move(app, client, setup):
    """On bands that end at C, the draft cycle's page names D as out of reach, and a
    customer in D who gets a C or B is not counted as moved up (a C customer who gets a B
    is)."""
    from models import Customer, Tier
    from models.cycles import cycle_summary
    from tests.conftest import login
    tiers = {t.code: t for t in Tier.select()}
    second = setup["customers"][1]
    Customer.update(tier=tiers["D"].id).where(Customer.id != second.id).execute()
    Customer.update(tier=tiers["C"].id).where(Customer.id == second.id).execute()
    cycle = _cycle(app, setup)
    login(client, "chair")
    page = client.get(f"/cycles/{cycle.id}").get_data(as_text=True)
    warning = re.search(r'data-testid="out-of-reach".*?</section>', page, re.S).group(0)
    assert "评分表“客户质量等级评估表”没有任何分数段能评出D级" in warning
    assert "A级" not in warning and "C级" not in warning
    with app.test_request_context():
        cycle = advance(cycle, setup["chair"])
        for sheet in Assessment.select().where(Assessment.cycle == cycle):
            user = setup["bm_east"] if sheet.branch_id == setup["east"].id else setup["bm_west"]
            _fill(sheet, user, setup["template"])  # 60 points: a B
        summary = cycle_summary(cycle)
    assert [r.customer_name for r in summary["movements"]["up"]] == [second.name]
    assert summary["counts"]["not_compared"] == 4 and summary["unchanged"] == 0
    # The matrix colours D → B neither as up nor as down; C → B is up.
    moves = {(before.code, tier.code): cell.move for before, line, _total in
             summary["matrix"]["rows"] if before for tier, cell in
             zip(summary["matrix"]["tiers"], line) if cell.count}
    assert moves == {("D", "B"): "not-compared", ("C", "B"): "up"}
    page = client.get(f"/cycles/{cycle.id}").get_data(as_text=True)
    assert "升级 1 位" in page and "未比较升降 4 位" in page
    assert '<td class="num not-compared">4' in page and '<td class="num up">1' in page
    assert 'data-testid="out-of-reach"' not in page  # said before the start, not after
    # The meeting's matrix of settled grades colours them the same way.
    from models.cycles import settled_movements
    Assessment.update(final_tier=tiers["B"].id).where(Assessment.cycle == cycle).execute()
    matrix = settled_movements(cycle)
    moves = {(before.code, tier.code): (cell.count, cell.move)
             for before, line, _total in matrix["rows"] if before
             for tier, cell in zip(matrix["tiers"], line) if cell.count}
    assert moves == {("D", "B"): (4, "not-compared"), ("C", "B"): (1, "up")}


# --- The chair's side of the meeting ---------------------------------------------

def _agenda_sheets(cycle):
    return list(Assessment.select().where(Assessment.cycle == cycle)
                .order_by(Assessment.agenda_position))


def _committee_scores(app, sheet, member, points):
    """`member` gives these points, criterion by criterion (fewer: a partial sheet)."""
    with app.test_request_context():
        for criterion, p in zip(_criteria(sheet.template), points):
            saved = Score.get_or_none(Score.assessment == sheet.id, Score.member == member.id,
                                      Score.criterion == criterion.id)
            save_score(sheet, member, "committee", criterion.id, None, p, "",
                       saved.revision if saved else 0)


def _open(app, setup, cycle, sheet):
    from models.cycles import set_current
    with app.test_request_context():
        set_current(cycle, setup["chair"], sheet)


def _flashes(page):
    return re.findall(r'class="flash flash-\w+">([^<]*)<', page)


def test_the_chair_settles_and_moves_everyone_on_in_one_request(app, client, setup):
    """Settle-and-next sets the grade the board proposes (the mean's band), moves the
    meeting to the next unsettled sheet, skipping those set aside, audits both, and the
    members' screens learn of it at their next poll."""
    from models import GradingCycle, Tier
    from models.cycles import mark_to_discuss
    from tests.conftest import login
    cycle = _in_committee(app, setup)
    sheets = _agenda_sheets(cycle)
    m1, m2 = setup["members"]
    _open(app, setup, cycle, sheets[0])
    _committee_scores(app, sheets[0], m1, (12, 12, 12, 12, 16, 16))  # 80
    _committee_scores(app, sheets[0], m2, (10, 10, 10, 10, 15, 15))  # 70: mean 75, an A
    with app.test_request_context():
        mark_to_discuss(sheets[1], setup["chair"])  # set aside: the key skips it for now
    tier_a = Tier.get(Tier.code == "A")
    login(client, "chair")
    response = client.post(f"/assessments/{sheets[0].id}/finalise",
                           data={"tier": tier_a.id, "and_next": "y"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/cycles/{cycle.id}/meeting"
    settled = Assessment.get_by_id(sheets[0].id)
    assert (settled.final_tier_id, float(settled.final_total)) == (tier_a.id, 75.0)
    assert GradingCycle.get_by_id(cycle.id).current_assessment == sheets[2].id
    actions = [e.action for e in AuditEvent.select().order_by(AuditEvent.id)][-2:]
    assert actions == ["assessment_finalised", "meeting_moved"]
    page = client.get(f"/cycles/{cycle.id}/meeting").get_data(as_text=True)
    assert f"{sheets[0].customer.name} 已定级，委员会转到 {sheets[2].customer.name}。" in page
    assert f"<h1>{sheets[2].customer.name}</h1>" in page
    assert "Ctrl+Enter" in page and 'data-settle-next' in page  # the key, told on the page
    client.post("/logout")
    login(client, "m1")  # a member's screen still showing the settled customer reloads
    state = client.get(f"/cycles/{cycle.id}/meeting/state?seen={sheets[0].id}&final=0")
    assert state.headers.get("HX-Refresh") == "true"
    # With the agenda ordered and filtered, the move follows that order and keeps it.
    client.post("/logout")
    login(client, "chair")
    _committee_scores(app, sheets[2], m1, (10, 10, 10, 10, 10, 10))
    response = client.post(f"/assessments/{sheets[2].id}/finalise?state=open&order=grade",
                           data={"tier": Tier.get(Tier.code == "B").id, "and_next": "y"})
    assert response.headers["Location"] == f"/cycles/{cycle.id}/meeting?order=grade&state=open"
    assert GradingCycle.get_by_id(cycle.id).current_assessment == sheets[3].id


def test_settle_and_next_is_refused_to_others_and_on_a_settled_sheet(app, client, setup):
    """A member, someone off the committee, and a second press on a settled sheet are
    refused with a message; the grade, the meeting and the audit trail stay as they were."""
    from models import GradingCycle, Tier
    from tests.conftest import login
    cycle = _in_committee(app, setup)
    sheets = _agenda_sheets(cycle)
    _open(app, setup, cycle, sheets[0])
    _committee_scores(app, sheets[0], setup["members"][0], (10, 10, 10, 10, 10, 10))
    tier_b = Tier.get(Tier.code == "B")
    data = {"tier": tier_b.id, "and_next": "y"}
    decisions = AuditEvent.select().where(AuditEvent.action.in_(
        ["assessment_finalised", "meeting_moved"]))
    events = decisions.count()

    def unchanged():
        assert GradingCycle.get_by_id(cycle.id).current_assessment == sheets[0].id
        assert Assessment.get_by_id(sheets[0].id).final_tier_id is None
        assert decisions.count() == events

    login(client, "m1")
    client.post(f"/assessments/{sheets[0].id}/finalise", data=data)
    page = client.get(f"/cycles/{cycle.id}/meeting").get_data(as_text=True)
    assert "只有评级委员会主任可以确定最终等级。" in _flashes(page), _flashes(page)
    assert "data-settle-next" not in page  # no key for a member
    unchanged()
    client.post("/logout")
    login(client, "bm_e")
    assert client.post(f"/assessments/{sheets[0].id}/finalise", data=data).status_code == 404
    unchanged()
    client.post("/logout")
    login(client, "chair")
    client.post(f"/assessments/{sheets[0].id}/finalise", data={"tier": tier_b.id})
    _open(app, setup, cycle, sheets[0])
    moved = decisions.count()
    client.post(f"/assessments/{sheets[0].id}/finalise", data=data)  # settled already
    page = client.get(f"/cycles/{cycle.id}/meeting").get_data(as_text=True)
    assert "该客户的最终等级已经确定。" in _flashes(page), _flashes(page)
    assert GradingCycle.get_by_id(cycle.id).current_assessment == sheets[0].id
    assert decisions.count() == moved


def test_the_agenda_counts_sorts_by_disagreement_and_filters_the_unsettled(app, client, setup):
    """The agenda counts settled / to discuss / not yet scored, sorts by the spread of the
    members' complete totals, shows the unsettled only, and its links keep the filter."""
    from models import Tier
    from models.cycles import finalise, mark_to_discuss
    from tests.conftest import login
    cycle = _in_committee(app, setup)
    sheets = _agenda_sheets(cycle)
    m1, m2 = setup["members"]
    _committee_scores(app, sheets[0], m1, (10, 10, 10, 10, 10, 10))
    with app.test_request_context():
        finalise(sheets[0], setup["chair"], Tier.get(Tier.code == "B"))
        mark_to_discuss(sheets[4], setup["chair"])
    _committee_scores(app, sheets[1], m1, (10, 10, 10, 10, 10, 10))  # 60
    _committee_scores(app, sheets[1], m2, (12, 12, 12, 12, 16, 16))  # 80: 20 apart
    _committee_scores(app, sheets[2], m1, (10, 10, 10, 10, 10, 10))  # 60
    _committee_scores(app, sheets[2], m2, (10, 10, 10, 10, 15, 10))  # 65: 5 apart
    _committee_scores(app, sheets[3], m1, (15, 15, 15))  # half a sheet: no spread yet
    _committee_scores(app, sheets[3], m2, (0, 0, 0, 0, 0, 0))
    login(client, "chair")
    page = client.get(f"/cycles/{cycle.id}/meeting").get_data(as_text=True)
    assert "已定级 1 · 待再议 1 · 未评分 1 · 共 5" in page  # sheet 4 alone is unscored
    assert page.count('data-testid="to-discuss"') == 1 and "分差 20" in page
    page = client.get(f"/cycles/{cycle.id}/meeting?order=disagreement").get_data(as_text=True)
    names = re.findall(r'class="agenda-customer[^"]*">([^<]+)', page)
    assert names[:2] == [sheets[1].customer.name, sheets[2].customer.name]
    page = client.get(f"/cycles/{cycle.id}/meeting?state=open&order=disagreement"
                      ).get_data(as_text=True)
    names = re.findall(r'class="agenda-customer[^"]*">([^<]+)', page)
    assert sheets[0].customer.name not in names and len(names) == 4
    assert "已定级 1 · 待再议 1" in page  # the counts are of the whole agenda
    assert '<option value="open" selected>' in page
    # "Discuss now" keeps the filter: the chair lands back on the same agenda.
    assert (f'action="/cycles/{cycle.id}/meeting/current?order=disagreement&amp;state=open"'
            in page)
    response = client.post(f"/cycles/{cycle.id}/meeting/current?order=disagreement&state=open",
                           data={"assessment": sheets[2].id})
    assert response.headers["Location"] == (
        f"/cycles/{cycle.id}/meeting?order=disagreement&state=open")


def test_the_board_names_who_has_not_scored_and_grades_no_partial_total(app, client, setup):
    """The chair's board names the members who have not scored every criterion; a partial
    total reads as 已评 n/6 项, never with a grade; means print as points (75, not 75.0)."""
    from models import User
    from tests.conftest import login
    cycle = _in_committee(app, setup)
    sheet = _agenda_sheets(cycle)[0]
    m1, m2 = setup["members"]
    User.update(display_name="委员甲").where(User.id == m1.id).execute()
    User.update(display_name="委员乙").where(User.id == m2.id).execute()
    _open(app, setup, cycle, sheet)
    login(client, "chair")
    board = client.get(f"/cycles/{cycle.id}/meeting/board?assessment={sheet.id}"
                       ).get_data(as_text=True)
    waiting = re.search(r'data-testid="waiting">尚未评完：(.*?)</p>', board, re.S).group(1)
    assert "委员甲" in waiting and "委员乙" in waiting
    _committee_scores(app, sheet, m1, (15, 15, 15, 15, 20, 20))  # 100: an A
    _committee_scores(app, sheet, m2, (12, 12, 12))  # 36 so far: not a C
    board = client.get(f"/cycles/{cycle.id}/meeting/board?assessment={sheet.id}"
                       ).get_data(as_text=True)
    waiting = re.search(r'data-testid="waiting">(.*?)</p>', board, re.S).group(1)
    assert "委员乙" in waiting and "已评 3/6 项" in waiting and "委员甲" not in waiting
    footer = re.search(r"<tfoot>(.*?)</tfoot>", board, re.S).group(1)
    cells = re.findall(r'<td class="num">(.*?)</td>', footer, re.S)
    assert "C级" not in footer and "已评 3/6 项" in footer
    assert "<b>100</b><br><small>A级</small>" in footer
    assert "68" in cells[-2] and "未评完" in cells[-2] and "A级" not in cells[-2]  # (100+36)/2
    # Complete at last: the member's total and the mean are results, in points.
    _committee_scores(app, sheet, m2, (12, 12, 12, 12, 16, 16))
    board = client.get(f"/cycles/{cycle.id}/meeting/board?assessment={sheet.id}"
                       ).get_data(as_text=True)
    assert "<b>90</b><br><small>A级</small>" in board and "<b>90</b>" in board
    assert 'data-testid="waiting"' not in board and "90.0" not in board
    mean = re.search(r"<tfoot>(.*?)</tfoot>", board, re.S).group(1)
    assert re.findall(r'<td class="num">(.*?)</td>', mean, re.S)[-2] == (
        "<b>90</b><br><small>A级</small>")
    criterion_means = re.findall(r'<td class="num">(\d+(?:\.\d+)?)</td>', board)
    assert "13.5" in criterion_means and not [m for m in criterion_means if m.endswith(".0")]


def test_the_agenda_shows_a_partial_preliminary_total_as_partial(app, client, setup):
    """A preliminary sheet scored in part reads 初评已评 n/6 项 on the agenda, not a total
    with a grade."""
    from tests.conftest import login
    cycle = _started(app, setup)
    sheet = _agenda_sheets(cycle)[0]
    criteria = _criteria(setup["template"])
    with app.test_request_context():
        for criterion in criteria[1:4]:
            save_score(sheet, setup["bm_east"], "preliminary", criterion.id, None, 12, "", 0)
    login(client, "chair")
    page = client.get(f"/cycles/{cycle.id}/meeting").get_data(as_text=True)
    entry = re.search(rf"{sheet.customer.name}.*?</small>", page, re.S).group(0)
    assert "初评已评 3/6 项" in entry and "36" not in entry and "级" not in entry


def test_the_chair_marks_a_customer_to_discuss_again(app, client, setup):
    """Only the chair marks an unsettled customer "to discuss again"; the mark is audited,
    shown on the agenda, counted, and cleared when the customer is settled."""
    from models import Tier
    from models.cycles import finalise
    from tests.conftest import login
    cycle = _in_committee(app, setup)
    sheets = _agenda_sheets(cycle)
    _open(app, setup, cycle, sheets[0])
    login(client, "m1")
    client.post(f"/assessments/{sheets[0].id}/discuss", data={"flag": "y"})
    page = client.get(f"/cycles/{cycle.id}/meeting").get_data(as_text=True)
    assert "只有评级委员会主任可以把客户标记为待再议。" in _flashes(page)
    assert not Assessment.get_by_id(sheets[0].id).to_discuss
    client.post("/logout")
    login(client, "chair")
    page = client.get(f"/cycles/{cycle.id}/meeting").get_data(as_text=True)
    assert "标记为“待再议”" in page
    client.post(f"/assessments/{sheets[0].id}/discuss", data={"flag": "y"})
    assert Assessment.get_by_id(sheets[0].id).to_discuss
    event = AuditEvent.select().where(AuditEvent.action == "assessment_to_discuss").get()
    assert (event.before_data, event.after_data["to_discuss"]) == ({"to_discuss": False}, True)
    page = client.get(f"/cycles/{cycle.id}/meeting").get_data(as_text=True)
    assert page.count('data-testid="to-discuss"') == 1 and "待再议 1" in page
    assert "取消“待再议”" in page
    _committee_scores(app, sheets[0], setup["members"][0], (10, 10, 10, 10, 10, 10))
    with app.test_request_context():
        finalise(sheets[0], setup["chair"], Tier.get(Tier.code == "B"))
    assert not Assessment.get_by_id(sheets[0].id).to_discuss
    client.post(f"/assessments/{sheets[0].id}/discuss", data={"flag": "y"})  # settled
    page = client.get(f"/cycles/{cycle.id}/meeting").get_data(as_text=True)
    assert "该客户的最终等级已确定；如需再议，请先重新打开。" in _flashes(page)
    assert not Assessment.get_by_id(sheets[0].id).to_discuss and "待再议 0" in page


def test_the_committee_sees_the_last_three_grades_and_the_distribution(app, client, setup,
                                                                      make):
    """Every screen shows the current customer's final grades of the last three cycles
    (its tier history filling a year without a cycle), and the grades settled so far beside the
    previous cycle's shares and the pyramid guideline."""
    import datetime as dt

    from models import GradingCycle, Tier, TierHistory
    from models.cycles import finalise
    from tests.conftest import login
    cycle = _in_committee(app, setup)
    sheet = _agenda_sheets(cycle)[0]
    tiers = {t.code: t for t in Tier.select()}
    earlier = {}
    for year, code in ((2024, "C"), (2026, "A")):
        earlier[year] = GradingCycle.create(
            name=f"{year}年度客户分级评定", year=year, phase="published",
            template_existing=setup["template"], chair=setup["chair"])
        Assessment.create(cycle=earlier[year], customer=sheet.customer_id,
                          template=setup["template"], branch=sheet.branch_id,
                          final_tier=tiers[code], finalised_at=dt.datetime(year, 4, 1))
    for other in setup["customers"][1:4]:  # the 2026 cycle: 1 A of 4 → 25 %, 3 B → 75 %
        Assessment.create(cycle=earlier[2026], customer=other.id, template=setup["template"],
                          branch=other.branch_id, final_tier=tiers["B"])
    for day, code in ((dt.date(2023, 5, 1), "D"), (dt.date(2025, 5, 1), "B")):
        TierHistory.create(customer=sheet.customer_id, tier=tiers[code], effective_on=day,
                           source="approval")
    _open(app, setup, cycle, sheet)
    _committee_scores(app, sheet, setup["members"][0], (10, 10, 10, 10, 10, 10))
    with app.test_request_context():
        finalise(sheet, setup["chair"], tiers["B"])
    login(client, "m1")
    page = client.get(f"/cycles/{cycle.id}/meeting").get_data(as_text=True)
    past = re.search(r'data-testid="past-grades">(.*?)</p>', page, re.S).group(1)
    years = re.findall(r'class="past-grade">(\d{4})', past)
    assert years == ["2026", "2025", "2024"]  # not 2023: three at most
    assert re.search(r"2026.*A级.*2025.*B级.*2024.*C级", past, re.S) and "D级" not in past
    table = re.search(r'data-testid="distribution">(.*?)</table>', page, re.S).group(1)
    heads = re.findall(r'<th class="num">(.*?)</th>', table)
    assert heads == ["A级", "B级", "C级", "D级"]
    rows = {name: re.findall(r'<td class="num">(.*?)</td>', cells, re.S) for name, cells in
            re.findall(r'<th scope="row">(.*?)</th>(.*?)</tr>', table, re.S)}
    assert rows["本次评定"][1] == '1 <small class="muted">100.0%</small>'
    assert rows["本次评定"][0] == rows["本次评定"][2] == '0 <small class="muted">0.0%</small>'
    assert rows["2026年度客户分级评定"] == ["25.0%", "75.0%", "0.0%", "0.0%"]
    assert rows["指引"] == ["1%", "4%", "15%", "80%"]


def test_the_chairs_board_takes_the_same_queries_whatever_the_committee_size(
        app, client, setup, make):
    """The polled board partial reads a few queries, as many for six members as for two."""
    from models import db
    from tests.conftest import login
    counts = []
    for size in (2, 6):
        extra = [make.user(roles=("committee_member",)) for _ in range(size - 2)]
        cycle = _cycle(app, setup, members=[*setup["members"], *extra],
                       name=f"委员{size}人", scope={"customers": [setup["customers"][0].id]})
        with app.test_request_context():
            cycle = advance(cycle, setup["chair"])
            sheet = _agenda_sheets(cycle)[0]
            _fill(sheet, setup["bm_east"], setup["template"])
            submit_preliminary(sheet, setup["bm_east"])
            cycle = advance(cycle, setup["chair"])
        for member in [*setup["members"], *extra]:
            _committee_scores(app, sheet, member, (10, 10, 10))
        _open(app, setup, cycle, sheet)
        login(client, "chair")
        url = f"/cycles/{cycle.id}/meeting/board?assessment={sheet.id}"
        client.get(url)  # warm: the frozen scorecard is kept by the process
        queries = []
        db.obj.query_hooks.append(queries.append)
        try:
            board = client.get(url).get_data(as_text=True)
        finally:
            db.obj.query_hooks.remove(queries.append)
        assert board.count("已评 3/6 项") == 2 * size  # each total, and who is waiting
        counts.append(len(queries))
        client.post("/logout")
    assert counts[0] == counts[1] and counts[0] <= 8, counts


# --- A member's keys: taking over the preliminary scores, replaying a save -------------

def _mine(sheet, member):
    """{criterion id: (level, points, comment, revision)} of a member's committee scores."""
    return {s.criterion: (s.level, s.points, s.comment, s.revision) for s in Score.select().where(
        Score.assessment == sheet.id, Score.stage == "committee", Score.member == member.id)}


def _take_over(client, sheet):
    return client.post(f"/assessments/{sheet.id}/take-over", headers={"HX-Request": "true"})


def test_a_member_takes_over_the_preliminary_scores_in_one_request(app, client, setup):
    """One request saves the preliminary levels and points as the member's committee
    scores; a criterion the member already gave points keeps them; every row and the
    total come back saved."""
    from tests.conftest import login
    cycle = _in_committee(app, setup)  # every preliminary score is 10
    sheet = _agenda_sheets(cycle)[0]
    _open(app, setup, cycle, sheet)
    m1 = setup["members"][0]
    criteria = _criteria(setup["template"])
    _committee_scores(app, sheet, m1, (15,))  # m1 gave 客户性质 15 already
    login(client, "m1")
    page = client.get(f"/cycles/{cycle.id}/meeting").get_data(as_text=True)
    assert "采用初评分数" in page and 'aria-keyshortcuts="P"' in page
    assert "快捷键：数字键选择当前评分项的档次" in page and 'id="offline-banner"' in page
    # The focus starts on the first criterion m1 has not scored.
    assert re.search(rf'id="level-input-{criteria[1].id}"[^>]* data-autofocus', page)
    answer = _take_over(client, sheet)
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert "已采用 5 项初评分数作为您的评分，您已打分的 1 项保留原分数，可逐项调整。" in text
    assert text.count('class="criterion" hx-swap-oob="true"') == 6
    assert "<b>65</b> / 100" in text and "已评 6/6 项" not in text
    preliminary = {s.criterion: (s.level, s.points) for s in Score.select().where(
        Score.assessment == sheet.id, Score.stage == "preliminary")}
    mine = _mine(sheet, m1)
    assert mine[criteria[0].id][1:] == (15, "", 1)  # kept, not touched
    for criterion in criteria[1:]:
        assert mine[criterion.id] == (*preliminary[criterion.id], "", 1)
    # Pressed again: nothing left to take over, nothing changes.
    assert "未采用初评分数" in _take_over(client, sheet).get_data(as_text=True)
    assert _mine(sheet, m1) == mine


def test_take_over_is_refused_when_the_member_may_not_score(app, client, setup):
    """A take-over on a settled sheet, outside the committee review, or by someone off
    the committee is refused with the reason, and no score changes."""
    from models import Tier
    from models.cycles import finalise
    from tests.conftest import login
    started = _started(app, setup)  # still in preliminary grading
    early = Assessment.get(Assessment.cycle == started, Assessment.branch == setup["east"])
    login(client, "m1")
    text = _take_over(client, early).get_data(as_text=True)
    assert "只有在委员会复评阶段才能打复评分。" in text and "state-error" in text
    assert not Score.select().where(Score.stage == "committee").exists()
    client.post("/logout")

    cycle = _finish_preliminary(app, setup, started)
    sheets = _agenda_sheets(cycle)
    _committee_scores(app, sheets[0], setup["members"][1], (10, 10, 10, 10, 10, 10))
    with app.test_request_context():
        finalise(sheets[0], setup["chair"], Tier.get(Tier.code == "B"))
    before = list(Score.select().order_by(Score.id).tuples())
    login(client, "m1")
    answer = _take_over(client, sheets[0])
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "最终等级已确定" in text and "state-error" in text
    assert 'name="level"' not in text  # the rows come back locked
    page = client.post(f"/assessments/{sheets[0].id}/take-over")  # without htmx
    assert page.status_code == 303
    assert page.headers["Location"] == f"/cycles/{cycle.id}/meeting"
    assert "最终等级已确定" in client.get(page.headers["Location"]).get_data(as_text=True)
    client.post("/logout")
    login(client, "bm_e")  # sees the sheet, is not on the committee
    assert _take_over(client, sheets[0]).status_code == 404
    assert _take_over(client, sheets[1]).status_code == 404
    assert list(Score.select().order_by(Score.id).tuples()) == before
    with app.test_request_context(), pytest.raises(DomainError, match="委员"):
        from models.cycles import take_over_preliminary
        take_over_preliminary(sheets[1], setup["bm_east"])
    assert list(Score.select().order_by(Score.id).tuples()) == before


def _finish_preliminary(app, setup, cycle):
    with app.test_request_context():
        for sheet in Assessment.select().where(Assessment.cycle == cycle):
            user = setup["bm_east"] if sheet.branch_id == setup["east"].id else setup["bm_west"]
            _fill(sheet, user, setup["template"])
            submit_preliminary(sheet, user)
        return advance(cycle, setup["chair"])


def test_a_replayed_save_older_than_the_server_is_refused_and_shows_the_newer_value(
        app, client, setup):
    """A save sent again after the connection returns carries the revision it was based
    on: when the score changed meanwhile it is not applied, and the row shows the
    server's value and says so."""
    from tests.conftest import login
    cycle = _in_committee(app, setup)
    sheet = _agenda_sheets(cycle)[0]
    _open(app, setup, cycle, sheet)
    growth = _criteria(setup["template"])[2]
    login(client, "m1")
    hx = {"HX-Request": "true"}
    data = {"criterion": growth.id, "level": "", "points": 12, "revision": 0,
            "stage": "committee", "comment": ""}
    assert "已保存" in client.post(f"/assessments/{sheet.id}/scores", data=data,
                                   headers=hx).get_data(as_text=True)
    # Offline on the laptop, the member typed 9 over revision 1; meanwhile the same
    # member's other device saved 14 (revision 2).
    client.post(f"/assessments/{sheet.id}/scores", headers=hx,
                data=dict(data, points=14, revision=1))
    replay = client.post(f"/assessments/{sheet.id}/scores", headers=hx,
                         data=dict(data, points=9, revision=1))
    text = replay.get_data(as_text=True)
    assert replay.headers["HX-Retarget"] == f"#criterion-{growth.id}"
    (state, message), box = _row_parts(text, growth)
    assert "state-stale" in state and "已在别处" in message, message
    assert 'value="14"' in box and f'id="points-{growth.id}">14<' in text
    assert f'id="revision-{growth.id}" value="2"' in text  # the next save builds on it
    score = Score.get(Score.assessment == sheet.id, Score.criterion == growth.id,
                      Score.stage == "committee")
    assert (score.points, score.revision) == (14, 2)


def _matrix(page, testid):
    """The movement matrix on a page: {row heading: [cell text, …]} with the column
    headings under "columns"; tags dropped, spaces squeezed."""
    table = re.search(rf'data-testid="{testid}">(.*?)</table>', page, re.S).group(1)

    def text(cell):
        return " ".join(re.sub(r"<[^>]+>", " ", cell).split())
    found = {"columns": [text(c) for c in re.findall(r'<th scope="col"[^>]*>(.*?)</th>',
                                                       table, re.S)]}
    for head, cells in re.findall(r'<tr><th scope="row">(.*?)</th>(.*?)</tr>', table, re.S):
        found[text(head)] = [text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)]
    return found


def test_movement_matrix_counts_previous_tier_against_result(app, client, setup):
    """The movement matrix crosses the tier each customer held before with the result: the
    meeting counts settled final grades only; the summary counts every result, marks the
    computed ones, and shows a branch manager the branch's customers alone."""
    from models import Tier
    from models.cycles import finalise
    from tests.conftest import login
    cycle = _in_committee(app, setup)  # every preliminary total is 60: a computed B
    tiers = {t.code: t for t in Tier.select()}
    sheets = _agenda_sheets(cycle)  # east: 0, 1, 2; west: 3, 4
    for sheet, code in zip(sheets, ("A", "B", "C", "B", None)):
        Assessment.update(tier_before=tiers[code].id if code else None).where(
            Assessment.id == sheet.id).execute()
    _open(app, setup, cycle, sheets[0])
    for sheet, tier in ((sheets[0], "A"), (sheets[3], "C")):
        _committee_scores(app, sheet, setup["members"][0], (10, 10, 10, 10, 10, 10))
        with app.test_request_context():
            finalise(sheet, setup["chair"], tiers[tier], "委员会讨论后调整")
    login(client, "m1")
    meeting = _matrix(client.get(f"/cycles/{cycle.id}/meeting").get_data(as_text=True),
                      "settled-movements")
    assert meeting["columns"] == ["评定前 ＼ 本次结果", "A级", "B级", "C级", "D级", "合计"]
    assert meeting["A级"] == ["1", "0", "0", "0", "1"]  # kept A: the diagonal
    assert meeting["B级"] == ["0", "0", "1", "0", "1"]  # settled down to C
    assert meeting["C级"] == meeting["尚未定级"] == ["0", "0", "0", "0", "0"]
    assert meeting["合计"] == ["1", "0", "1", "0", "2"]
    client.post("/logout")
    login(client, "chair")
    summary = _matrix(client.get(f"/cycles/{cycle.id}").get_data(as_text=True),
                      "movement-matrix")
    assert summary["A级"] == ["1", "0", "0", "0", "1"]
    assert summary["B级"] == ["0", "1 推算 1", "1", "0", "2"]
    assert summary["C级"] == ["0", "1 推算 1", "0", "0", "1"]
    assert summary["尚未定级"] == ["0", "1 推算 1", "0", "0", "1"]
    assert summary["合计"] == ["1", "3", "1", "0", "5"]
    client.post("/logout")
    login(client, "bm_w")
    west = _matrix(client.get(f"/cycles/{cycle.id}").get_data(as_text=True),
                   "movement-matrix")
    assert west["B级"] == ["0", "0", "1", "0", "1"]
    assert west["尚未定级"] == ["0", "1 推算 1", "0", "0", "1"]
    assert west["合计"] == ["0", "1", "1", "0", "2"]


def _half_width_after_chinese(page):
    """The visible text's ASCII : ; ( ) that follow Chinese: a Chinese reader expects ：；（）."""
    text = re.sub(r"<script.*?</script>|<style.*?</style>|<[^>]+>", " ", page, flags=re.S)
    return re.findall(r"[\u4e00-\u9fff）]\s?[:;()]", text)


def test_chinese_pages_put_full_width_punctuation_after_chinese(app, client, setup):
    """The preliminary sheet and the meeting read 当前等级：and 最终等级：, never an ASCII
    colon or bracket after Chinese text."""
    from models import Tier
    from models.cycles import finalise
    from tests.conftest import login
    cycle = _in_committee(app, setup)
    sheet = _agenda_sheets(cycle)[0]
    Assessment.update(preliminary_comment="整体良好").where(Assessment.id == sheet.id).execute()
    _open(app, setup, cycle, sheet)
    _committee_scores(app, sheet, setup["members"][0], (10, 10, 10, 10, 10, 10))
    with app.test_request_context():
        finalise(sheet, setup["chair"], Tier.get(Tier.code == "B"))
    login(client, "bm_e")
    page = client.get(f"/assessments/{sheet.id}").get_data(as_text=True)
    assert "当前等级：" in page and "总体评价：" in page
    assert _half_width_after_chinese(page) == []
    client.post("/logout")
    login(client, "m1")
    page = client.get(f"/cycles/{cycle.id}/meeting").get_data(as_text=True)
    assert "最终等级：" in page
    assert _half_width_after_chinese(page) == []


def test_each_phase_tells_the_people_it_waits_for(app, setup, client):
    """Starting the cycle tells each branch manager how many sheets to fill and by when
    (the meeting's first day), and reminds them three days and one day before while any
    are open; the meeting's opening reaches the whole committee, as do the wanted
    signatures; the publication reaches the committee and the branch managers. Each
    notice links to where the person acts, in their language."""
    from peewee import fn

    from models import Notice, User
    from models.cycles import committee_summary, finalise
    from models.phases import notify_deadlines
    from models.signing import sign
    from tests.conftest import PASSWORD

    app.config.update(SMTP_HOST="127.0.0.1", PUBLIC_URL="https://tierdesk.example.com")
    User.update(email=User.username.concat("@example.com")).execute()
    User.update(language="en").where(User.username == "bm_w").execute()
    base = "https://tierdesk.example.com"

    def told(since):
        return {(n.recipient.username, n.subject, n.link) for n in
                Notice.select().where(Notice.id > since, Notice.kind == "cycle")}

    def last():
        return Notice.select(fn.MAX(Notice.id)).scalar() or 0

    cycle = _cycle(app, setup, meeting_from=datetime.date(2027, 3, 25))
    with app.test_request_context():
        cycle = advance(cycle, setup["chair"])
    link = f"{base}/cycles/{cycle.id}"
    assert told(0) == {("bm_e", "2027年度客户分级评定：3 张初评表待填写", link),
                       ("bm_w", "2027年度客户分级评定: 2 preliminary sheets to fill", link)}
    body = Notice.get(Notice.recipient == setup["bm_east"].id).body
    assert "请在评级委员会于2027年3月25日开会前提交。" in body
    with app.test_request_context():
        mark = last()
        assert notify_deadlines(datetime.date(2027, 3, 21)) == []
        for sheet in Assessment.select().where(Assessment.cycle == cycle,
                                               Assessment.branch == setup["west"].id):
            _fill(sheet, setup["bm_west"], setup["template"])
            submit_preliminary(sheet, setup["bm_west"])
        assert notify_deadlines(datetime.date(2027, 3, 22)) == [setup["bm_east"].id]
        assert told(mark) == {("bm_e", "2027年度客户分级评定：仍有 3 张初评表未提交，"
                                       "截止日期为2027年3月25日", link)}
        assert notify_deadlines(datetime.date(2027, 3, 24)) == [setup["bm_east"].id]
        for sheet in Assessment.select().where(Assessment.cycle == cycle,
                                               Assessment.branch == setup["east"].id):
            _fill(sheet, setup["bm_east"], setup["template"])
            submit_preliminary(sheet, setup["bm_east"])
        mark = last()
        cycle = advance(cycle, setup["chair"])
        assert told(mark) == {(name, "2027年度客户分级评定：评级委员会会议已开始",
                               f"{link}/meeting") for name in ("chair", "m1", "m2")}
        for sheet in Assessment.select().where(Assessment.cycle == cycle):
            for member in setup["members"]:
                for criterion in _criteria(setup["template"]):
                    save_score(sheet, member, "committee", criterion.id, None, 10, "", 0)
            finalise(sheet, setup["chair"], committee_summary(sheet)["mean_grade"]
                     or sheet.template.grade_for(0), "")
        mark = last()
        cycle = advance(cycle, setup["chair"])
        assert told(mark) == {(name, "2027年度客户分级评定：请您签字确认结果",
                               f"{link}/signing") for name in ("chair", "m1", "m2")}
        for person in (*setup["members"], setup["chair"]):
            sign(cycle, person, PASSWORD)
        mark = last()
        advance(cycle, setup["chair"])
        published = told(mark)
    assert {(name, subject) for name, subject, _link in published} == {
        *((name, "2027年度客户分级评定已发布") for name in ("chair", "m1", "m2", "bm_e")),
        ("bm_w", "2027年度客户分级评定 is published")}
    assert {where for _name, _subject, where in published} == {f"{link}/report"}
    # The cycle's page shows the chair who was told of what; a branch manager sees none.
    from tests.conftest import login
    login(client, "chair")
    page = client.get(f"/cycles/{cycle.id}").get_data(as_text=True)
    told_section = re.search(r'class="notices-sent".*?</details>', page, re.S).group(0)
    assert "2027年度客户分级评定：评级委员会会议已开始" in told_section
    client.post("/logout")
    login(client, "bm_e")
    assert "notices-sent" not in client.get(f"/cycles/{cycle.id}").get_data(as_text=True)
