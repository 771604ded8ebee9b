"""A branch manager fills a preliminary sheet in a real browser: autosave and live total."""
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
        expect(page.locator(f"#criterion-{criterion.id} .save-state")).to_contain_text("已保存")
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
