"""The printed documents: assessment sheets, blank sheets, the committee report.

Data for many sheets is read in a few queries per batch (not per sheet), and
the report renders in batches, one WeasyPrint document per batch, merged with
pypdf, so that memory stays flat however many customers a cycle holds.
"""
import datetime
import io
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
from models.cycles import average, committee_arithmetic, cycle_summary
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
        totals, given, committee_mean = committee_arithmetic(points)
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


def tier_handbook_pdf(today=None):
    """The tier policy handbook: an overview, then each tier's policy in force."""
    today = today or datetime.date.today()
    return pdf.render("pdf/handbook.html", doc_title=_("Tier service policy handbook"),
                      tiers=list(Tier.ordered()), policies=current_policies(today), today=today,
                      policy_labels=translated(POLICY_LABELS),
                      priorities=translated(PRIORITIES))


# --- The committee report --------------------------------------------------------

def report_parts(cycle, batch_size=SHEET_BATCH):
    """How the report is made: ("front", None), ("sheets", [ids])…, ("back", None)."""
    ids = [row[0] for row in Assessment.select(Assessment.id)
           .join(Customer, on=(Assessment.customer == Customer.id))
           .where(Assessment.cycle == cycle).order_by(Assessment.agenda_position, Customer.code)
           .tuples()]
    parts = [("front", None)]
    parts += [("sheets", ids[i:i + batch_size]) for i in range(0, len(ids), batch_size)]
    parts.append(("back", None))
    return parts


def _report_context(cycle, fingerprint=None, signed=None):
    """What every part of the report shows. Until the whole committee has signed
    (`signed`, worked out when None) the report is a draft: every page says so, and it
    prints no verification address or QR code (nothing could verify it)."""
    if signed is None:
        signed = will_be_signed(cycle, fingerprint or results_fingerprint(cycle))
    url = verify_url() if signed else None
    return dict(cycle=cycle, doc_title=cycle.name, draft=not signed,
                signatures=report_signatures(cycle), fingerprint=fingerprint,
                verify_url=url, qr=qr_svg_data_uri(url) if url else None)


def render_part(cycle, kind, ids, context, template_of, first_page=1, total_pages=None):
    """PDF bytes of one part of the report, its pages numbered from `first_page`
    out of `total_pages` (None: the part's own count)."""
    context = dict(context, page_counter=pdf.page_counter_css(total_pages),
                   first_page=first_page)
    if kind == "front":
        return pdf.render("pdf/report_front.html", summary=cycle_summary(cycle), **context)
    if kind == "back":
        return pdf.render("pdf/report_back.html", **context)
    rows = list(_assessment_query().where(Assessment.id.in_(ids)))
    rows.sort(key=lambda a: ids.index(a.id))
    return pdf.render("pdf/sheet.html", sheets=sheets_data(rows, template_of), **context)


def _page_count(data):
    # pypdf loads where a report is made (here and in merge), as segno does: some
    # 80 ms that a web process which never makes a report need not spend at start.
    from pypdf import PdfReader
    return len(PdfReader(io.BytesIO(data)).pages)


def report_pdf(cycle, progress=None, batch_size=SHEET_BATCH, fingerprint=None, signed=None):
    """The committee report of `cycle`: cover and summary, every assessment sheet,
    the signature page, numbered 第 N 页 / 共 M 页 across the whole document; a draft
    on every page until the whole committee has signed (`signed`; None: find out).

    Each batch of sheets is its own WeasyPrint document (memory stays flat),
    numbered from where the previous one ended. M is estimated up front (one
    page per sheet) and checked at the end; when a sheet ran longer, the parts
    are rendered again with the true M. `progress(done, total)` is called
    after each part.
    """
    fingerprint = fingerprint or results_fingerprint(cycle)
    context = _report_context(cycle, fingerprint, signed)
    parts = report_parts(cycle, batch_size)
    template_of = _template_cache()
    sheets = sum(len(ids) for kind, ids in parts if kind == "sheets")
    front_pages = _page_count(render_part(cycle, "front", None, context, template_of))
    back_pages = _page_count(render_part(cycle, "back", None, context, template_of))
    total = front_pages + sheets + back_pages
    for _attempt in range(2):  # the second pass only when the estimate of M was wrong
        rendered, first_page = [], 1
        for done, (kind, ids) in enumerate(parts, 1):
            data = render_part(cycle, kind, ids, context, template_of, first_page, total)
            rendered.append(data)
            first_page += _page_count(data)
            if progress:
                progress(done, len(parts) + 1)
        if first_page - 1 == total:
            break
        total = first_page - 1  # a sheet ran over a page: number again with the true M
    merged = merge(rendered, cycle.name, signing.keywords(cycle.id, fingerprint))
    if progress:
        progress(len(parts) + 1, len(parts) + 1)
    return merged


def merge(parts, title, keywords=""):
    """One PDF of the parts in order, with the report's title and keywords."""
    from pypdf import PdfWriter  # loaded when needed: see _page_count

    writer = PdfWriter()
    for part in parts:
        writer.append(io.BytesIO(part))
    writer.add_metadata({"/Title": title, "/Keywords": keywords, "/Creator": "Tierdesk"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


class PublicURLMissing(DomainError):
    """The signed report prints where to check it, and PUBLIC_URL does not say where."""


# For the administrator, in the log (the user is only told to ask them).
PUBLIC_URL_MISSING_LOG = (
    "A signed committee report was refused: PUBLIC_URL is not set. The report prints "
    "the address of /verify under its QR code, and Tierdesk takes that address from "
    "PUBLIC_URL alone, never from the request (its Host header is whatever the client "
    "sends). Set PUBLIC_URL to the address users reach Tierdesk at, such as "
    "https://tierdesk.example.com, for the web server and the worker alike.")


def signed_report_pdf(cycle, progress=None, batch_size=SHEET_BATCH):
    """The report, signed with the organisation's key once the whole committee has
    signed the results (PAdES); before that, unsigned and marked as a draft.

    Raises PublicURLMissing, before rendering anything, for a report that would be
    signed while PUBLIC_URL is unset: its verification address would be invented.
    """
    fingerprint = results_fingerprint(cycle)
    signed = will_be_signed(cycle, fingerprint)
    ensure_public_url(signed)
    data = report_pdf(cycle, progress, batch_size, fingerprint, signed)
    if signed:
        data = signing.sign_pdf(data, reason=f"{cycle.name} · {fingerprint}")
    return data


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
    import segno  # loaded when needed: see _page_count
    return segno.make(text, error="m").svg_data_uri(scale=4, border=2)


