"""Allocation in the browser: a branch manager adds a rule, reassigns a leaving rep's
customers with a preview, and reads the result on the workload and on a customer's
page; at 1366 px and on a phone."""
import pytest
from playwright.sync_api import expect

from models import AuditEvent, Customer
from tests.live import log_in, screenshot
from tests.test_allocation import world  # noqa: F401 - the fixture


def _fits(page, what):
    """Nothing on the page is wider than the screen."""
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{what} scrolls sideways: {width}"


@pytest.mark.parametrize("width", [1366, 390])
def test_a_branch_manager_reassigns_a_leaving_reps_customers(page, world, width):  # noqa: F811
    """赵磊 leaves: the branch manager gives 浦东's customers to 王芳 by a new rule and the
    rest to a pool, previews who goes where, confirms, and sees 赵磊's book empty and
    each customer's history name both managers. Back returns to the preview's choice."""
    w = world
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "bm_sh")
    page.goto("/allocation")
    expect(page.get_by_test_id("workload")).to_contain_text("赵磊")
    _fits(page, "the allocation page")
    with page.expect_navigation():
        page.get_by_role("link", name="新建规则").click()
    page.fill("input[name=region]", "浦东")
    page.get_by_label("王芳").check()
    with page.expect_navigation():
        page.get_by_role("button", name="保存").click()
    expect(page.locator(".flash")).to_contain_text("分配规则已保存")
    with page.expect_navigation():
        page.get_by_role("link", name="新建规则").click()
    page.get_by_label("李娜").check()
    page.get_by_label("张伟").check()
    with page.expect_navigation():
        page.get_by_role("button", name="保存").click()
    expect(page.get_by_test_id("rule")).to_have_count(2)
    expect(page.get_by_test_id("rule").first).to_contain_text("区域包含“浦东”")

    with page.expect_navigation():
        page.get_by_test_id("reassign-link").click()
    page.select_option("select[name=from_manager]", str(w["zhao"].id))
    with page.expect_navigation():
        page.get_by_role("button", name="预览").click()
    preview = page.get_by_test_id("preview")
    expect(preview).to_contain_text("将有 3 位客户更换客户经理")
    expect(page.get_by_test_id("per-manager")).to_contain_text("王芳")
    expect(page.get_by_test_id("moves")).to_contain_text("上海丙0制造有限公司")
    _fits(page, "the preview")
    screenshot(page, f"reassign-preview-{width}")
    assert Customer.select().where(Customer.account_manager == w["zhao"].id).count() == 3
    with page.expect_navigation():
        page.get_by_test_id("confirm").click()
    expect(page.locator(".flash")).to_contain_text("已重新分配 3 位客户")
    expect(page.get_by_test_id("workload-row").filter(has_text="赵磊")).to_contain_text("偏少")
    held = dict(Customer.select(Customer.code, Customer.account_manager)
                .where(Customer.code.startswith("SC")).tuples())
    assert held == {"SC0": w["wang"].id, "SC1": w["wang"].id, "SC2": w["li"].id}
    assert AuditEvent.select().where(AuditEvent.action == "customers_reassigned").count() == 1

    # Back to the preview: asked again it moves nobody; kept by the browser, its
    # confirm is refused whole. Either way nothing moves twice.
    page.go_back()
    page.wait_for_load_state()
    if page.get_by_test_id("confirm").count():
        with page.expect_navigation():
            page.get_by_test_id("confirm").click()
        expect(page.get_by_test_id("refusal")).to_contain_text("预览之后这些客户已有变动")
    else:
        expect(page.get_by_test_id("preview")).to_contain_text("没有客户需要更换客户经理")
    assert AuditEvent.select().where(AuditEvent.action == "customers_reassigned").count() == 1
    page.goto(f"/customers/{Customer.get(Customer.code == 'SC0').id}")
    history = page.get_by_test_id("ownership")
    expect(history).to_contain_text("王芳")
    expect(history).to_contain_text("赵磊")
    expect(history).to_contain_text("批量重新分配")
    _fits(page, "the customer's page")


def test_the_new_customer_form_asks_the_rules_again_as_the_industry_changes(
        page, world):  # noqa: F811
    """Choosing the industry a rule names selects that rule's manager at once; the user
    may still pick someone else, and the customer is saved with that choice."""
    w = world
    from models.allocation import save_rule
    save_rule(None, w["admin"], w["sh"].id, [w["wang"].id], industry="energy")
    save_rule(None, w["admin"], w["sh"].id, [w["li"].id])
    log_in(page, "bm_sh")
    page.goto("/customers/new")
    manager = page.locator("select[name=account_manager]")
    expect(manager).to_have_value(str(w["li"].id))
    page.select_option("select[name=industry]", "energy")
    expect(page.locator("select[name=account_manager]")).to_have_value(str(w["wang"].id))
    expect(page.get_by_test_id("proposal")).to_contain_text("第 1 条")
    page.fill("input[name=code]", "NEW9")
    page.fill("input[name=name]", "上海新能源科技有限公司")
    page.select_option("select[name=account_manager]", str(w["zhang"].id))
    with page.expect_navigation():
        page.get_by_role("button", name="保存").click()
    assert Customer.get(Customer.code == "NEW9").account_manager_id == w["zhang"].id
