"""A branch manager fills a preliminary sheet in a real browser: autosave and live total."""
import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from models import Assessment, Score
from tests.live import log_in, screenshot
from tests.test_cycles import _criteria, _started, make_setup


@pytest.fixture
def setup(app, make):
    return make_setup(app, make)


def test_preliminary_sheet_saves_as_you_go(app, page, setup):
    """Choosing levels saves each row, the total and grade follow, then the sheet submits."""
    cycle = _started(app, setup)
    sheet = Assessment.get(Assessment.cycle == cycle, Assessment.branch == setup["east"])
    log_in(page, "bm_e")
    page.goto(f"/assessments/{sheet.id}")
    choices = {"客户性质": "国有企业", "客户实力": "强大", "客户成长性": "高成长",
               "利润贡献": "贡献大", "客户关系": "与最高层关系默契", "战略重要性": "非常重要"}
    points = {"客户实力": "14", "客户成长性": "12", "利润贡献": "13", "客户关系": "18",
              "战略重要性": "19"}
    for criterion in _criteria(setup["template"]):
        row = page.locator(f"#criterion-{criterion.id}")
        level = row.locator("select[name=level]")
        option = level.locator("option", has_text=choices.get(criterion.name, "—")).first
        level.select_option(option.get_attribute("value"))
        state = page.locator(f"#criterion-{criterion.id} .save-state")
        # A range level proposes points, not saved yet; a fixed one is saved at once.
        expect(state).to_contain_text("尚未保存" if criterion.name in points else "已保存")
        if criterion.name in points:
            box = page.locator(f"#criterion-{criterion.id} input[name=points]")
            box.fill(points[criterion.name])
            box.press("Tab")  # keyboard only: leaving the field saves it
            expect(page.locator(f"#criterion-{criterion.id} .points")).to_have_text(
                points[criterion.name])
    # 15 (国有企业 is fixed) + 14 + 12 + 13 + 18 + 19 = 91: an A by the default bands.
    expect(page.locator("#sheet-total")).to_contain_text("91")
    expect(page.locator("#sheet-total")).to_contain_text("A级")
    screenshot(page, "preliminary-sheet")
    page.fill("#comment", "战略客户，建议维持A级")
    page.get_by_role("button", name="提交评级委员会").click()
    expect(page.locator(".flash-success").first).to_contain_text("已提交")
    assert Assessment.get_by_id(sheet.id).preliminary_submitted_at is not None
    assert sum(s.points for s in Score.select().where(Score.assessment == sheet)) == 91


def _row(page, criterion):
    return page.locator(f"#criterion-{criterion.id}")


def _shots(page, name):
    """The sheet as it stands, 1366 and 390 pixels wide, into SCREENSHOT_DIR when set.
    The caret stays as it is: hiding it takes an inline style, which the CSP refuses."""
    folder = os.environ.get("SCREENSHOT_DIR")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    for width, height in ((1366, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(Path(folder) / f"{name}-{width}.png"), full_page=True,
                        caret="initial")
    page.set_viewport_size({"width": 1366, "height": 900})


def test_the_sheet_by_keyboard_never_says_more_than_is_true(app, page, setup):
    """By keyboard: a range level's proposed points are accepted with Enter; 99 where 15
    is the most is refused beside the field with no "saved" mark (an older one goes);
    an incomplete submit names the rows, marks them and keeps the overall comment."""
    cycle = _started(app, setup)
    sheet = Assessment.get(Assessment.cycle == cycle, Assessment.branch == setup["east"])
    nature, strength, growth, profit, relation, strategy = _criteria(setup["template"])
    page.set_viewport_size({"width": 1366, "height": 900})
    log_in(page, "bm_e")
    page.goto(f"/assessments/{sheet.id}")

    # A fixed level fills its points and saves them.
    _row(page, nature).locator("select[name=level]").focus()
    page.keyboard.press("ArrowDown")  # 政府/国有企业 (15)
    expect(_row(page, nature).locator(".save-state")).to_have_text("✓ 已保存")
    expect(_row(page, nature).locator("input[name=points]")).to_have_value("15")

    # A range level proposes its midpoint, unsaved, in the points field one Tab away.
    _row(page, strength).locator("select[name=level]").focus()
    page.keyboard.press("ArrowDown")  # 强大 (10–15)
    state, box = _row(page, strength).locator(".save-state"), \
        _row(page, strength).locator("input[name=points]")
    expect(state).to_contain_text("建议 13 分（尚未保存）")
    expect(box).to_have_value("13")
    expect(_row(page, strength).locator("select[name=level]")).to_be_focused()
    page.keyboard.press("Tab")
    expect(box).to_be_focused()
    expect(page.locator("#sheet-total")).to_contain_text("已评 1/6 项")
    _shots(page, "sheet-proposal")
    page.keyboard.press("Enter")  # accepts the proposal
    expect(state).to_have_text("✓ 已保存")
    expect(_row(page, strength).locator(".points")).to_have_text("13")
    # Enter saved the row and moved on to the next criterion; it did not post the page.
    expect(_row(page, growth).locator("select[name=level]")).to_be_focused()

    # Points typed, saved; then 99 over them: refused beside the field, the old mark gone.
    growth_box = _row(page, growth).locator("input[name=points]")
    growth_box.focus()
    page.keyboard.type("12")
    page.keyboard.press("Tab")
    expect(_row(page, growth).locator(".save-state")).to_have_text("✓ 已保存")
    profit_box = _row(page, profit).locator("input[name=points]")
    profit_box.focus()
    page.keyboard.type("99")
    page.keyboard.press("Tab")
    profit_state = _row(page, profit).locator(".save-state")
    expect(profit_state).to_have_text("本项最高 15 分。")
    expect(profit_box).to_have_value("99")
    expect(profit_box).to_have_attribute("aria-invalid", "true")
    growth_box.focus()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("99")
    expect(_row(page, growth).locator(".save-state")).not_to_contain_text("已保存")  # typing
    page.keyboard.press("Tab")
    expect(_row(page, growth).locator(".save-state")).to_have_text("本项最高 15 分。")
    expect(_row(page, growth).locator(".points")).to_have_text("—")
    expect(page.locator("#sheet-total")).to_contain_text("已评 2/6 项，尚不能定级。")
    _shots(page, "sheet-refused")

    # An incomplete submit names every row without points, and the row whose refused
    # change hides the 12 still stored; it keeps the overall comment.
    page.locator("#comment").focus()
    page.keyboard.type("战略客户，建议维持A级")
    page.keyboard.press("Tab")  # to the submit button
    page.keyboard.press("Enter")
    message = page.locator("#submit-message")
    expect(message).to_contain_text("提交前请为每个评分项打分。尚未打分：")
    expect(message).to_contain_text(f"尚未打分：{profit.name}、{relation.name}、{strategy.name}。")
    expect(message).to_contain_text(f"修改尚未保存：{growth.name}。")
    for criterion in (profit, relation, strategy):
        expect(_row(page, criterion).locator(".need-mark")).to_have_text("尚未打分")
    expect(_row(page, growth).locator(".need-mark")).to_have_text("修改未保存")
    expect(_row(page, nature).locator(".need-mark")).to_have_text("")
    expect(page.locator("#comment")).to_have_value("战略客户，建议维持A级")
    expect(_row(page, growth).locator("select[name=level]")).to_be_focused()  # the first
    expect(profit_box).to_have_value("99")
    _shots(page, "sheet-submit-refused")
    assert Assessment.get_by_id(sheet.id).preliminary_submitted_at is None
    stored = {s.criterion: s.points for s in Score.select().where(Score.assessment == sheet)}
    assert stored == {nature.id: 15, strength.id: 13, growth.id: 12}


def test_points_typed_before_the_levels_answer_are_the_points_saved(
        app, page, setup, monkeypatch):
    """A level picked by its digit, points typed and Enter pressed while the level's save
    is still on its way: its answer (which proposes other points) leaves the typed points
    in the field, and they are what is saved, not the proposal."""
    import threading

    import views.cycles
    cycle = _started(app, setup)
    sheet = Assessment.get(Assessment.cycle == cycle, Assessment.branch == setup["east"])
    strength = _criteria(setup["template"])[1]
    release, real = threading.Event(), views.cycles.save_score

    def slow_level(sheet, user, stage, criterion_id, level_id, points, *rest):
        if points is None:  # the level alone: its answer proposes the midpoint, 13
            release.wait(10)
        return real(sheet, user, stage, criterion_id, level_id, points, *rest)
    monkeypatch.setattr(views.cycles, "save_score", slow_level)
    log_in(page, "bm_e")
    page.goto(f"/assessments/{sheet.id}")
    row = _row(page, strength)
    row.locator("select[name=level]").focus()
    with page.expect_request(f"**/assessments/{sheet.id}/scores"):
        page.keyboard.press("1")  # 强大 (10–15)
    expect(row.locator("input[name=points]")).to_be_focused()
    page.keyboard.type("14")
    page.keyboard.press("Enter")  # sent after the level's save, in the sheet's queue
    release.set()
    expect(row.locator(".points")).to_have_text("14")
    expect(row.locator(".save-state")).to_have_text("✓ 已保存")
    expect(row.locator("input[name=points]")).to_have_value("14")
    assert Score.get(Score.assessment == sheet.id, Score.criterion == strength.id).points == 14
