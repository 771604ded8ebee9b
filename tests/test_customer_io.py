"""Customer import and export at the service level: reading real branch lists,
row errors, scope, all-or-nothing writes, round trips, hostile files.

The HTTP side (upload form, preview page, confirmation) is in test_customers.py.
"""
import csv
import datetime
import io
import struct
import time
import zipfile
from decimal import Decimal

import openpyxl
import pytest
from flask_babel import force_locale
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from models import AuditEvent, Customer, CustomerYear, DomainError, ImportBatch, User
from services import customer_io
from services.customer_io import (
    apply_import,
    discard_import,
    export_customers,
    load_preview,
    preview_import,
    save_preview,
)
from services.spreadsheets import (
    FORMULA_TRIGGERS,
    SpreadsheetError,
    neutralise,
    read_table,
    unneutralise,
    write_csv,
    write_xlsx,
)

HEADERS = ["客户编号", "客户名称", "客户类型", "企业性质", "所属行业", "区域", "所属分公司",
           "客户经理", "合作开始日期", "暂定等级", "2026年销售额", "2026年利润", "2026年回款率",
           "2026年信用天数"]
MARCH_25 = datetime.date(2026, 3, 25)


# --- helpers -------------------------------------------------------------------

def xlsx(*rows):
    """An .xlsx file (bytes) with these rows, as Excel or WPS would save it."""
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(list(row))
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def csv_file(*rows, encoding="utf-8-sig"):
    out = io.StringIO(newline="")
    csv.writer(out).writerows([["" if v is None else v for v in row] for row in rows])
    return out.getvalue().encode(encoding)


def by_row(preview):
    return {row.row_number: row for row in preview.rows}


def zip_of(members):
    """A zip archive (bytes) of {name: bytes}."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def refused_quickly(filename, data, expected):
    """read_table refuses `data` with a message containing `expected`, within 2 s."""
    started = time.perf_counter()
    with pytest.raises(SpreadsheetError) as refused:
        read_table(filename, data)
    assert time.perf_counter() - started < 2, "refusing took too long"
    assert expected in str(refused.value)


@pytest.fixture
def en(app):
    """A request context in English: the services' messages are asserted in English
    (the Chinese catalog comes later)."""
    with app.test_request_context(), force_locale("en"):
        yield


@pytest.fixture
def company(make, en):
    """Two branches with their reps, an administrator and a Shanghai branch manager."""
    sh = make.branch("SH", "上海分公司", region="华东")
    bj = make.branch("BJ", "北京分公司", region="华北")
    return dict(
        sh=sh, bj=bj,
        admin=make.user("admin", roles=("admin",)),
        wangwei=make.user("wangwei", branch=sh, display_name="王伟"),
        lina=make.user("lina", branch=sh, display_name="李娜"),
        zhangwei=make.user("zhangwei", branch=bj, display_name="张伟"),
        bm_sh=make.user("bm_sh", roles=("branch_manager",), branch=sh, display_name="周敏"),
    )


def imported(data, user, filename="客户名单.xlsx"):
    """Preview, save and confirm a file; returns the counts."""
    preview = preview_import(filename, data, user)
    assert not preview.has_errors, [(r.row_number, r.errors) for r in preview.rows if r.errors]
    return apply_import(save_preview(preview, user), user)


# --- reading the lists branches keep ------------------------------------------

def test_title_row_chinese_headers_and_messy_values(company):
    """Title row, Chinese headers, full-width, 万元, serial and text dates, blank rows all read."""
    data = xlsx(
        ["2026年上海分公司客户名单"],
        [],
        [*HEADERS, "2025年销售额(万元)"],
        ["Ｃ００１", "  上海浦江精密机械有限公司\u3000", "已成交", "民营企业", "制造业", "华东",
         "上海分公司", "王伟", datetime.datetime(2026, 3, 25), "否", "１，２３４，５６７.８９",
         "12.5万元", "95.5%", "30天", "123.4567"],
        [],
        ["C002", "北京华信投资", "潜在", "国企", "金融", "华北", "BJ", "zhangwei", "2026/3/25",
         "是", "1,000", "-200", "0", "0", None],
        ["C003", "王伟（个体经营）", "existing", "Individual", "retail", None, " sh ", " 李娜 ",
         "2026年3月25日", "yes", 5000, 0.5, 100, 90, "-"],
        ["C004", "广源物流有限公司", None, "外资企业", "交通物流", None, "上海分公司", None,
         46106, "0", " ¥8,000.50 元 ", "(1,200)", "88%", 60, None],
        ["C005", "中天建设股份有限公司", "已成交", "股份公司", "建筑业", "华东", "上海分公司",
         "lina", "2026.3.25", "FALSE", "1.5亿", "3万", "99.99", "45", None],
        ["C006", "恒通软件有限公司", "已成交", "民营企业", "信息技术", "华东", "上海分公司",
         "王伟", "2026-03-25", "0", "20260325", "0", "0", "0", None],
        [None, None, "  ", None],
    )
    preview = preview_import("上海分公司.xlsx", data, company["admin"])
    assert preview.header_row == 3
    assert [(r.row_number, r.action) for r in preview.rows] == [
        (4, "create"), (6, "create"), (7, "create"), (8, "create"), (9, "create"),
        (10, "create")]
    assert preview.counts.as_dict() == {"create": 6, "update": 0, "unchanged": 0, "error": 0}
    assert Customer.select().count() == 0  # a preview writes nothing
    assert apply_import(save_preview(preview, company["admin"]), company["admin"]) == {
        "create": 6, "update": 0, "unchanged": 0}

    customers = {c.code: c for c in Customer.select()}
    first = customers["C001"]
    assert (first.name, first.kind, first.nature, first.industry, first.region) == (
        "上海浦江精密机械有限公司", "existing", "private", "manufacturing", "华东")
    assert first.branch_id == company["sh"].id
    assert first.account_manager_id == company["wangwei"].id
    assert first.name_initials == "shpjjmjxyxgs"
    assert all(c.cooperation_since == MARCH_25 for c in customers.values())
    assert [c.provisional for c in customers.values()] == [False, True, True, False, False, False]
    second = customers["C002"]
    assert (second.kind, second.nature, second.industry, second.branch_id,
            second.account_manager_id) == ("prospect", "state_owned", "finance",
                                           company["bj"].id, company["zhangwei"].id)
    third, fourth = customers["C003"], customers["C004"]
    assert third.name == "王伟（个体经营）"  # names keep their full-width brackets
    assert (third.nature, third.branch_id, third.account_manager_id) == (
        "individual", company["sh"].id, company["lina"].id)
    assert (fourth.kind, fourth.region, fourth.account_manager_id) == ("existing", "", None)

    figures = {(y.customer.code, y.year): (y.sales, y.profit, y.collection_rate, y.credit_days)
               for y in CustomerYear.select()}
    assert figures == {
        ("C001", 2026): (Decimal("1234567.89"), Decimal("125000"), Decimal("95.5"), 30),
        ("C001", 2025): (Decimal("1234567"), 0, 0, 0),
        ("C002", 2026): (1000, -200, 0, 0),
        ("C003", 2026): (5000, Decimal("0.5"), 100, 90),
        ("C004", 2026): (Decimal("8000.5"), -1200, 88, 60),
        ("C005", 2026): (150_000_000, 30_000, Decimal("99.99"), 45),
        ("C006", 2026): (20260325, 0, 0, 0),
    }


def test_english_headers_years_in_any_place_and_two_row_headers(company):
    """English headers, years before or after the figure, and a merged year row are understood."""
    english = csv_file(
        ["Customer code", "Customer name", "Branch", "Account manager", "2026 Sales",
         "Sales 2025", "Collection rate (2026)", "credit_days_2026", "Notes"],
        ["E001", "Eastern Trading", "SH", "wangwei", "100", "90", "80%", "30", "call back"])
    preview = preview_import("list.csv", english, company["admin"])
    assert preview.ignored_columns == ["Notes"]
    assert preview.rows[0].action == "create"
    assert preview.rows[0].values["years"] == {
        "2026": {"sales": "100.00", "collection_rate": "80.00", "credit_days": "30"},
        "2025": {"sales": "90.00"}}

    two_rows = xlsx(
        [None, None, None, "2025年", None, "2026年度", None],
        ["客户编号", "客户名称", "所属分公司", "销售额", "利润", "销售额(万元)", "利润"],
        ["T001", "两行表头公司", "上海分公司", "100", "10", "2", "20"])
    preview = preview_import("two-rows.xlsx", two_rows, company["admin"])
    assert preview.header_row == 2
    assert preview.rows[0].values["years"] == {
        "2025": {"sales": "100.00", "profit": "10.00"},
        "2026": {"sales": "20000.00", "profit": "20.00"}}


@pytest.mark.parametrize("rows, message", [
    ([["客户名称", "所属分公司"], ["无编号", "SH"]], "No header row with a customer code"),
    ([["客户编号", "客户名称", "销售额"], ["C1", "x", "1"]], "needs a year"),
    ([["客户编号", "客户名称", "名称"], ["C1", "x", "y"]], "appears twice"),
    ([["客户编号", "客户名称"], [None, None]], "no customers below the header"),
    ([], "No header row"),
])
def test_files_that_are_no_customer_list_are_refused(company, rows, message):
    """A file that is no customer list is refused as a whole, with a clear message."""
    with pytest.raises(SpreadsheetError) as refused:
        preview_import("list.xlsx", xlsx(*rows), company["admin"])
    assert message in str(refused.value)


def test_every_row_error_names_its_row_and_column(company):
    """Every kind of bad row is reported with its row number and column; nothing is written."""
    def row(**values):
        cells = {**dict.fromkeys(HEADERS), "所属分公司": "上海分公司", "客户名称": "某公司",
                 **values}
        return [cells[h] for h in HEADERS]

    data = xlsx(
        HEADERS,
        row(客户编号="OK01"),                                   # 2: fine
        row(客户编号=None, 客户名称="无编号公司"),                 # 3
        row(客户编号="OK01", 客户名称="重复"),                    # 4
        row(客户编号="E003", 所属分公司="广州分公司"),             # 5
        row(客户编号="E004", 客户经理="赵六"),                    # 6
        row(客户编号="E005", 客户经理="zhangwei"),                # 7: works in Beijing
        row(客户编号="E006", **{"2026年销售额": "abc"}),          # 8
        row(客户编号="E007", 合作开始日期="2026/13/45"),           # 9
        row(客户编号="E008", 企业性质="外星企业"),                 # 10
        row(客户编号="E009", 暂定等级="也许"),                    # 11
        row(客户编号="E010", **{"2026年回款率": "120%"}),         # 12
        row(客户编号="E011", **{"2026年信用天数": "3.5"}),        # 13
        row(客户编号="E012", 客户名称=None),                      # 14
        row(客户编号="E013", 所属分公司=None),                    # 15
        row(客户编号="E014", **{"2026年销售额": "1e5", "2026年利润": "5%"}),  # 16
        row(客户编号="E015", 客户类型="大客户"),                   # 17
        row(客户编号="E016", 合作开始日期=2026),                   # 18: a year is no date
    )
    preview = preview_import("errors.xlsx", data, company["admin"])
    rows = by_row(preview)
    expected = {
        3: [("客户编号", "The customer code is missing.")],
        4: [("客户编号", "The code OK01 appears again: first on row 2.")],
        5: [("所属分公司", "Unknown branch: 广州分公司.")],
        6: [("客户经理", "Unknown account manager: 赵六.")],
        7: [("客户经理", "zhangwei does not work in 上海分公司.")],
        8: [("2026年销售额", "abc is not a number.")],
        9: [("合作开始日期", "2026/13/45 is not a date")],
        10: [("企业性质", "Unknown Enterprise nature: 外星企业.")],
        11: [("暂定等级", "也许 is neither yes nor no")],
        12: [("2026年回款率", "between 0 and 100")],
        13: [("2026年信用天数", "whole number")],
        14: [("客户名称", "A new customer needs a name.")],
        15: [("所属分公司", "A new customer needs a branch.")],
        16: [("2026年销售额", "1e5 is not a number."), ("2026年利润", "5% is not a number.")],
        17: [("客户类型", "Unknown Customer type: 大客户.")],
        18: [("合作开始日期", "2026 is not a date")],
    }
    assert rows[2].action == "create"
    for number, errors in expected.items():
        assert rows[number].action == "error", number
        assert len(rows[number].errors) == len(errors), (number, rows[number].errors)
        for (column, message), (got_column, got_message) in zip(errors, rows[number].errors):
            assert (got_column, message in got_message) == (column, True), (number, got_message)
    assert preview.counts.error == len(expected)
    assert Customer.select().count() == 0
    batch = save_preview(preview, company["admin"])
    with pytest.raises(DomainError, match="rows with errors"):
        apply_import(batch, company["admin"])
    assert Customer.select().count() == 0


def test_numbers_and_dates_in_their_many_spellings(company):
    """Amounts and dates in their many spellings all read to the same values."""
    amounts = ["1234.5", "1,234.50", "１２３４.５", "¥1,234.5", "1234.5元", "0.12345万元",
               "0.12345万", " 1 234.5 ", "+1234.50", 1234.5, "RMB1234.5"]
    dates = [MARCH_25, datetime.datetime(2026, 3, 25, 0, 0), 46106, "46106", "20260325",
             "2026/3/25", "2026-03-25", "2026.3.25", "2026年3月25日", "２０２６年３月２５日",
             "2026-03-25 00:00:00"]
    rows = [["客户编号", "客户名称", "所属分公司", "2026年销售额", "合作开始日期"]]
    rows += [[f"N{i:02d}", "某公司", "SH", amount, day]
             for i, (amount, day) in enumerate(zip(amounts, dates))]
    preview = preview_import("n.xlsx", xlsx(*rows), company["admin"])
    assert [r.errors for r in preview.rows] == [[]] * len(amounts)
    assert {r.values["years"]["2026"]["sales"] for r in preview.rows} == {"1234.50"}
    assert {r.values["cooperation_since"] for r in preview.rows} == {"2026-03-25"}


def test_csv_in_gb18030_and_utf8(company):
    """CSV as Chinese Excel saves it (GB18030/GBK) reads like UTF-8 with or without BOM."""
    rows = (["客户编号", "客户名称", "所属分公司", "客户经理"],
            ["G001", "吉祥𠮷商贸有限公司", "上海分公司", "王伟"])
    for encoding in ("gb18030", "utf-8", "utf-8-sig"):
        preview = preview_import("gbk.csv", csv_file(*rows, encoding=encoding),
                                 company["admin"])
        assert [(r.action, r.name) for r in preview.rows] == [("create", "吉祥𠮷商贸有限公司")]
    with pytest.raises(SpreadsheetError, match="neither UTF-8 nor GBK"):
        preview_import("bad.csv", b"\xff\xfe\xfd\x80 not text", company["admin"])


# --- updates, scope and the write ----------------------------------------------

def test_update_lists_changes_and_unchanged_rows(company, make):
    """A known code updates only what differs and lists it; an equal row is left untouched."""
    changed = make.customer(code="U001", name="旧名称", branch=company["sh"], region="华东",
                            account_manager=company["wangwei"])
    same = make.customer(code="U002", name="原样公司", branch=company["sh"], region="华东")
    CustomerYear.create(customer=changed, year=2026, sales=100, profit=10)
    CustomerYear.create(customer=same, year=2026, sales=500, profit=50)
    stamp = Customer.get_by_id(same.id).updated_at
    data = xlsx(["客户编号", "客户名称", "区域", "客户经理", "2026年销售额", "2026年利润"],
                ["U001", "新名称", None, "李娜", "200", "10"],
                ["U002", "原样公司", "华东", None, "500.00", 50])
    preview = preview_import("u.xlsx", data, company["admin"])
    rows = by_row(preview)
    assert rows[2].action == "update" and rows[3].action == "unchanged"
    assert rows[2].changes == [("Customer name", "旧名称", "新名称"),
                               ("Account manager", "王伟", "李娜"),
                               ("2026 Sales", "¥100.00", "¥200.00")]
    assert apply_import(save_preview(preview, company["admin"]), company["admin"]) == {
        "create": 0, "update": 1, "unchanged": 1}
    changed = Customer.get_by_id(changed.id)
    assert (changed.name, changed.name_initials, changed.region) == ("新名称", "xmc", "华东")
    assert changed.account_manager_id == company["lina"].id
    assert CustomerYear.get(customer=changed, year=2026).sales == 200
    assert Customer.get_by_id(same.id).updated_at == stamp


def test_search_finds_what_an_import_wrote(company, make):
    """Customers an import creates and renames are found by search as a plain pass over
    every customer finds them (the import writes in bulk, past the model's save())."""
    from tests.test_customers import TERMS, _search_agrees_with_a_full_scan

    make.customer(code="C0001", name="旧名称科技", branch=company["sh"])
    make.customer(code="C0002", name="原样公司", branch=company["sh"])
    rows = [["C0001", "鑫源湖茶"], ["C0002", "原样公司"]] + [
        [f"C{n:04d}", ["杭州西湖茶业", "科达建设集团", f"独一{n}号商行"][n % 3]]
        for n in range(3, 40)]
    assert imported(xlsx(["客户编号", "客户名称", "所属分公司"],
                         *[[*row, "上海分公司"] for row in rows]), company["admin"]) == {
        "create": 37, "update": 1, "unchanged": 1}
    _search_agrees_with_a_full_scan(company["admin"], TERMS + ("旧名", "旧名称", "鑫源", "xy"))


def test_branch_scoped_user_imports_only_their_branch(company, make):
    """A branch-scoped user imports only their branch and learns nothing about others."""
    make.customer(code="B001", name="北京秘密客户", branch=company["bj"])
    manager = company["bm_sh"]
    data = xlsx(["客户编号", "客户名称", "所属分公司", "2026年销售额"],
                ["S001", "本分公司客户", None, "100"],
                ["S002", "想去北京", "北京分公司", "100"],
                ["B001", "换个名字", None, "999"])
    rows = by_row(preview_import("scope.xlsx", data, manager))
    assert rows[2].action == "create"
    assert rows[3].errors == [("所属分公司", "You can only keep customers of your own branch.")]
    # The customer form's words for any code held elsewhere: not whose, nor that a branch does.
    assert rows[4].errors == [("客户编号", "This customer code cannot be used; please choose "
                                         "another (letters, digits, '.', '-' and '_').")]
    assert rows[4].changes == [] and rows[4].name == "换个名字"
    assert "北京" not in repr(rows[4])

    assert imported(xlsx(["客户编号", "客户名称"], ["S001", "本分公司客户"]), manager) == {
        "create": 1, "update": 0, "unchanged": 0}
    assert Customer.get(Customer.code == "S001").branch_id == company["sh"].id


def test_apply_is_all_or_nothing(company, monkeypatch):
    """A failure while writing leaves no customer, figure or audit event; the preview stays."""
    admin = company["admin"]
    data = xlsx(["客户编号", "客户名称", "所属分公司", "2026年销售额"],
                ["A001", "甲公司", "SH", "1"], ["A002", "乙公司", "SH", "2"])
    batch = save_preview(preview_import("a.xlsx", data, admin), admin)
    events = AuditEvent.select().count()

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(customer_io, "_write_figures", broken)
    with pytest.raises(RuntimeError):
        apply_import(batch, admin)
    assert Customer.select().count() == 0 and CustomerYear.select().count() == 0
    assert AuditEvent.select().count() == events
    assert ImportBatch.get_by_id(batch.id).status == "preview"
    monkeypatch.undo()
    batch = ImportBatch.get_by_id(batch.id)
    assert apply_import(batch, admin)["create"] == 2
    assert CustomerYear.select().count() == 2


def test_a_clash_while_writing_rolls_everything_back(company, make, monkeypatch):
    """A duplicate code slipped in by someone else undoes the whole import, with a message."""
    admin = company["admin"]
    data = xlsx(["客户编号", "客户名称", "所属分公司"], ["K001", "甲", "SH"], ["K002", "乙", "SH"])
    batch = save_preview(preview_import("k.xlsx", data, admin), admin)
    make.customer(code="K002", name="别人刚建的", branch=company["bj"])
    monkeypatch.setattr(customer_io, "_load_current", lambda codes: {})  # the check saw none
    with pytest.raises(DomainError, match="changed while the file was being imported"):
        apply_import(batch, admin)
    assert [c.code for c in Customer.select()] == ["K002"]
    assert ImportBatch.get_by_id(batch.id).status == "preview"


def test_confirm_checks_again_against_the_database(company, make):
    """Confirming re-checks each row: a code new meanwhile is an update; a misfit stops all."""
    admin = company["admin"]
    data = xlsx(["客户编号", "客户名称", "所属分公司", "客户经理"],
                ["M001", "后来者公司", "SH", "王伟"], ["M002", "另一家", "SH", "李娜"])
    batch = save_preview(preview_import("m.xlsx", data, admin), admin)
    make.customer(code="M001", name="抢先建立", branch=company["sh"])
    assert apply_import(batch, admin) == {"create": 1, "update": 1, "unchanged": 0}
    assert [c.name for c in Customer.select().where(Customer.code == "M001")] == ["后来者公司"]

    data = xlsx(["客户编号", "客户名称", "所属分公司", "客户经理"],
                ["M003", "第三家", "SH", "王伟"], ["M004", "第四家", "SH", "李娜"])
    batch = save_preview(preview_import("m2.xlsx", data, admin), admin)
    User.update(branch=company["bj"]).where(User.id == company["wangwei"].id).execute()
    with pytest.raises(DomainError, match="changed since the preview") as refused:
        apply_import(batch, admin)
    assert "row 2" in str(refused.value)
    assert not Customer.select().where(Customer.code.in_(["M003", "M004"])).exists()


def test_confirm_only_own_fresh_previews_and_audit_once(company):
    """Only the uploader confirms, only once; the import is one audit event with its counts."""
    admin, other = company["admin"], company["bm_sh"]
    data = xlsx(["客户编号", "客户名称", "所属分公司"], ["X001", "某公司", "SH"])
    batch = save_preview(preview_import("x.xlsx", data, admin), admin)
    with pytest.raises(DomainError, match="another user"):
        apply_import(batch, other)
    counts = apply_import(batch, admin)
    assert counts == {"create": 1, "update": 0, "unchanged": 0}
    stored = ImportBatch.get_by_id(batch.id)
    assert stored.status == "applied" and stored.applied_at is not None
    events = list(AuditEvent.select().where(AuditEvent.action == "customer_import"))
    assert len(events) == 1
    assert (events[0].actor_id, events[0].object_type, events[0].object_id) == (
        admin.id, "import_batch", str(batch.id))
    assert events[0].after_data == {"create": 1, "update": 0, "unchanged": 0,
                                    "filename": "x.xlsx"}
    with pytest.raises(DomainError, match="already"):
        apply_import(stored, admin)
    assert Customer.select().count() == 1

    discarded = save_preview(preview_import("y.xlsx", data, admin), admin)
    discard_import(discarded, admin)
    with pytest.raises(DomainError, match="already"):
        apply_import(ImportBatch.get_by_id(discarded.id), admin)


def test_share_of_wallet_and_upcoming_volume_are_read_in_both_languages(company, make):
    """我方份额 and 近期采购量 read like the other yearly figures: Chinese or English
    headers, %, 万元 in the header or the cell; an empty cell leaves the figure unknown."""
    known = make.customer(code="P003", name="已有份额公司", branch=company["sh"])
    CustomerYear.create(customer=known, year=2026, sales=10, share_of_wallet=Decimal("12"),
                        upcoming_volume=Decimal("5000"))
    chinese = xlsx(["客户编号", "客户名称", "所属分公司", "2026年我方份额(%)",
                    "2026年近期采购量(万元)", "2026年销售额"],
                   ["P001", "份额甲", "SH", "35.5%", "120", "100"],
                   ["P002", "份额乙", "SH", "100", "1.5亿元", None],
                   ["P003", "已有份额公司", "SH", None, "-", None],
                   ["P004", "份额丁", "SH", "0", "0", None])
    assert imported(chinese, company["admin"]) == {"create": 3, "update": 0, "unchanged": 1}
    english = csv_file(["Customer code", "Share of wallet 2025", "2025 Upcoming purchase volume"],
                       ["P001", "40", "¥8,000.50"])
    assert imported(english, company["admin"], "list.csv")["update"] == 1
    figures = {(y.customer.code, y.year): (y.share_of_wallet, y.upcoming_volume)
               for y in CustomerYear.select()}
    assert figures == {
        ("P001", 2026): (Decimal("35.5"), Decimal("1200000")),
        ("P001", 2025): (Decimal("40"), Decimal("8000.5")),
        ("P002", 2026): (Decimal("100"), Decimal("150000000")),
        ("P003", 2026): (Decimal("12"), Decimal("5000")),
        ("P004", 2026): (Decimal("0"), Decimal("0")),
    }
    # A year with a share alone keeps its sales and profit at zero, as the others do.
    assert CustomerYear.get(customer=Customer.get(code="P001"), year=2025).sales == 0


def test_share_and_volume_changes_are_listed_in_the_preview(company, make):
    """An update names the share and the volume it changes, as the screens show them."""
    customer = make.customer(code="V001", name="变更份额", branch=company["sh"])
    CustomerYear.create(customer=customer, year=2026, share_of_wallet=Decimal("20"),
                        upcoming_volume=None)
    preview = preview_import("v.xlsx", xlsx(["客户编号", "2026年我方份额", "2026年近期采购量"],
                                            ["V001", "25", "30000"]), company["admin"])
    assert preview.rows[0].changes == [("2026 Share of wallet", "20.00%", "25.00%"),
                                       ("2026 Upcoming purchase volume", "", "¥30,000.00")]


@pytest.mark.parametrize("share, volume, errors", [
    ("120%", "100", [("2026年我方份额", "between 0 and 100")]),
    ("100.01", None, [("2026年我方份额", "between 0 and 100")]),
    ("-1", "-5万", [("2026年我方份额", "between 0 and 100"),
                   ("2026年近期采购量", "cannot be negative")]),
    (None, "(1,200)", [("2026年近期采购量", "cannot be negative")]),
    ("abc", "5%", [("2026年我方份额", "abc is not a number."),
                   ("2026年近期采购量", "5% is not a number.")]),
])
def test_bad_share_or_volume_is_refused_in_its_cell(company, share, volume, errors):
    """A share outside 0–100 %, a negative volume or text where a number belongs is an
    error of its row and column; nothing is written."""
    data = xlsx(["客户编号", "客户名称", "所属分公司", "2026年我方份额", "2026年近期采购量"],
                ["W001", "好公司", "SH", "50", "100"], ["W002", "坏公司", "SH", share, volume])
    rows = by_row(preview_import("w.xlsx", data, company["admin"]))
    assert rows[2].action == "create"
    assert rows[3].action == "error"
    assert [column for column, _m in rows[3].errors] == [column for column, _m in errors]
    for (_c, expected), (_c2, got) in zip(errors, rows[3].errors):
        assert expected in got
    assert Customer.select().count() == 0


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_export_then_import_restores_share_and_volume(company, book, fmt):
    """The export carries each year's share and volume, in both languages' headers; a
    file exported, with the figures changed meanwhile, imports them back as they were."""
    with force_locale("zh_CN"):
        data, _mimetype, filename = export_customers(Customer.select().order_by(Customer.code),
                                                     fmt)
    table = read_table(filename, data)
    assert "2026年我方份额" in table[0] and "2026年近期采购量" in table[0]
    english = export_customers(Customer.select(), fmt)[0]
    assert "2026 Share of wallet" in read_table(filename, english)[0]
    before = {(y.customer_id, y.year): (y.share_of_wallet, y.upcoming_volume)
              for y in CustomerYear.select()}
    CustomerYear.update(share_of_wallet=Decimal("1"), upcoming_volume=Decimal("2")).execute()
    counts = imported(data, company["admin"], filename)
    assert counts == {"create": 0, "update": 3, "unchanged": 3}
    after = {(y.customer_id, y.year): (y.share_of_wallet, y.upcoming_volume)
             for y in CustomerYear.select()}
    # A figure the export left empty (unknown) stays as it is now: an empty cell changes
    # nothing.
    assert after == {key: (share if share is not None else Decimal("1"),
                           volume if volume is not None else Decimal("2"))
                     for key, (share, volume) in before.items()}


def test_preview_survives_the_database_round_trip(company):
    """What is saved is what is loaded: any worker can show and confirm a preview."""
    data = xlsx(["客户编号", "客户名称", "所属分公司", "Notes"], ["L001", "某公司", "SH", "x"],
                [None, "无编号"])
    preview = preview_import("l.xlsx", data, company["admin"])
    loaded = load_preview(ImportBatch.get_by_id(save_preview(preview, company["admin"]).id))
    assert loaded == preview
    assert loaded.counts.create == 1 and loaded.counts["error"] == 1


# --- export ------------------------------------------------------------------

@pytest.fixture
def book(company, make):
    """Customers whose values try every corner of the columns."""
    sh, bj = company["sh"], company["bj"]
    rows = [
        dict(code="R001", name="=HYPERLINK(\"http://evil\")", branch=sh,
             account_manager=company["wangwei"], cooperation_since=MARCH_25, region="华东"),
        dict(code="R002", name="+86 公司", branch=sh, kind="prospect", nature="government",
             industry="public", provisional=True),
        dict(code="R003", name="-负号公司", branch=bj, account_manager=company["zhangwei"],
             nature="foreign", industry="energy"),
        dict(code="R004", name="@提及公司", branch=sh, nature="individual"),
        dict(code="R005", name="'=已带引号", branch=sh, industry="real_estate"),
        dict(code="R006", name="王伟（个体经营）", branch=sh, account_manager=company["lina"]),
    ]
    customers = [make.customer(**row) for row in rows]
    for customer, year, sales in ((customers[0], 2025, "1234.5"), (customers[0], 2026, "0"),
                                  (customers[2], 2026, "99999999999.99"),
                                  (customers[5], 2024, "-12.30")):
        CustomerYear.create(customer=customer, year=year, sales=Decimal(sales),
                            profit=Decimal("-1.5"), collection_rate=Decimal("87.25"),
                            credit_days=45)
    # The portfolio's figures: a year with both, one with a share alone, and their edges.
    CustomerYear.update(share_of_wallet=Decimal("37.5"), upcoming_volume=Decimal("1234567.89")
                        ).where(CustomerYear.customer == customers[0].id,
                                CustomerYear.year == 2026).execute()
    CustomerYear.update(share_of_wallet=Decimal("100"), upcoming_volume=Decimal("0")
                        ).where(CustomerYear.customer == customers[2].id).execute()
    CustomerYear.update(share_of_wallet=Decimal("0.01")).where(
        CustomerYear.customer == customers[5].id).execute()
    return customers


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_export_then_import_changes_nothing(company, book, fmt):
    """An exported file imported again finds every customer unchanged."""
    data, mimetype, filename = export_customers(Customer.select().order_by(Customer.code), fmt)
    assert filename == f"customers-{datetime.date.today():%Y%m%d}.{fmt}"
    assert mimetype.startswith("text/csv" if fmt == "csv" else "application/vnd.openxml")
    preview = preview_import(filename, data, company["admin"])
    assert [(r.code, r.action, r.errors) for r in preview.rows] == [
        (c.code, "unchanged", []) for c in book]
    assert not preview.ignored_columns


def test_export_in_chinese_round_trips_too(company, book, app):
    """An export made in Chinese imports back unchanged for a user reading English."""
    with force_locale("zh_CN"):
        data, _mimetype, filename = export_customers(Customer.select(), "xlsx")
    preview = preview_import(filename, data, company["admin"])
    assert {r.action for r in preview.rows} == {"unchanged"}


def test_export_neutralises_formulas_and_keeps_numbers(company, book):
    """Exported text that would start a formula gets a quote; numbers and dates stay as such."""
    data, _mimetype, _filename = export_customers(Customer.select().order_by(Customer.code),
                                                  "xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    names = {row[0].value: row[1] for row in sheet.iter_rows(min_row=2)}
    for code, text in (("R001", "'=HYPERLINK"), ("R002", "'+86"), ("R003", "'-负号"),
                       ("R004", "'@提及"), ("R005", "''=已带引号")):
        assert names[code].data_type == "s" and names[code].value.startswith(text), code
    assert names["R006"].value == "王伟（个体经营）"
    first = [cell for cell in sheet[2]]
    headers = [cell.value for cell in sheet[1]]
    assert first[headers.index("Cooperation since")].is_date
    sales = first[headers.index("2025 Sales")]
    assert sales.data_type == "n" and sales.value == 1234.5

    text = export_customers(Customer.select().order_by(Customer.code), "csv")[0]
    assert text.startswith(b"\xef\xbb\xbf")
    lines = text.decode("utf-8-sig").splitlines()
    assert lines[1].startswith("R001,\"'=HYPERLINK(\"\"http://evil\"\")\"")
    assert ",-12.30," in lines[6]  # numbers stay numbers, minus sign and all


def test_write_neutralises_every_trigger_and_reads_back_exactly(en):
    """= + - @ tab CR LF are neutralised in both formats and read back as written."""
    values = ["=1+1", "+1", "-1", "@x", "\tx", "\rx", "\nx", "'=q", "'plain", "", "a=b"]
    data = write_xlsx(["h"] * len(values), [values + [-5, Decimal("-1.5")]], "t")
    cells = list(openpyxl.load_workbook(io.BytesIO(data)).active.iter_rows(min_row=2))[0]
    for value, cell in zip(values, cells):
        if value[:1] in FORMULA_TRIGGERS or value.startswith("'="):
            # A lone CR reads back as LF or CR depending on openpyxl's XML parser (lxml
            # keeps it); either way the cell is text, quoted.
            assert cell.data_type == "s"
            assert cell.value.replace("\r", "\n") == "'" + value.replace("\r", "\n")
    assert [c.data_type for c in cells[-2:]] == ["n", "n"]
    read = read_table("t.xlsx", data)[1]
    # XML may turn a lone CR into LF (as above); everything else comes back as written.
    assert [v.replace("\r", "\n") if v else v for v in read[:len(values)]] == [
        v.replace("\r", "\n") or None for v in values]
    assert read_table("t.csv", write_csv(["h"] * len(values), [values]))[1] == [
        v or None for v in values]


@given(st.text())
def test_neutralise_round_trips_any_text(text):
    """unneutralise(neutralise(s)) == s, and the result never starts a formula."""
    assert unneutralise(neutralise(text)) == text
    assert neutralise(text)[:1] not in FORMULA_TRIGGERS


def test_export_takes_the_scoped_query_and_fetches_in_few_queries(company, book):
    """The export holds only the scoped query's customers, in a few queries rather than N."""
    from models.base import db

    query = Customer.visible_to(company["bm_sh"]).order_by(Customer.code)
    queries = []
    original = db.obj.execute_sql

    def counting(sql, *args, **kwargs):
        queries.append(sql)
        return original(sql, *args, **kwargs)

    db.obj.execute_sql = counting
    try:
        data, _mimetype, _filename = export_customers(query, "csv")
    finally:
        db.obj.execute_sql = original
    codes = [line.split(",")[0] for line in data.decode("utf-8-sig").splitlines()[1:]]
    assert codes == ["R001", "R002", "R004", "R005", "R006"]
    assert 3 <= len(queries) <= 5, queries  # branches, users, customers, figures


# --- hostile files -------------------------------------------------------------

def test_zip_bombs_are_refused_before_inflating(en):
    """Zip bombs (by total size or by ratio) are refused from the archive's directory alone."""
    parts = {"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"}
    ratio_bomb = zip_of({**parts, "xl/worksheets/sheet1.xml": b"\0" * (20 * 1024 * 1024)})
    refused_quickly("bomb.xlsx", ratio_bomb, "unpacks to far more data")
    size_bomb = zip_of({**parts, **{f"xl/worksheets/sheet{i}.xml": b"<a/>" * (5 * 1024 * 1024)
                                    for i in range(1, 5)}})
    refused_quickly("big.xlsx", size_bomb, "unpacks to far more data")


def test_a_member_that_understates_its_size_is_cut_off(en):
    """A zip member that understates its size is read no further and refused as damaged."""
    source = zipfile.ZipFile(io.BytesIO(xlsx(["客户编号"], ["C1"])))
    members = {name: source.read(name) for name in source.namelist()}
    sheet = "xl/worksheets/sheet1.xml"
    members[sheet] = members[sheet].replace(b"<sheetData>",
                                            b"<sheetData>" + b" " * (20 * 1024 * 1024))
    data = bytearray(zip_of(members))
    entry = data.find(b"PK\x01\x02")
    while entry != -1:  # central directory entries: the name at 46, its size at 24
        length = struct.unpack_from("<H", data, entry + 28)[0]
        if data[entry + 46:entry + 46 + length] == sheet.encode():
            struct.pack_into("<I", data, entry + 24, 4096)
        entry = data.find(b"PK\x01\x02", entry + 4)
    refused_quickly("liar.xlsx", bytes(data), "damaged")


def test_xml_bombs_are_refused_by_defusedxml(en):
    """A billion-laughs sheet inside a real workbook is refused at once."""
    assert openpyxl.DEFUSEDXML, "defusedxml must be installed: openpyxl relies on it"
    laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'
                        for i in range(1, 10))
              + ']><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
              '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row>'
              "</sheetData></worksheet>").encode()
    source = zipfile.ZipFile(io.BytesIO(xlsx(["客户编号"], ["C1"])))
    members = {name: source.read(name) for name in source.namelist()}
    members["xl/worksheets/sheet1.xml"] = laughs
    refused_quickly("laughs.xlsx", zip_of(members), "XML that is not allowed")


PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89"


@pytest.mark.parametrize("filename, data, message", [
    ("photo.xlsx", PNG, "not an Excel workbook"),
    ("photo.csv", PNG, "binary data"),
    ("nul.csv", "客户编号,客户名称\r\nC1,某\0公司\r\n".encode(), "binary data"),
    ("control.csv", b"code,name\r\nC1,\x01\x02\x03\r\n", "binary data"),
    ("old.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "old Excel (.xls)"),
    ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "old Excel (.xls)"),
    ("list.txt", b"code,name\r\n", "Upload an Excel workbook"),
    ("list", b"code,name\r\n", "Upload an Excel workbook"),
    ("damaged.xlsx", b"PK\x03\x04" + b"\x00garbage" * 50, "damaged"),
    ("document.xlsx", zip_of({"word/document.xml": b"<w/>"}), "not an Excel workbook"),
    ("renamed.csv", zip_of({"xl/workbook.xml": b"<w/>"}), "is an Excel workbook"),
    ("empty.csv", b"", "empty"),
    ("huge.csv", b"a,b\r\n" * (3 * 1024 * 1024), "larger than 10 MB"),
])
def test_hostile_or_wrong_files_are_refused(en, filename, data, message):
    """Renamed binaries, NUL bytes, .xls, damaged zips, oversized files are refused quickly."""
    refused_quickly(filename, data, message)


@pytest.mark.parametrize("maker", [xlsx, csv_file])
def test_rows_and_columns_are_capped(en, maker):
    """More rows or columns than allowed are refused, blank ones beyond do not count."""
    data = maker(*[[f"r{i}", "x"] for i in range(6)])
    assert len(read_table("t." + ("xlsx" if maker is xlsx else "csv"), data, max_rows=6)) == 6
    name = "t." + ("xlsx" if maker is xlsx else "csv")
    with pytest.raises(SpreadsheetError, match="more than 5 rows"):
        read_table(name, data, max_rows=5)
    with pytest.raises(SpreadsheetError, match="more than 1 columns"):
        read_table(name, data, max_columns=1)
    padded = maker(["a", "b", None, None], [None, None], [None, None])
    assert read_table(name, padded, max_rows=1, max_columns=2)[0] == ["a", "b"]


# --- fuzzing -------------------------------------------------------------------

KNOWN_HEADERS = HEADERS + ["2025年销售额(万元)", "Sales 2024", "Customer code", "备注", ""]
CELLS = st.one_of(
    st.none(), st.text(max_size=30), st.integers(min_value=-10**20, max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
    st.dates(min_value=datetime.date(1900, 3, 1)),
    st.sampled_from(["", " ", "-", "万元", "1,2", "１２３", "2026年2月30日", "46106", "是", "否",
                     "上海分公司", "SH", "王伟", "wangwei", "=1+1", "'=x", "%", "(1)", "1e400",
                     "99999999999999999999999999999", "NaN", "Infinity", "\u3000", "\ufeff"]))
ROWS = st.lists(st.lists(CELLS, max_size=16), max_size=8)


def _printable(value):
    if isinstance(value, str):
        return ILLEGAL_CHARACTERS_RE.sub("", value)
    return value


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(header=st.lists(st.sampled_from(KNOWN_HEADERS), min_size=1, max_size=16),
       rows=ROWS, as_csv=st.booleans())
def test_fuzzed_files_never_raise_anything_unexpected(company, header, rows, as_csv):
    """Whatever the cells hold, preview_import gives a preview or a SpreadsheetError only."""
    header = ["客户编号", *header]
    if as_csv:
        data, name = csv_file(header, *[[str(c) if c is not None else "" for c in row]
                                        for row in rows]), "f.csv"
    else:
        data, name = xlsx(header, *[[_printable(c) for c in row] for row in rows]), "f.xlsx"
    for user in (company["admin"], company["bm_sh"]):
        try:
            preview = preview_import(name, data, user)
        except SpreadsheetError:
            continue
        for row in preview.rows:
            assert row.action in ("create", "update", "unchanged", "error")
            assert row.changes is not None
    assert Customer.select().count() == 0


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000), name=st.sampled_from(["f.xlsx", "f.csv"]),
       seed=st.integers(min_value=0, max_value=2**32), flips=st.integers(0, 20))
def test_fuzzed_bytes_and_damaged_workbooks_raise_only_spreadsheet_errors(en, data, name, seed,
                                                                          flips):
    """Random bytes and damaged workbooks are read or refused with a SpreadsheetError only."""
    import random

    workbook = bytearray(xlsx(["客户编号", "客户名称"], ["C1", "某公司"]))
    rng = random.Random(seed)
    for _ in range(flips):
        workbook[rng.randrange(len(workbook))] = rng.randrange(256)
    for filename, candidate in ((name, data), ("w.xlsx", bytes(workbook))):
        try:
            read_table(filename, candidate)
        except SpreadsheetError:
            pass
