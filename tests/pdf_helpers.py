"""A grading cycle carried through to the signing phase, for the PDF tests."""
import io
import subprocess

from models import Assessment
from models.cycles import finalise, save_score, submit_preliminary
from models.phases import advance
from tests.test_cycles import _criteria, _cycle, _fill, make_setup

RARE_NAME = "堃喆𠮷科技有限公司"


def signing_cycle(app, make, phase="signing"):
    """Five customers (one named with rare characters) graded by a chair and two
    members; returns (setup, cycle) with the cycle in `phase`."""
    s = make_setup(app, make)
    first = s["customers"][0]
    first.name = RARE_NAME
    first.save()
    cycle = _cycle(app, s)
    with app.test_request_context():
        cycle = advance(cycle, s["chair"])
        for sheet in Assessment.select().where(Assessment.cycle == cycle):
            user = s["bm_east"] if sheet.branch_id == s["east"].id else s["bm_west"]
            _fill(sheet, user, s["template"])
            submit_preliminary(sheet, user, "整体良好，<b>不是标记</b>")
        cycle = advance(cycle, s["chair"])
        if phase == "committee":
            return s, cycle
        criteria = _criteria(s["template"])
        for n, sheet in enumerate(Assessment.select().where(Assessment.cycle == cycle)):
            for member, bonus in zip(s["members"], (0, 2)):
                for criterion in criteria:
                    save_score(sheet, member, "committee", criterion.id, None,
                               min(criterion.max_points, 10 + bonus + n), "", 0)
            summary_tier = sheet.template.grade_for(0)
            from models.cycles import committee_summary
            tier = committee_summary(sheet)["mean_grade"] or summary_tier
            finalise(sheet, s["chair"], tier, "", special_policy=(n == 0),
                     credit_review=(n == 1))
        cycle = advance(cycle, s["chair"])
    return s, cycle


def fetch_report(client, cycle, **kwargs):
    """/cycles/<id>/report.pdf as a user gets it, with jobs run at once (the
    `immediate_jobs` fixture): the first request starts the render and sends them to the
    report page, the next one serves the finished file."""
    first = client.get(f"/cycles/{cycle.id}/report.pdf", **kwargs)
    assert first.status_code == 303, first.get_data(as_text=True)[:300]
    assert first.headers["Location"].endswith(f"/cycles/{cycle.id}/report")
    return client.get(f"/cycles/{cycle.id}/report.pdf", **kwargs)


def report_bytes(make_report, cycle, **kwargs):
    """The PDF that `make_report` (reports.report_pdf or signed_report_pdf) writes for
    `cycle`, read back from its file."""
    from services import reports
    return make_report(cycle, reports.reports_dir() / "report.pdf", **kwargs).read_bytes()


def pdf_text(data):
    """The text of a PDF as pdftotext reads it."""
    return subprocess.run(["pdftotext", "-layout", "-", "-"], input=data, capture_output=True,
                          check=True).stdout.decode("utf-8")


def pdf_pages(data):
    from pypdf import PdfReader
    return len(PdfReader(io.BytesIO(data)).pages)
