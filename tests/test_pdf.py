"""PDFs: the one renderer and its fetcher, assessment sheets, blank sheets, the report."""
import io
import re
import subprocess

import pytest
from pypdf import PdfReader

from models import Assessment, ScorecardTemplate
from services import pdf
from services.demo import ensure_reference_data
from tests.conftest import login
from tests.pdf_helpers import (
    RARE_NAME,
    fetch_report,
    pdf_pages,
    pdf_text,
    report_bytes,
    signing_cycle,
)


@pytest.fixture
def app(app, tmp_path):
    """The app with the report jobs' files in this test's own directory."""
    app.config.update(REPORTS_DIR=str(tmp_path / "reports"))
    return app


def zh(app, msgid, **values):
    """The Chinese the catalog gives `msgid` (English until the catalog has it)."""
    from flask_babel import force_locale, gettext
    with app.test_request_context(), force_locale("zh_CN"):
        return gettext(msgid, **values)


def footer(app, page, pages):
    """The page footer's words without spaces: pdftotext drops the spaces that sit
    between Chinese characters and digits (第 1 页 reads back as 第1页)."""
    return re.sub(r"\s+", "", zh(app, "Page %(page)s of %(pages)s", page=page, pages=pages))


def squeezed(text):
    return re.sub(r"\s+", "", text)


HOSTILE = """<!doctype html><html><head>
<link rel="stylesheet" href="file:///etc/passwd">
<link rel="stylesheet" href="http://169.254.169.254/latest/meta-data/">
<link rel="attachment" href="file:///etc/passwd" title="passwd">
<style>@import url("file:///etc/hostname"); @import "http://169.254.169.254/latest/user-data";
p { background: url("file:///etc/shadow"); }</style>
</head><body>
<p>正文</p>
<img src="file:///etc/passwd" alt="">
<img src="http://169.254.169.254/latest/meta-data/iam" alt="">
<img src="../../../../etc/passwd" alt="">
<a rel="attachment" href="file:///etc/passwd">附件</a>
<a rel="attachment" href="http://169.254.169.254/">附件2</a>
<img alt=""
 src="data:image/svg+xml;utf8,%3Csvg xmlns='http://www.w3.org/2000/svg' width='4' height='4'/%3E">
<img src="favicon.svg" alt="">
</body></html>"""


def test_fetcher_refuses_files_network_attachments_and_imports(app):
    """file://, the metadata address, attachments and @imports are refused; the PDF
    embeds none of them; data: URLs and the app's own static files still load."""
    fetcher = pdf.SafeFetcher()
    with app.test_request_context():
        data = pdf.render_html(HOSTILE, fetcher=fetcher)
    refused = " ".join(fetcher.refused)
    for url in ("file:///etc/passwd", "http://169.254.169.254/latest/meta-data/",
                "file:///etc/hostname", "http://169.254.169.254/latest/user-data",
                "file:///etc/shadow", "http://169.254.169.254/latest/meta-data/iam",
                "file:///etc/passwd"):
        assert url in refused, url
    assert "etc/passwd" in refused  # the relative path that climbs out of static/ too
    assert not any("favicon.svg" in url or url.startswith("data:") for url in fetcher.refused)
    reader = PdfReader(io.BytesIO(data))
    names = reader.trailer["/Root"].get("/Names")
    assert names is None or "/EmbeddedFiles" not in names.get_object()
    for page in reader.pages:
        for annot in page.get("/Annots") or []:
            assert annot.get_object().get("/Subtype") != "/FileAttachment"
    with open("/etc/passwd", "rb") as f:
        assert f.read(40) not in data
    assert b"root:" not in data
    assert "正文" in pdf_text(data)


def test_fetcher_refuses_symlinks_out_of_static(app, tmp_path):
    """A path that resolves outside static/ is refused even when it looks inside."""
    fetcher = pdf.SafeFetcher()
    with pytest.raises(pdf.RefusedURL):
        fetcher.fetch((pdf.STATIC_DIR / ".." / "app.py").as_uri())
    with pytest.raises(pdf.RefusedURL):
        fetcher.fetch("file://evil.example/etc/passwd")
    assert fetcher.fetch((pdf.STATIC_DIR / "css" / "pdf.css").as_uri()).read()


def test_one_font_configuration_per_process(app):
    """Every document reuses the same FontConfiguration."""
    with app.test_request_context():
        first = pdf.font_config()
        pdf.render_html("<p>一</p>")
        assert pdf.font_config() is first


def test_user_text_is_escaped_in_css_strings():
    """A title cannot close the <style> or the CSS string it is put in."""
    hostile = '"</style><img src=file:///etc/passwd>\\'
    quoted = pdf.css_string(hostile)
    assert "</style>" not in quoted and "<" not in quoted and '"' not in quoted[1:-1]


def _rare_glyph_png(app, text, tmp_path, name):
    with app.test_request_context():
        data = pdf.render_html(f'<p style="font-size:60pt">{text}</p>')
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(data)
    subprocess.run(["pdftoppm", "-png", "-r", "40", "-singlefile", str(path),
                    str(tmp_path / name)], check=True)
    return (tmp_path / f"{name}.png").read_bytes(), data


def test_rare_name_characters_render_with_a_real_glyph(app, tmp_path):
    """堃, 喆 and 𠮷 come out of the CJK font (not a fallback, not a box)."""
    from fontTools.ttLib import TTCollection
    collection = TTCollection("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
    sc = next(f for f in collection.fonts if "Noto Sans CJK SC" in str(f["name"].getDebugName(1)))
    cmap = sc.getBestCmap()
    for char in "堃喆𠮷":
        assert ord(char) in cmap, char
    box, _ = _rare_glyph_png(app, "\U000F0000", tmp_path, "box")  # no font has it: a box
    images = set()
    for n, char in enumerate("堃喆𠮷"):
        png, data = _rare_glyph_png(app, char, tmp_path, f"c{n}")
        assert png != box
        images.add(png)
        fonts = subprocess.run(["pdffonts", "-"], input=data, capture_output=True).stdout
        assert b"Noto-Sans-CJK-SC" in fonts
        assert char in pdf_text(data)
    assert len(images) == 3


@pytest.fixture
def graded(app, make):
    return signing_cycle(app, make)


def test_assessment_sheet_pdf(client, graded):
    """The filled sheet shows the particulars, criteria and levels, preliminary and
    committee points, the final grade, and names with rare characters intact."""
    s, cycle = graded
    login(client, "admin")
    sheet = Assessment.select().join(Assessment.customer.rel_model).where(
        Assessment.cycle == cycle, Assessment.customer.rel_model.name == RARE_NAME).get()
    response = client.get(f"/assessments/{sheet.id}/sheet.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    text = pdf_text(response.data)
    app = client.application
    assert RARE_NAME in text
    assert "客户质量等级评估表" in text
    for label in ("客户性质", "政府/国有企业", "股份公司", "初评", "评级委员会主任",
                  zh(app, "Rationale")):
        assert label in text, label
    sheet = Assessment.get_by_id(sheet.id)
    assert sheet.final_tier.name_zh in text
    assert footer(app, 1, 1) in squeezed(text)
    assert pdf_pages(response.data) == 1


def test_another_branchs_sheet_pdf_is_a_404(client, graded):
    """A branch manager gets 404 for another branch's sheet PDF, and their own."""
    s, cycle = graded
    theirs = Assessment.get(Assessment.cycle == cycle, Assessment.branch == s["west"])
    mine = Assessment.get(Assessment.cycle == cycle, Assessment.branch == s["east"])
    login(client, "bm_e")
    assert client.get(f"/assessments/{theirs.id}/sheet.pdf").status_code == 404
    assert client.get(f"/assessments/{mine.id}/sheet.pdf").status_code == 200


def test_blank_sheet_pdf(app, client, make):
    """The blank sheet of a template lists each criterion with its levels and the bands."""
    with app.test_request_context():
        template = ensure_reference_data()
    make.user("viewer", roles=("sales_rep",))
    login(client, "viewer")
    page = client.get(f"/scorecards/{template.id}").get_data(as_text=True)
    assert f"/scorecards/{template.id}/sheet.pdf" in page
    response = client.get(f"/scorecards/{template.id}/sheet.pdf")
    text = pdf_text(response.data)
    for criterion in ("客户性质", "客户实力", "客户成长性", "利润贡献", "客户关系", "战略重要性"):
        assert criterion in text
    assert "政府/国有企业" in text and "评估人" in text
    assert client.get("/scorecards/999999/sheet.pdf").status_code == 404
    assert ScorecardTemplate.select().count() >= 1


def test_report_pdf_has_cover_summary_every_sheet_and_signature_page(client, graded,
                                                                     immediate_jobs):
    """The report: cover, summary lists, one sheet per customer, the signature page,
    numbered 第 N 页 / 共 M 页 across the joined parts."""
    s, cycle = graded
    login(client, "chair")
    page = client.get(f"/cycles/{cycle.id}").get_data(as_text=True)
    assert f'href="/cycles/{cycle.id}/report"' in page
    client.application.config["REPORT_BATCH"] = 2  # several batches even for five sheets
    response = fetch_report(client, cycle)
    assert response.status_code == 200
    data = response.data
    text = pdf_text(data)
    pages = pdf_pages(data)
    app = client.application
    assert cycle.name in text and zh(app, "Summary") in text
    assert text.count("客户质量等级评估表") >= 5
    for customer in s["customers"][1:]:
        assert customer.name in text
    assert RARE_NAME in text
    assert "特殊政策" in text and "资信等级审定" in text
    assert "草稿：评级委员会尚未全体签字确认本评定结果。" in text  # unsigned: a draft's cover
    assert re.search(r"特殊政策客户（\d+）", text)  # each list's title counts it
    assert zh(app, "Signatures of the grading committee") in text
    footers = [footer(app, n, pages) for n in range(1, pages + 1)]
    positions = [squeezed(text).find(words) for words in footers]
    assert -1 not in positions and positions == sorted(positions), positions


def test_report_is_refused_to_branch_roles(client, graded):
    """A branch manager cannot read the whole cycle's report (every branch is in it)."""
    s, cycle = graded
    login(client, "bm_e")
    assert client.get(f"/cycles/{cycle.id}/report.pdf").status_code == 403


def test_report_numbers_pages_right_when_a_sheet_runs_long(client, graded, immediate_jobs):
    """A sheet that runs over one page (a long rationale) still leaves every page
    numbered N of the true total."""
    s, cycle = graded
    sheet = cycle.assessments.first()
    Assessment.update(rationale="委员会详细讨论了该客户的情况。" * 400).where(
        Assessment.id == sheet.id).execute()
    login(client, "chair")
    client.application.config["REPORT_BATCH"] = 2
    data = fetch_report(client, cycle).data
    pages = pdf_pages(data)
    text = pdf_text(data)
    app = client.application
    for n in range(1, pages + 1):
        assert footer(app, n, pages) in squeezed(text)
    assert footer(app, 1, pages - 1) not in squeezed(text)


def test_cycle_page_offers_the_report_to_report_roles_only(client, graded):
    """The chair sees the report and signature buttons; a branch manager does not."""
    s, cycle = graded
    login(client, "chair")
    page = client.get(f"/cycles/{cycle.id}").get_data(as_text=True)
    assert 'data-testid="report-link"' in page and f"/cycles/{cycle.id}/signing" in page
    manager = client.application.test_client()
    login(manager, "bm_e")
    assert 'data-testid="report-link"' not in manager.get(f"/cycles/{cycle.id}").get_data(
        as_text=True)


def test_report_summary_counts_only_final_grades(app, make):
    """The report's summary says 已评定 for final grades alone, and how many results are
    only a total's grade, marked （推算） in its lists."""
    from models import Tier
    from services import reports
    s, cycle = signing_cycle(app, make, phase="committee")  # preliminary totals, no finals
    Assessment.update(tier_before=Tier.get(Tier.code == "C").id).where(
        Assessment.cycle == cycle).execute()
    with app.test_request_context():
        text = pdf_text(report_bytes(reports.report_pdf, cycle))
    assert "共 5 位客户，已评定 0 位" in text
    assert "其中 5 位的结果只是按总分推算的等级，尚未定级。" in text
    assert text.count("（推算）") >= 5


def test_report_summary_crosses_the_portfolio_quadrants_with_the_results(app, make):
    """The report's summary counts the cycle's customers per portfolio quadrant and
    result: a placed customer under its strategy, the others as without figures; the
    counts add up to the results."""
    from decimal import Decimal

    from models.customers import save_portfolio_figures
    from models.cycles import cycle_summary, portfolio_by_result
    from services import reports
    s, cycle = signing_cycle(app, make, phase="committee")
    placed = s["customers"][1]
    with app.test_request_context():
        save_portfolio_figures(placed, s["chair"], year=2026, share_of_wallet=Decimal("60"),
                               upcoming_volume=Decimal("5e6"))
        summary = cycle_summary(cycle)
        table = {q: (counts, total) for q, counts, total
                 in portfolio_by_result(cycle, summary["results"])["rows"]}
        text = pdf_text(report_bytes(reports.report_pdf, cycle))
    assert table["keep"][1] == 1
    assert table[None][1] == sum(now for _tier, now, _before in summary["distribution"]) - 1
    assert table["develop"][1] == table["hold_or_win"][1] == table["win_or_let_go"][1] == 0
    assert "客户组合象限与评级结果" in text
    assert "重点保持" in text and "尚无份额与采购量" in text


def _pages(data):
    """The text of each page of a PDF (pdftotext ends each page with a form feed)."""
    pages = pdf_text(data).split("\f")
    return pages[:-1] if pages and not pages[-1].strip() else pages


def test_a_draft_report_says_draft_on_every_page_and_carries_nothing_to_verify(app, make,
                                                                               tmp_path):
    """Until the whole committee has signed, every page of the report says 草稿 and the
    cover has no fingerprint and no verification QR code; the signed report has both on
    its cover and 草稿 nowhere."""
    from models.signing import results_fingerprint, sign
    from services import reports
    from tests.conftest import PASSWORD
    app.config.update(SIGNING_DIR=str(tmp_path / "signing"),
                      PUBLIC_URL="https://tierdesk.example.com")
    s, cycle = signing_cycle(app, make)
    with app.test_request_context():
        sign(cycle, s["members"][0], PASSWORD)  # one signature: still a draft
        draft = report_bytes(reports.signed_report_pdf, cycle, batch_size=2)
    pages = _pages(draft)
    assert len(pages) == pdf_pages(draft) >= 7
    assert [n for n, page in enumerate(pages, 1) if "草稿" not in page] == []
    fingerprint = results_fingerprint(cycle)
    cover = pages[0]
    for absent in (fingerprint, "SHA-256", "核验", "/verify"):
        assert absent not in cover, absent
    assert "草稿：评级委员会尚未全体签字确认本评定结果。" in cover
    assert "tierdesk.example.com" not in pdf_text(draft)
    with app.test_request_context():
        for member in (s["members"][1], s["chair"]):
            sign(cycle, member, PASSWORD)
        signed = report_bytes(reports.signed_report_pdf, cycle, batch_size=2)
    assert "草稿" not in pdf_text(signed)
    cover = _pages(signed)[0]
    assert "评定结果指纹（SHA-256）：" in cover and fingerprint in squeezed(cover)
    assert "核验本文件：" in cover and "https://tierdesk.example.com/verify" in cover


def test_report_summary_shows_the_movement_matrix(client, graded, immediate_jobs):
    """The committee report's summary crosses the tier each customer held before the
    cycle with the final grade, the unchanged on the diagonal, row and column totals."""
    from models import Tier
    s, cycle = graded  # final grades in agenda order: B, B, A, A, A
    tiers = {t.code: t.id for t in Tier.select()}
    sheets = list(Assessment.select().where(Assessment.cycle == cycle)
                  .order_by(Assessment.agenda_position))
    for sheet, code in zip(sheets, ("B", "A", "A", None, "C")):
        Assessment.update(tier_before=tiers[code] if code else None).where(
            Assessment.id == sheet.id).execute()
    login(client, "chair")
    text = pdf_text(fetch_report(client, cycle).data)
    assert "等级变动矩阵：评定前等级 × 本次结果" in text
    rows = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 6 and all(w.isdigit() for w in words[1:]):
            rows.setdefault(words[0], words[1:])
    assert squeezed(text).count("评定前＼本次结果A级B级C级D级合计") == 1
    assert rows["A级"] == ["1", "1", "0", "0", "2"]  # one kept A, one down to B
    assert rows["B级"] == ["0", "1", "0", "0", "1"]
    assert rows["C级"] == ["1", "0", "0", "0", "1"]  # up to A
    assert rows["D级"] == ["0", "0", "0", "0", "0"]
    assert rows["尚未定级"] == ["1", "0", "0", "0", "1"]
    assert rows["合计"] == ["3", "2", "0", "0", "5"]


def test_scores_print_as_whole_points_or_two_decimals(client, graded):
    """A sheet's totals, committee mean and final total print as 66 (never 66.0 or
    66.00), on the PDF sheet and on the customer's page."""
    s, cycle = graded  # the first sheet: members' totals 60 and 72, mean 66
    sheet = Assessment.select().where(Assessment.cycle == cycle).order_by(
        Assessment.agenda_position).first()
    login(client, "admin")
    text = pdf_text(client.get(f"/assessments/{sheet.id}/sheet.pdf").data)
    final = re.search(r"最终总分\s+(\S+)", text).group(1)
    assert final == "66"
    # The totals row: the preliminary total, each member's, the committee mean.
    assert re.search(r"总分（满分 100）\s+60\s+(60\s+72|72\s+60)\s+66\b", text)
    assert not re.search(r"\b\d+\.0\b|\b\d+\.00\b", text)
    page = client.get(f"/customers/{sheet.customer_id}").get_data(as_text=True)
    assert '<span class="muted">66</span>' in page


def _kept_parts(cycle):
    from services import reports
    return {path.name: path.stat().st_mtime_ns
            for path in reports.parts_dir().glob(f"cycle-{cycle.id}-*.pdf")}


def test_report_keeps_its_parts_and_never_joins_a_changed_sheet_stale(app, make):
    """The sheets are rendered in parts that are kept: a second report renders none of
    them again and reads the same. When one sheet changes, only its part is rendered
    again, the report shows the change, and the outdated part is gone."""
    from services import reports
    s, cycle = signing_cycle(app, make)
    with app.test_request_context():
        # Five sheets: three parts.
        first = report_bytes(reports.report_pdf, cycle, batch_size=2, processes=1)
        kept = _kept_parts(cycle)
        assert len(kept) == 3
        again = report_bytes(reports.report_pdf, cycle, batch_size=2, processes=1)
        assert _kept_parts(cycle) == kept  # none rendered again
        assert pdf_text(again) == pdf_text(first)
        last = Assessment.select().where(Assessment.cycle == cycle).order_by(
            Assessment.agenda_position.desc()).first()
        Assessment.update(rationale="复核后维持原级：回款已恢复").where(
            Assessment.id == last.id).execute()
        changed = report_bytes(reports.report_pdf, cycle, batch_size=2, processes=1)
        now = _kept_parts(cycle)
    assert len(now) == 3 and len(set(now) - set(kept)) == 1  # one part replaced
    assert {name: kept[name] for name in set(now) & set(kept)} == \
        {name: now[name] for name in set(now) & set(kept)}  # the others untouched
    assert "复核后维持原级：回款已恢复" in pdf_text(changed)
    assert "复核后维持原级" not in pdf_text(first)
    assert pdf_pages(changed) == pdf_pages(first)


def test_parts_render_side_by_side_in_worker_processes(app, make):
    """With more parts to render than one, they render in worker processes at once,
    and the report is the same as one rendered part by part in this process."""
    from services import reports
    s, cycle = signing_cycle(app, make)
    with app.test_request_context():
        parallel = report_bytes(reports.report_pdf, cycle, batch_size=2, processes=2)
        for path in reports.parts_dir().glob("*.pdf"):
            path.unlink()
        serial = report_bytes(reports.report_pdf, cycle, batch_size=2, processes=1)
    assert pdf_text(parallel) == pdf_text(serial)
    assert pdf_pages(parallel) == pdf_pages(serial) >= 7


def test_settling_the_last_sheet_of_a_part_renders_it_ahead(client, app, make, immediate_jobs):
    """When the chair settles the last unsettled sheet of a part, the worker renders
    that part at once, so the report after the meeting only joins."""
    from models import Tier
    from models.cycles import save_score
    s, cycle = signing_cycle(app, make, phase="committee")
    login(client, "chair")
    app.config["REPORT_BATCH"] = 3  # five sheets: a part of three, a part of two
    sheets = list(Assessment.select().where(Assessment.cycle == cycle)
                  .order_by(Assessment.agenda_position))
    with app.test_request_context():
        for sheet in sheets:
            for criterion in s["template"].criteria:
                save_score(sheet, s["members"][0], "committee", criterion.id, None,
                           criterion.max_points, "", 0)
    tier = Tier.get(Tier.code == "A")  # what the full points give
    for n, sheet in enumerate(sheets):
        response = client.post(f"/assessments/{sheet.id}/finalise", data={"tier": tier.id})
        assert Assessment.get_by_id(sheet.id).final_tier_id == tier.id
        assert response.status_code == 303
        with app.test_request_context():
            kept = len(_kept_parts(cycle))
        assert kept == (0 if n < 2 else 1 if n < 4 else 2), (n, kept)


def test_a_joined_report_embeds_each_font_once(app, make):
    """However many parts a report is joined from, it carries one embedded copy of
    each font, holding every glyph its pages show (the text still reads back)."""
    import pikepdf

    from services import reports
    s, cycle = signing_cycle(app, make)
    with app.test_request_context():
        # Three parts, four documents of furniture.
        data = report_bytes(reports.report_pdf, cycle, batch_size=2, processes=1)
    with pikepdf.open(io.BytesIO(data)) as report:
        files, fonts = set(), set()
        for obj in report.objects:
            if isinstance(obj, pikepdf.Dictionary) and obj.get("/Subtype") == "/Type0":
                descriptor = obj.DescendantFonts[0].FontDescriptor
                files.add(descriptor.FontFile3.objgen)
                fonts.add(str(obj.DescendantFonts[0].BaseFont).split("+")[-1])
    assert len(fonts) >= 1 and len(files) == len(fonts), (fonts, files)
    text = pdf_text(data)
    assert RARE_NAME in text and text.count("客户质量等级评估表") >= 5


def test_long_lists_are_laid_out_in_pieces_and_lose_no_customer(app, make, monkeypatch):
    """The summary's lists are laid out a piece at a time (memory stays flat as the cycle
    grows): cut two rows at a time here, every customer is still listed once per list
    it belongs to, a list that goes on is marked （续）, the lists come after the
    summary and before the sheets, and every page is numbered of the true total."""
    from models.cycles import cycle_summary
    from services import reports
    s, cycle = signing_cycle(app, make)
    monkeypatch.setattr(reports, "LIST_ROWS", 2)
    with app.test_request_context():
        pieces = reports.list_pieces(cycle_summary(cycle))
        data = report_bytes(reports.report_pdf, cycle, batch_size=2, processes=1)
    assert all(sum(max(1, len(rows)) for _t, rows, _n, _c in piece) <= 2 for piece in pieces)
    new = [row for piece in pieces for title, rows, _n, _c in piece
           if str(title) == "New grades" for row in rows]
    assert len(new) == 5  # none held a tier before: five new grades, none lost or doubled
    text = squeezed(pdf_text(data))
    assert "首次评级客户（5）（续）" in text
    summary = text.find("汇总")
    first_sheet = text.find("客户质量等级评估表", summary)  # the cover names it too
    assert 0 < summary < text.find("首次评级客户（5）（续）") < first_sheet
    pages = pdf_pages(data)
    for n in range(1, pages + 1):
        assert footer(app, n, pages) in text
    for customer in s["customers"][1:]:
        assert text.count(squeezed(customer.name)) >= 2  # in the lists and on its sheet
