"""PDF benchmark: sheets, signing and long reports, as ratios measured in one run.

    .venv/bin/python scripts/pdf_bench.py            # called by `make bench`
    .venv/bin/python scripts/pdf_bench.py --quick    # smaller report sizes

It builds a small demo company (SQLite, in a temporary directory) with two
cycles in committee review, 100 and 1,000 customers graded by nine members,
and prints:

- one assessment sheet against a minimal one-page WeasyPrint document in the
  same font (goal: at most 1.5×), medians of interleaved rounds;
- signing one document with the organisation's key (signer loaded once; goal:
  at most 0.2 s);
- the committee report of 100 and of 1,000 sheets rendered as the background
  job does (batches merged, numbered, signed): wall time and peak memory of a
  fresh process each, so that growth with the sheet count shows.

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


def measure_sheet_and_signing(database_url, workdir, cycle_id, rounds):
    """Medians: the minimal document, one sheet, signing one sheet."""
    from weasyprint import HTML

    from models import Assessment, GradingCycle
    from services import pdf, reports, signing

    app = _app(database_url, workdir)
    minimal_html = ('<p style="font-family: \'Noto Sans CJK SC\'">'
                    '客户质量等级评估表 Customer quality grade</p>')
    with app.test_request_context():
        cycle = GradingCycle.get_by_id(cycle_id)
        sheet = Assessment.select().where(Assessment.cycle == cycle).first()

        def minimal():
            HTML(string=minimal_html).write_pdf(font_config=pdf.font_config())

        def one_sheet():
            reports.sheet_pdf(sheet)

        for _ in range(2):  # warm up fonts, templates, the signer
            minimal()
            one_sheet()
        signing.signer()
        floor_times, sheet_times, floor_cpu, sheet_cpu = [], [], [], []
        for _ in range(rounds):  # interleaved, so both see the same machine
            for fn, wall, cpu in ((minimal, floor_times, floor_cpu),
                                  (one_sheet, sheet_times, sheet_cpu)):
                started, cpu_started = time.perf_counter(), time.process_time()
                fn()
                wall.append(time.perf_counter() - started)
                cpu.append(time.process_time() - cpu_started)
        floor, sheet_s = statistics.median(floor_times), statistics.median(sheet_times)
        cpu_ratio = statistics.median(sheet_cpu) / statistics.median(floor_cpu)
        document = reports.sheet_pdf(sheet)
        sign = _median_seconds(lambda: signing.sign_pdf(document), rounds)
    return {"minimal_s": floor, "sheet_s": sheet_s, "sheet_ratio": sheet_s / floor,
            "sheet_cpu_ratio": cpu_ratio,
            "sign_s": sign, "sheet_bytes": len(document)}


def report_child(database_url, workdir, cycle_id, out):
    """In a fresh process: render and sign one report; time and peak memory."""
    from models import GradingCycle
    from services import reports

    app = _app(database_url, workdir)
    with app.test_request_context():
        cycle = GradingCycle.get_by_id(cycle_id)
        base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        data = reports.signed_report_pdf(cycle, batch_size=app.config["REPORT_BATCH"])
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    import io

    from pypdf import PdfReader
    pages = len(PdfReader(io.BytesIO(data)).pages)
    Path(out).write_text(json.dumps({"seconds": seconds, "peak_mb": peak / 1024,
                                     "start_mb": base_rss / 1024, "pages": pages,
                                     "mb": len(data) / 1e6}))


def measure_report(database_url, workdir, cycle_id):
    out = Path(workdir) / f"report-{cycle_id}.json"
    subprocess.run([sys.executable, __file__, "--child", database_url, workdir,
                    str(cycle_id), str(out)], check=True, cwd=ROOT)
    return json.loads(out.read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reports of 20 and 100 sheets")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        report_child(args.child[0], args.child[1], int(args.child[2]), args.child[3])
        return
    sizes = (20, 100) if args.quick else (100, 1000)
    with tempfile.TemporaryDirectory(prefix="tierdesk-pdf-bench-") as workdir:
        database_url = f"sqlite:///{workdir}/bench.db"
        started = time.perf_counter()
        cycles = build(database_url, workdir, sizes)
        print(f"Database: {sizes} graded sheets in {time.perf_counter() - started:.0f} s")
        single = measure_sheet_and_signing(database_url, workdir, cycles[min(sizes)],
                                           args.rounds)
        print(f"minimal one-page document: {single['minimal_s'] * 1000:7.0f} ms")
        print(f"one assessment sheet:      {single['sheet_s'] * 1000:7.0f} ms  "
              f"= {single['sheet_ratio']:.2f}× the minimal document (goal ≤ 1.5×; "
              f"CPU time {single['sheet_cpu_ratio']:.2f}×)")
        print(f"signing one document:      {single['sign_s'] * 1000:7.0f} ms  (goal ≤ 200 ms)")
        results = {"single": single, "reports": {}}
        for size in sizes:
            report = measure_report(database_url, workdir, cycles[size])
            results["reports"][size] = report
            print(f"report of {size:>5} sheets:  {report['seconds']:7.1f} s, "
                  f"{report['seconds'] / size * 1000:5.0f} ms/sheet, "
                  f"peak {report['peak_mb']:5.0f} MB (process start {report['start_mb']:.0f} MB), "
                  f"{report['pages']} pages, {report['mb']:.1f} MB")
        low, high = (results["reports"][s] for s in sizes)
        print(f"peak memory {max(sizes)} vs {min(sizes)} sheets: "
              f"{high['peak_mb'] / low['peak_mb']:.2f}×")
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "pdf.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
