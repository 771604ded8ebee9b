"""The printed documents: assessment sheets, blank sheets, the committee report.

Data for many sheets is read in a few queries per batch (not per sheet). The report
is joined from parts rendered ahead and kept (see "The committee report" below), so
that it is ready in a minute and memory stays flat however many customers a cycle
holds.
"""
import datetime
import hashlib
import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from flask import current_app
from flask_babel import gettext as _

from i18n import lazy_gettext as _l
from models import (
    Assessment,
    Branch,
    Customer,
    DomainError,
    Score,
    ScorecardTemplate,
    Tier,
    User,
)
from models.cycles import (
    average,
    committee_arithmetic,
    cycle_summary,
    portfolio_by_result,
    two_places,
)
from models.service_requests import satisfaction_by
from models.signing import CycleSignature, report_signatures, results_fingerprint, unsigned_signers
from models.tiers import POLICY_LABELS, PRIORITIES, current_policies
from services import pdf, signing
from services.formatting import translated

SHEET_BATCH = 50


def _template_cache():
    cache = {}

    def get(template_id):
        if template_id not in cache:
            template = ScorecardTemplate.get_by_id(template_id)
            template.criteria_with_levels()
            template.bands_desc()
            cache[template_id] = template
        return cache[template_id]
    return get


def sheets_data(assessments, template_of=None):
    """Everything the printed sheets of `assessments` show, in three queries.

    Returns one namespace per assessment: the assessment (with customer and
    branch), its template, criteria rows with the preliminary level/points
    and each committee member's points, the members, the totals and grades.
    """
    template_of = template_of or _template_cache()
    ids = [a.id for a in assessments]
    scores = list(Score.select().where(Score.assessment.in_(ids))) if ids else []
    member_ids = {s.member_id for s in scores} | {
        a.preliminary_by_id for a in assessments if a.preliminary_by_id} | {
        a.finalised_by_id for a in assessments if a.finalised_by_id}
    users = {u.id: u for u in User.select().where(User.id.in_(list(member_ids)))} \
        if member_ids else {}
    tiers = Tier.by_id()
    by_sheet = {}
    for score in scores:
        by_sheet.setdefault(score.assessment_id, []).append(score)
    out = []
    for assessment in assessments:
        template = template_of(assessment.template_id)
        own = by_sheet.get(assessment.id, [])
        preliminary = {s.criterion: s for s in own if s.stage == "preliminary"}
        committee = [s for s in own if s.stage == "committee" and s.points is not None]
        member_order = sorted({s.member_id for s in committee},
                              key=lambda m: (users[m].display_name if m in users else "", m))
        points = {(s.member_id, s.criterion): s.points for s in committee}
        totals, given = committee_arithmetic(points)
        committee_mean = two_places(assessment.committee_mean)  # kept by migration 14
        rows = []
        for criterion in template.criteria_with_levels():
            prelim = preliminary.get(criterion.id)
            rows.append(SimpleNamespace(
                criterion=criterion, levels=criterion.levels,
                preliminary_level=prelim.level if prelim else None,
                preliminary_points=prelim.points if prelim else None,
                preliminary_comment=prelim.comment if prelim else "",
                member_points=[points.get((m, criterion.id)) for m in member_order],
                mean=average(given.get(criterion.id))))
        prelim_total = assessment.preliminary_total  # kept by migration 14's triggers
        member_totals = [totals[m] for m in member_order]
        final_total = float(assessment.final_total) if assessment.final_total is not None \
            else committee_mean
        out.append(SimpleNamespace(
            assessment=assessment, customer=assessment.customer, branch=assessment.branch,
            template=template, rows=rows,
            members=[users.get(m) for m in member_order],
            member_totals=member_totals,
            preliminary_total=prelim_total,
            preliminary_grade=template.grade_for(prelim_total) if prelim_total is not None
            else None,
            preliminary_by=users.get(assessment.preliminary_by_id),
            committee_mean=committee_mean,
            committee_grade=template.grade_for(committee_mean) if committee_mean is not None
            else None,
            final_total=final_total,
            final_tier=tiers.get(assessment.final_tier_id),
            tier_before=tiers.get(assessment.tier_before_id),
            finalised_by=users.get(assessment.finalised_by_id)))
    return out


def _assessment_query():
    return (Assessment.select(Assessment, Customer, Branch)
            .join(Customer, on=(Assessment.customer == Customer.id))
            .switch(Assessment).join(Branch, on=(Assessment.branch == Branch.id)))


def sheet_pdf(assessment):
    """The filled 客户质量等级评估表 of one assessment, as PDF bytes."""
    assessment = _assessment_query().where(Assessment.id == assessment.id).get()
    sheet = sheets_data([assessment])[0]
    title = _("Customer quality grade assessment sheet")
    return pdf.render("pdf/sheet.html", doc_title=f"{title} · {sheet.customer.name}",
                      sheets=[sheet], cycle=assessment.cycle)


def blank_sheet_pdf(template):
    """The blank sheet of one template version, to fill in by hand."""
    return pdf.render("pdf/blank_sheet.html",
                      doc_title=f"{template.name} · {_('Blank sheet')}",
                      template=template, criteria=template.criteria_with_levels(),
                      bands=template.band_ranges())


def tier_handbook_pdf(user, today=None):
    """The tier policy handbook: an overview, each tier's policy in force, and an
    appendix of the year's satisfaction per tier (the follow-up calls of the requests
    `user` may see: a branch manager's handbook counts the branch's)."""
    today = today or datetime.date.today()
    by_tier = {key: (count, average) for key, count, average, _happy
               in satisfaction_by(user, today.year, "tier")}
    calls = sum(count for count, _average in by_tier.values())
    overall = (sum(count * average for count, average in by_tier.values()) / calls
               if calls else None)
    branch = (Branch.get_by_id(user.branch_id).name if user.is_branch_scoped else None)
    return pdf.render("pdf/handbook.html", doc_title=_("Tier service policy handbook"),
                      tiers=list(Tier.ordered()), policies=current_policies(today), today=today,
                      policy_labels=translated(POLICY_LABELS),
                      priorities=translated(PRIORITIES),
                      satisfaction=SimpleNamespace(year=today.year, by_tier=by_tier,
                                                   calls=calls, average=overall,
                                                   branch=branch))


# --- The committee report ----------------------------------------------------------
#
# A report of a thousand sheets takes a single WeasyPrint process about two and a half
# minutes, nearly all of it laying out the sheets. So the sheets are laid out ahead, in parts
# of `batch_size` sheets (REPORT_BATCH) in agenda order: the worker renders a part as
# soon as the chair has settled all its sheets (warm_part), and the report renders
# only the parts it does not find, several at once in worker processes. A part is
# kept under the SHA-256 of its HTML, which holds every figure and word it prints, so
# a sheet whose data changed since is never joined stale: its part has another name.
# The parts are bare (no header or footer); the report lays its page furniture, the
# title, 第 N 页 / 共 M 页 and the draft mark, over the joined pages (pikepdf), so a
# kept part serves whatever comes before it and whether or not the report is signed.

def sheet_batches(cycle, batch_size=SHEET_BATCH):
    """The ids of the cycle's sheets in agenda order, in lists of `batch_size`."""
    ids = [row[0] for row in Assessment.select(Assessment.id)
           .join(Customer, on=(Assessment.customer == Customer.id))
           .where(Assessment.cycle == cycle).order_by(Assessment.agenda_position, Customer.code)
           .tuples()]
    return [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]


def _report_context(cycle, fingerprint=None, signed=None):
    """What the report's own pages show. Until the whole committee has signed
    (`signed`, worked out when None) the report is a draft: every page says so, and it
    prints no verification address or QR code (nothing could verify it)."""
    if signed is None:
        signed = will_be_signed(cycle, fingerprint or results_fingerprint(cycle))
    url = verify_url() if signed else None
    return dict(cycle=cycle, doc_title=cycle.name, draft=not signed,
                signatures=report_signatures(cycle), fingerprint=fingerprint,
                verify_url=url, qr=qr_svg_data_uri(url) if url else None)


def part_html(cycle, ids, template_of=None):
    """The HTML of the bare part of the report holding the sheets `ids`."""
    rows = list(_assessment_query().where(Assessment.id.in_(ids)))
    rows.sort(key=lambda a: ids.index(a.id))
    return pdf.html_document("pdf/sheet.html", sheets=sheets_data(rows, template_of),
                             cycle=cycle, doc_title=cycle.name, bare=True)


def reports_dir():
    """Where finished reports are kept (REPORTS_DIR), readable by this user alone."""
    path = Path(current_app.config.get("REPORTS_DIR")
                or Path(current_app.instance_path) / "reports")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def parts_dir():
    """Where the report's rendered parts are kept (parts/ under reports_dir())."""
    path = reports_dir() / "parts"
    path.mkdir(exist_ok=True, mode=0o700)
    return path


@contextmanager
def private_file(path):
    """A new file beside `path`, open for writing and reading ("w+b") and readable by
    this user alone (0600), that takes the place of `path` when the block ends and is
    removed when it raises: a reader of `path` never sees half a file."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w+b") as out:
            yield out
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def write_private(path, data):
    """Write `data` to `path` whole or not at all, readable by this user alone."""
    with private_file(path) as out:
        out.write(data)


def _part_path(cycle, html):
    key = hashlib.sha256(html.encode()).hexdigest()
    return parts_dir() / f"cycle-{cycle.id}-{key}.pdf"


def warm_part(cycle, assessment_id, batch_size=SHEET_BATCH):
    """Render and keep the part holding `assessment_id` once every sheet in it is
    settled (the worker calls this after each settlement). Returns whether it
    rendered one."""
    for ids in sheet_batches(cycle, batch_size):
        if assessment_id not in ids:
            continue
        if Assessment.select().where(Assessment.id.in_(ids),
                                     Assessment.final_tier.is_null()).exists():
            return False
        html = part_html(cycle, ids)
        path = _part_path(cycle, html)
        if path.exists():
            return False
        write_private(path, pdf.render_html(html))
        return True
    return False


def _rendered_parts(cycle, batches, progress, processes):
    """The path of each batch's part, in order, rendering those not kept: up to
    `processes` at once in worker processes (one when there is only one to render)."""
    template_of = _template_cache()
    paths, missing = [], []
    for ids in batches:
        html = part_html(cycle, ids, template_of)
        path = _part_path(cycle, html)
        paths.append(path)
        if not path.exists():
            missing.append((path, html))
    done = len(batches) - len(missing)
    if progress:
        progress(done, len(batches) + 1)
    if len(missing) <= 1 or processes <= 1:
        for path, html in missing:
            write_private(path, pdf.render_html(html))
            done += 1
            if progress:
                progress(done, len(batches) + 1)
        return paths
    # Fresh processes (spawn): a fork of this one would inherit its threads and its
    # database connection. They only lay out HTML; nothing in them touches the database.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        running = {pool.submit(pdf.render_html, html): path for path, html in missing}
        del missing  # the HTML lives in the queue only until its part is rendered
        for future in as_completed(running):
            write_private(running[future], future.result())
            done += 1
            if progress:
                progress(done, len(batches) + 1)
    return paths


def _prune_parts(cycle, keep):
    """Remove the cycle's kept parts other than `keep` (their data has changed)."""
    for path in parts_dir().glob(f"cycle-{cycle.id}-*.pdf"):
        if path not in keep:
            path.unlink(missing_ok=True)


def _own_pages(summary, context):
    """The report's own document, bare: (PDF bytes, its page count, the index of the
    signature page, before which the lists and sheets go). Its layout is let go on
    return."""
    own = pdf.laid_out(pdf.html_document(
        "pdf/report.html", summary=summary, bare=True,
        portfolio=portfolio_by_result(context["cycle"], summary["results"]), **context))
    signatures = next((i for i, page in enumerate(own.pages) if "signatures" in page.anchors),
                      len(own.pages))
    return own.write_pdf(), len(own.pages), signatures


# The summary's lists of customers are laid out this many rows at a time, each piece a
# document of its own: a layout holds every row it lays out (about 58 KB a row, and
# WeasyPrint then reads the fonts while it still holds them). In the report's own
# document, the lists of a thousand sheets' cycle (776 rows) made its peak memory 1.18x
# that of a hundred sheets' (pdf_bench).
LIST_ROWS = 150


def list_pieces(summary):
    """The summary's lists of customers in order, cut into pieces of at most LIST_ROWS
    rows (an empty list counts one, for its "None."): [[(title, rows, count of the
    whole list, whether it goes on from the piece before)]], one document each."""
    lists = [(_l("Top-tier customers"), summary["top_list"]),
             (_l("Special policies"), summary["special_policy"]),
             (_l("Credit-rating review"), summary["credit_review"]),
             (_l("Provisional (new) customers"), summary["provisional"]),
             (_l("Moved up"), summary["movements"]["up"]),
             (_l("Moved down"), summary["movements"]["down"]),
             (_l("New grades"), summary["movements"]["new"])]
    if summary["movements"]["not_compared"]:
        lists.append((_l("Not compared: a grade this scorecard cannot give"),
                      summary["movements"]["not_compared"]))
    pieces, piece, room = [], [], LIST_ROWS
    for title, rows in lists:
        start = 0
        while True:
            taken = rows[start:start + room]
            piece.append((title, taken, len(rows), start > 0))
            room -= max(1, len(taken))
            start += len(taken)
            if start >= len(rows):
                break
            pieces.append(piece)
            piece, room = [], LIST_ROWS
        if room <= 0:
            pieces.append(piece)
            piece, room = [], LIST_ROWS
    if piece:
        pieces.append(piece)
    return pieces


def report_pdf(cycle, path, progress=None, batch_size=SHEET_BATCH, fingerprint=None,
               signed=None, processes=None):
    """Write to `path` (whole or not at all) the committee report of `cycle`: cover and
    summary, every assessment sheet, the signature page, numbered 第 N 页 / 共 M 页
    across the whole document; a draft on every page until the whole committee has
    signed (`signed`; None: find out). Unsigned. Returns `path`.

    `progress(done, total)` is called as the parts of sheets are found or rendered.
    `processes`: how many parts render at once (default REPORT_PROCESSES).
    """
    with private_file(path) as out:
        _join_report(cycle, out, progress, batch_size, fingerprint, signed, processes)
    return path


def _join_report(cycle, output, progress, batch_size, fingerprint, signed, processes):
    """Write the unsigned report (see report_pdf) to `output`, an open file."""
    from services import joining  # pikepdf loads where a report is made, not in every web process

    fingerprint = fingerprint or results_fingerprint(cycle)
    context = _report_context(cycle, fingerprint, signed)
    processes = processes or current_app.config.get("REPORT_PROCESSES") or os.cpu_count()
    sheet_parts = _rendered_parts(cycle, sheet_batches(cycle, batch_size), progress, processes)
    _prune_parts(cycle, set(sheet_parts))
    summary = cycle_summary(cycle)
    own, own_pages, signatures = _own_pages(summary, context)
    with tempfile.TemporaryDirectory(dir=parts_dir()) as scratch:
        list_parts = []
        for n, piece in enumerate(list_pieces(summary)):
            list_parts.append(Path(scratch) / f"lists-{n}.pdf")
            list_parts[-1].write_bytes(pdf.render("pdf/report_lists.html", pieces=piece,
                                                  bare=True, **context))
        parts = [*list_parts, *sheet_parts]
        total = own_pages + sum(joining.page_count(path) for path in parts)

        def furniture(first, pages):
            """The header and footer alone of pages `first` to `first + pages - 1`."""
            return pdf.render("pdf/report_furniture.html", pages=pages, first_page=first,
                              page_counter=pdf.page_counter_css(total), **context)

        joining.join(own, signatures, parts, furniture, cycle.name,
                     signing.keywords(cycle.id, fingerprint), output, scratch)
    if progress:
        progress(len(sheet_parts) + 1, len(sheet_parts) + 1)


class PublicURLMissing(DomainError):
    """The signed report prints where to check it, and PUBLIC_URL does not say where."""


# For the administrator, in the log (the user is only told to ask them).
PUBLIC_URL_MISSING_LOG = (
    "A signed committee report was refused: PUBLIC_URL is not set. The report prints "
    "the address of /verify under its QR code, and Tierdesk takes that address from "
    "PUBLIC_URL alone, never from the request (its Host header is whatever the client "
    "sends). Set PUBLIC_URL to the address users reach Tierdesk at, such as "
    "https://tierdesk.example.com, for the web server and the worker alike.")


def signed_report_pdf(cycle, path, progress=None, batch_size=SHEET_BATCH):
    """Write the report to `path` (whole or not at all), signed with the
    organisation's key once the whole committee has signed the results (PAdES);
    before that, unsigned and marked as a draft. Returns `path`.

    Raises PublicURLMissing, before rendering anything, for a report that would be
    signed while PUBLIC_URL is unset: its verification address would be invented.
    """
    fingerprint = results_fingerprint(cycle)
    signed = will_be_signed(cycle, fingerprint)
    ensure_public_url(signed)
    if not signed:
        return report_pdf(cycle, path, progress, batch_size, fingerprint, signed=False)
    # The unsigned report goes to a nameless file beside `path` (gone once closed, even
    # if the worker is killed), and is signed from there into the file that replaces it.
    with private_file(path) as out, tempfile.TemporaryFile(dir=path.parent) as unsigned:
        _join_report(cycle, unsigned, progress, batch_size, fingerprint, True, None)
        unsigned.seek(0)
        signing.sign_pdf(unsigned, out, reason=f"{cycle.name} · {fingerprint}")
    return path


def ensure_public_url(signed):
    """Raise PublicURLMissing (and tell the log what to set) for a report to be signed
    while PUBLIC_URL is unset: its verification address would be invented."""
    if signed and verify_url() is None:
        current_app.logger.warning(PUBLIC_URL_MISSING_LOG)
        raise PublicURLMissing(_l(
            "The signed report cannot be made yet: the administrator has not set the "
            "address at which this system is reached (PUBLIC_URL), which the report prints "
            "for checking it. Please ask the administrator."))


def will_be_signed(cycle, fingerprint):
    """Whether the report carries the organisation's signature: once every member
    of the committee has signed, and signed these very results (`fingerprint`)."""
    return (cycle.phase in ("signing", "published") and not unsigned_signers(cycle)
            and not CycleSignature.select().where(
                CycleSignature.cycle == cycle.id,
                CycleSignature.fingerprint != fingerprint).exists())


def verify_url():
    """The absolute URL of /verify from PUBLIC_URL, or None when it is unset.

    Never from the request: its Host header is the client's to choose, and a
    report fetched with `Host: evil.example` would send its readers there."""
    base = current_app.config.get("PUBLIC_URL")
    return base.rstrip("/") + "/verify" if base else None


def qr_svg_data_uri(text):
    """A QR code of `text` as an SVG data: URI (the renderer only loads data: URLs)."""
    import segno  # loaded when needed, as pikepdf is in report_pdf
    return segno.make(text, error="m").svg_data_uri(scale=4, border=2)


