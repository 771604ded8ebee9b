"""The compliance page in a real browser: a filter redraws the counts, the groups and the
account managers to choose from, and the back button returns to what was shown before."""
import re

from playwright.sync_api import expect

from tests.live import log_in, screenshot
from tests.test_tiers import _activity, days_ago, world  # noqa: F401 (fixture)


def test_compliance_filters_redraw_counts_groups_and_choices(app, new_page, world, make):  # noqa: F811
    late = make.customer(world["east"], "华东逾期", tier=world["tiers"]["A"],
                         account_manager=world["rep"])
    _activity(late, "call", days_ago(45))
    page = new_page()
    log_in(page, "director")
    page.goto("/compliance")
    expect(page.locator("details summary")).to_have_text("Per branch")
    manager = page.get_by_label("Account manager")
    expect(manager.locator(f"option[value='{world['rep'].id}']")).to_have_count(0)

    page.get_by_label("Branch").select_option(label=world["east"].name)
    expect(page.locator("details summary")).to_have_text("Per account manager")
    expect(manager.locator(f"option[value='{world['rep'].id}']")).to_have_count(1)
    east_contacts = page.get_by_test_id("count-contact").locator(".big").inner_text()
    screenshot(page, "compliance-branch")

    page.get_by_label("Account manager").select_option(str(world["rep"].id))
    expect(page).to_have_url(re.compile(rf"manager={world['rep'].id}$"))  # the list came
    expect(page.get_by_test_id("overdue")).to_contain_text("华东逾期")
    expect(page.get_by_label("Account manager")).to_have_value(str(world["rep"].id))
    assert int(east_contacts) >= 1

    page.go_back()
    expect(page.get_by_label("Account manager")).to_have_value("")
    expect(page.locator("details summary")).to_have_text("Per account manager")


def test_the_tiers_and_users_lists_fit_a_phone(app, new_page, world):  # noqa: F811
    """At 390 px the tier and user lists are cards, one per row, labelled field by
    field: nothing scrolls sideways; at 1366 px they are tables again."""
    page = new_page()
    log_in(page, "admin")
    for path, testid_row in (("/tiers", "[data-testid=tiers] tbody tr"),
                             ("/admin/users", "#users tbody tr")):
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        first = page.locator(testid_row).first
        expect(first).to_have_css("display", "block")
        assert first.locator("td[data-label]").count() >= 4
        screenshot(page, f"phone-{path.strip('/').replace('/', '-')}")
        page.set_viewport_size({"width": 1366, "height": 900})
        expect(first).to_have_css("display", "table-row")
