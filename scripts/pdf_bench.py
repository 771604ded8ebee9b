"""PDF benchmark: sheets, signing and long reports, as ratios measured in one run.

    .venv/bin/python scripts/pdf_bench.py            # called by `make bench`
    .venv/bin/python scripts/pdf_bench.py --quick    # smaller report sizes
    .venv/bin/python scripts/pdf_bench.py --report-only  # only the report after the meeting

It builds a small demo company (SQLite, in a temporary directory) with two
cycles in committee review, 100 and 1,000 customers graded by nine members,
and prints:

- one assessment sheet against a plain WeasyPrint document in the same font holding
  a table of as many rows and columns of Chinese text, and as many paragraphs
  (goal: at most 1.5×), medians of interleaved rounds;
- signing one document with the organisation's key (signer loaded once; goal:
  at most 0.2 s);
- the committee report of 100 and of 1,000 sheets as the background job makes it
  after the meeting, its parts rendered ahead as the chair settled (goal: 1,000
  sheets in at most 60 s, peak memory at most 1.1× that for 100); the worker time
  that rendering ahead took; the report with nothing rendered ahead; and the
  joined report's size against one pass (goal: at most 1.5×). Each in a fresh
  process, with its peak memory (worker processes included).

A report, not a test: it exits non-zero only when something breaks.
Results also go to bench-results/pdf.json.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _app(database_url, workdir):
    from app import create_app
    return create_app({"DATABASE_URL": database_url, "SECRET_KEY": "bench",
                       "SIGNING_DIR": str(Path(workdir) / "signing"),
                       "PUBLIC_URL": "https://tierdesk.example"})


def build(database_url, workdir, sizes):
    """The demo company and one committee cycle per size; returns {size: cycle id}."""
    from models import Assessment, GradingCycle, ScorecardTemplate, User
    from models.schema import upgrade
    from services.demo import build_demo, build_meeting

    app = _app(database_url, workdir)
    cycles = {}
    with app.app_context():
        upgrade()
        build_demo(customers=max(sizes) + 200)
        for size in sorted(sizes):
            cycle = build_meeting(size=size, committee=9)
            cycles[size] = cycle.id
            # Every member scores every sheet and the chair sets the grade, as
            # after a real meeting: the sheets print full.
            _score_everything(cycle)
        assert GradingCycle.select().count() >= len(sizes)
        assert Assessment.select().count() >= sum(sizes)
        assert ScorecardTemplate.select().exists() and User.select().exists()
    return cycles


def _score_everything(cycle):
    import random

    from models import Assessment, Score, db
    from models.cycles import committee_summary
    rng = random.Random(cycle.id)
    members = [cycle.chair, *cycle.members()]
    criteria = cycle.template_existing.criteria_with_levels()
    sheets = list(Assessment.select().where(Assessment.cycle == cycle))
    with db.atomic():
        done = {s.assessment_id for s in Score.select(Score.assessment).where(
            Score.stage == "committee").join(Assessment).where(Assessment.cycle == cycle)}
        rows = [dict(assessment=sheet.id, criterion=c.id, stage="committee", member=m.id,
                     points=rng.randint(c.max_points // 3, c.max_points), revision=1)
                for sheet in sheets if sheet.id not in done for m in members for c in criteria]
        for start in range(0, len(rows), 500):
            Score.insert_many(rows[start:start + 500]).execute()
        for sheet in sheets:
            summary = committee_summary(sheet)
            Assessment.update(final_tier=summary["mean_grade"].id,
                              final_total=summary["mean"], finalised_by=cycle.chair_id,
                              finalised_at=cycle.created_at,
                              rationale="与初评一致" if sheet.id % 3 else "战略客户，委员会上调"
                              ).where(Assessment.id == sheet.id).execute()


def _median_seconds(fn, rounds):
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def plain_document(sheet_html):
    """A plain WeasyPrint document (its own user-agent stylesheet, no app stylesheet)
    in the same font, holding a table of as many rows and columns of Chinese text as
    the sheet's biggest table and as many paragraphs as the sheet: the floor of the
    sheet's render."""
    import re
    tables = re.findall(r"<table.*?</table>", sheet_html, re.S)
    biggest = max(tables, key=lambda t: t.count("<td") + t.count("<th"))
    rows = biggest.count("<tr")
    columns = max(row.count("<td") + row.count("<th") for row in biggest.split("<tr"))
    paragraphs = len(re.findall(r"<(?:p|h1|h2)\b", sheet_html)) + sheet_html.count("text-box")
    cell = "<td>客户关系</td>"
    body = "".join(f"<p>第{n}段：评级委员会确认本客户的评定结果。</p>" for n in range(paragraphs))
    table = "<table>" + ("<tr>" + cell * columns + "</tr>") * rows + "</table>"
    return (f"<html><body style=\"font-family: 'Noto Sans CJK SC'\">{body}{table}"
            "</body></html>"), rows, columns, paragraphs


def measure_sheet_and_signing(database_url, workdir, cycle_id, rounds):
    """Medians: the plain document, one sheet, signing one sheet."""
    from weasyprint import HTML

    from models import Assessment, GradingCycle
    from services import pdf, reports, signing

    app = _app(database_url, workdir)
    with app.test_request_context():
        cycle = GradingCycle.get_by_id(cycle_id)
        sheet = Assessment.select().where(Assessment.cycle == cycle).first()
        sheet_html = reports.part_html(cycle, [sheet.id])
        plain_html, rows, columns, paragraphs = plain_document(sheet_html)

        def plain():
            HTML(string=plain_html).write_pdf(font_config=pdf.font_config())

        def one_sheet():
            reports.sheet_pdf(sheet)

        for _ in range(2):  # warm up fonts, templates, the signer
            plain()
            one_sheet()
        signing.signer()
        floor_times, sheet_times, floor_cpu, sheet_cpu = [], [], [], []
        for _ in range(rounds):  # interleaved, so both see the same machine
            for fn, wall, cpu in ((plain, floor_times, floor_cpu),
                                  (one_sheet, sheet_times, sheet_cpu)):
                started, cpu_started = time.perf_counter(), time.process_time()
                fn()
                wall.append(time.perf_counter() - started)
                cpu.append(time.process_time() - cpu_started)
        floor, sheet_s = statistics.median(floor_times), statistics.median(sheet_times)
        cpu_ratio = statistics.median(sheet_cpu) / statistics.median(floor_cpu)
        document = reports.sheet_pdf(sheet)
        source, signed = Path(workdir) / "sheet.pdf", Path(workdir) / "sheet-signed.pdf"
        source.write_bytes(document)

        def sign_one():
            with source.open("rb") as unsigned, signed.open("w+b") as out:
                signing.sign_pdf(unsigned, out)
        sign = _median_seconds(sign_one, rounds)
    return {"plain_s": floor, "plain_shape": [rows, columns, paragraphs], "sheet_s": sheet_s,
            "sheet_ratio": sheet_s / floor, "sheet_cpu_ratio": cpu_ratio,
            "sign_s": sign, "sheet_bytes": len(document)}


def _peak_mb():
    """The most memory this process or any of its worker processes held, in MB."""
    return max(resource.getrusage(who).ru_maxrss
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024


def report_child(database_url, workdir, cycle_id, mode, out):
    """In a fresh process, one of:
    - "ahead": render every part of the sheets as the worker does while the chair
      settles them (reports.warm_part), one after the other;
    - "report": the signed report once the parts are kept (after the meeting);
    - "cold": the signed report with no part kept (every sheet rendered now);
    - "one-pass": the sheets and the report's own pages, each in one document (the
      size the joined report is compared with).
    Writes the time, peak memory, pages and size to `out`."""
    import pikepdf

    from models import GradingCycle
    from services import pdf, reports

    app = _app(database_url, workdir)
    with app.test_request_context():
        cycle = GradingCycle.get_by_id(cycle_id)
        batch = app.config["REPORT_BATCH"]
        if mode in ("ahead", "cold"):
            for path in reports.parts_dir().glob(f"cycle-{cycle.id}-*.pdf"):
                path.unlink()
        report = Path(workdir) / f"report-{cycle_id}-{mode}.pdf"
        report.unlink(missing_ok=True)
        started = time.perf_counter()
        if mode == "ahead":
            for ids in reports.sheet_batches(cycle, batch):
                assert reports.warm_part(cycle, ids[0], batch)
        elif mode == "one-pass":
            ids = [i for ids in reports.sheet_batches(cycle, batch) for i in ids]
            sheets = pdf.render_html(reports.part_html(cycle, ids))
            from models.cycles import cycle_summary, portfolio_by_result
            summary = cycle_summary(cycle)
            own = pdf.render("pdf/report.html", summary=summary,
                             portfolio=portfolio_by_result(cycle, summary["results"]),
                             **reports._report_context(cycle))
            # Two documents: sizes add up (pages are not counted).
            report.write_bytes(sheets + own)
        else:
            reports.signed_report_pdf(cycle, report, batch_size=batch)
        seconds = time.perf_counter() - started
    peak = _peak_mb()  # the report's, not the page count's below
    pages = 0
    if mode in ("report", "cold"):
        with pikepdf.open(report) as document:
            pages = len(document.pages)
    size = report.stat().st_size if report.exists() else 0
    report.unlink(missing_ok=True)
    Path(out).write_text(json.dumps({"seconds": seconds, "peak_mb": peak,
                                     "pages": pages, "mb": size / 1e6}))


def measure_report(database_url, workdir, cycle_id, mode):
    out = Path(workdir) / f"report-{cycle_id}-{mode}.json"
    subprocess.run([sys.executable, __file__, "--child", database_url, workdir,
                    str(cycle_id), mode, str(out)], check=True, cwd=ROOT)
    return json.loads(out.read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reports of 20 and 100 sheets")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--report-only", action="store_true",
                        help="only the report after the meeting (its time and peak memory), "
                             "without the single sheet, the cold report or one pass")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        database_url, workdir, cycle_id, mode, out = args.child
        report_child(database_url, workdir, int(cycle_id), mode, out)
        return
    sizes = (20, 100) if args.quick else (100, 1000)
    with tempfile.TemporaryDirectory(prefix="tierdesk-pdf-bench-") as workdir:
        database_url = f"sqlite:///{workdir}/bench.db"
        started = time.perf_counter()
        cycles = build(database_url, workdir, sizes)
        print(f"Database: {sizes} graded sheets in {time.perf_counter() - started:.0f} s")
        results = {"reports": {}}
        if not args.report_only:
            single = measure_sheet_and_signing(database_url, workdir, cycles[min(sizes)],
                                               args.rounds)
            rows, columns, paragraphs = single["plain_shape"]
            print(f"plain document ({rows}×{columns} table, {paragraphs} paragraphs): "
                  f"{single['plain_s'] * 1000:5.0f} ms")
            print(f"one assessment sheet:      {single['sheet_s'] * 1000:7.0f} ms  "
                  f"= {single['sheet_ratio']:.2f}× the plain document (goal ≤ 1.5×; "
                  f"CPU time {single['sheet_cpu_ratio']:.2f}×)")
            print(f"signing one document:      {single['sign_s'] * 1000:7.0f} ms  "
                  "(goal ≤ 200 ms)")
            results["single"] = single
        modes = ("ahead", "report") if args.report_only else ("ahead", "report", "cold")
        for size in sizes:
            runs = {mode: measure_report(database_url, workdir, cycles[size], mode)
                    for mode in modes}
            if size == max(sizes) and not args.report_only:
                runs["one-pass"] = measure_report(database_url, workdir, cycles[size],
                                                  "one-pass")
            results["reports"][size] = runs
            ahead, report = runs["ahead"], runs["report"]
            print(f"report of {size:>5} sheets: {report['seconds']:6.1f} s after the meeting "
                  f"(goal ≤ 60 s for 1,000), peak {report['peak_mb']:4.0f} MB, "
                  f"{report['pages']} pages, {report['mb']:.1f} MB")
            print(f"    rendered ahead while the chair settles: {ahead['seconds']:6.1f} s of "
                  f"worker time ({ahead['seconds'] / size * 1000:.0f} ms/sheet)")
            if "cold" in runs:
                print(f"    with nothing rendered ahead: {runs['cold']['seconds']:6.1f} s, "
                      f"peak {runs['cold']['peak_mb']:4.0f} MB (worker processes included)")
            if "one-pass" in runs:
                print(f"    size: {report['mb'] / runs['one-pass']['mb']:.2f}× one pass "
                      f"({runs['one-pass']['mb']:.1f} MB; goal ≤ 1.5×)")
        low, high = (results["reports"][s] for s in sizes)
        for mode in modes[1:]:
            print(f"peak memory {max(sizes)} vs {min(sizes)} sheets ({mode}): "
                  f"{high[mode]['peak_mb'] / low[mode]['peak_mb']:.2f}× (goal ≤ 1.1×)")
        RESULTS.mkdir(exist_ok=True)
        name = "pdf-report.json" if args.report_only else "pdf.json"
        (RESULTS / name).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
