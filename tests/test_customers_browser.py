"""A branch manager moves the branch's Excel sheet into Tierdesk, in a real browser."""
import io
import re

import pytest
from openpyxl import Workbook, load_workbook
from playwright.sync_api import expect

from models import Activity, Customer
from tests.live import log_in, screenshot
from tests.test_customers import _book

# Uploaded files are read by a background job: here it runs inside the request.
pytestmark = pytest.mark.usefixtures("immediate_jobs")


def _sheet(tmp_path, rows, name):
    book = Workbook()
    for row in rows:
        book.active.append(row)
    path = tmp_path / name
    book.save(path)
    return path


HEADER = ["客户编号", "客户名称", "企业性质", "所属行业", "所属分公司", "客户经理", "2026年销售额"]


def test_branch_manager_imports_finds_logs_and_exports(page, make, tmp_path):
    """Import (fixing what the preview shows), find by pinyin, log a visit, export."""
    _book(make)
    log_in(page, "bm_e")

    # 1. The first upload has a mistake: the preview says where, and nothing is saved.
    bad = _sheet(tmp_path, [["华东分公司客户清单"], HEADER,
                            ["C501", "上海浦东新港物流有限公司", "民营企业", "交通物流", "E",
                             "宋海燕", "1,200万元"],
                            ["C502", "上海嘉定汽车配件有限公司", "股份公司", "制造业", "E",
                             "王不存在", "800万"]], "清单.xlsx")
    page.goto("/customers")
    page.get_by_role("link", name="从 Excel 导入").click()
    page.set_input_files("input[type=file]", str(bad))
    page.get_by_role("button", name="上传并预览").click()
    expect(page.get_by_test_id("count-error")).to_have_text("1")
    expect(page.locator("tr.row-error")).to_contain_text("客户经理")
    expect(page.locator("tr.row-error td").first).to_have_text("4")
    assert not Customer.select().where(Customer.code == "C501").exists()
    screenshot(page, "import-preview-errors")

    # 2. The corrected file imports both rows at once.
    good = _sheet(tmp_path, [["华东分公司客户清单"], HEADER,
                             ["C501", "上海浦东新港物流有限公司", "民营企业", "交通物流", "E",
                              "宋海燕", "1,200万元"],
                             ["C502", "上海嘉定汽车配件有限公司", "股份公司", "制造业", "E",
                              "宋海燕", "800万"]], "清单-改.xlsx")
    page.get_by_role("link", name="重新上传").click()
    page.set_input_files("input[type=file]", str(good))
    page.get_by_role("button", name="上传并预览").click()
    expect(page.get_by_test_id("count-create")).to_have_text("2")
    page.get_by_role("button", name="导入 2 行").click()
    expect(page.locator(".flash-success")).to_contain_text("新建 2 位")

    # 3. Search as you type by pinyin initials: the list narrows without a reload.
    page.fill("#q", "shpdxg")
    expect(page.locator("#results tbody tr")).to_have_count(1)
    expect(page.locator("#results")).to_contain_text("上海浦东新港物流有限公司")
    expect(page).to_have_url(re.compile(r"/customers\?q=shpdxg$"))
    page.reload()
    expect(page.locator("#results tbody tr")).to_have_count(1)

    # 4. Open it and log a visit in one step.
    page.get_by_role("link", name="上海浦东新港物流有限公司").click()
    page.select_option("select[name=kind]", "visit")
    page.fill("input[name=occurred_on]", "2026-11-20")
    page.fill("textarea[name=notes]", "拜访物流部，谈明年运力合同")
    page.get_by_role("button", name="登记").click()
    expect(page.locator("#activities .timeline")).to_contain_text("拜访物流部，谈明年运力合同")
    expect(page.locator("#activities .timeline")).to_contain_text("2026年11月20日")
    customer = Customer.get(Customer.code == "C501")
    assert Activity.get(Activity.customer == customer).kind == "visit"
    screenshot(page, "customer-detail")

    # 5. Export the branch's list: the file holds the branch's customers only.
    page.goto("/customers")
    with page.expect_download() as download:
        page.get_by_role("link", name="导出 Excel").click()
    data = download.value.path().read_bytes()
    codes = [row[0].value for row in load_workbook(io.BytesIO(data)).active.iter_rows(min_row=2)]
    assert sorted(codes) == ["C001", "C002", "C003", "C501", "C502"]
