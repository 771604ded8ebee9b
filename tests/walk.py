"""Walking the product as one user would, and as a prober would: every GET route the
user's roles may open, with every record's id, every link and form found on the
answers, and query parameters set to chosen values. The scoping walk, the
hostile-text walk and the query fuzz test (tests/test_walks.py) share it."""
import html.parser
import inspect
import io
import itertools
import random
import re
import subprocess
from collections import deque
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import openpyxl
from wtforms.fields.core import UnboundField

import forms.allocation
import forms.approvals  # every forms module, so that query_names() sees each class
import forms.audit
import forms.customers
import forms.cycles
import forms.funnel
import forms.service_requests
import forms.tiers
from app import PUBLIC_ENDPOINTS
from models import (
    AllocationRule,
    Assessment,
    Branch,
    Customer,
    GradingCycle,
    ImportBatch,
    Opportunity,
    ReportJob,
    Score,
    ScorecardTemplate,
    ServiceRequest,
    Tier,
    TierChangeRequest,
    User,
    db,
)
from tests.test_access import EVERYONE, ROUTE_ROLES

# What each URL argument names, and where its values come from.
ARG_MODELS = {
    "customer_id": Customer, "assessment_id": Assessment, "cycle_id": GradingCycle,
    "template_id": ScorecardTemplate, "request_id": TierChangeRequest,
    "opportunity_id": Opportunity, "user_id": User, "branch_id": Branch,
    "batch_id": ImportBatch, "job_id": ReportJob, "service_request_id": ServiceRequest,
    "rule_id": AllocationRule,
}
# Routes that answer with a rendered PDF: a few ids each, or the walk takes minutes.
PDF_IDS = 3


def build_company(app, customers=40, meeting=12, finalised=6):
    """The demo company, small: two branches (上海 SH, 北京 BJ), a cycle in 初评 and
    one in committee review with `finalised` sheets settled (some with special
    policies and credit reviews), tier change requests, a year of the funnel,
    activities and contacts. Returns the committee cycle."""
    from models.cycles import finalise
    from services.demo import build_demo, build_meeting
    with app.test_request_context():
        db.connect(reuse_if_open=True)
        build_demo(customers=customers, branches=2, reps_per_branch=2)
        cycle = build_meeting(size=meeting, committee=4)
        chair = User.get(User.username == "chair")
        members = [m.id for m in cycle.members()]
        rng = random.Random(7)
        criteria = cycle.template_existing.criteria_with_levels()
        sheets = list(Assessment.select().where(Assessment.cycle == cycle)
                      .order_by(Assessment.agenda_position))
        for n, sheet in enumerate(sheets[:finalised]):
            Score.delete().where(Score.assessment == sheet.id, Score.stage == "committee") \
                .execute()
            Score.insert_many([dict(assessment=sheet.id, criterion=c.id, stage="committee",
                                    member=m, points=rng.randint(c.max_points // 2, c.max_points),
                                    revision=1) for m in members for c in criteria]).execute()
            tier = Tier.in_order()[n % 2]
            finalise(Assessment.get_by_id(sheet.id), chair, tier, "委员会讨论决定",
                     special_policy=n % 3 == 0, credit_review=n % 3 == 1)
        db.close()
    return cycle


def get_routes(app, roles):
    """The GET rules that a user holding `roles` may open, by the access matrix."""
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        allowed = ROUTE_ROLES[rule.endpoint]
        if allowed is EVERYONE or set(roles) & set(allowed):
            yield rule


def _values(rule, arg):
    converter = rule._converters[arg]
    kind = converter.__class__.__name__
    if kind == "AnyConverter":
        return list(converter.items)
    if arg == "code":
        return [t.code for t in Tier.select().order_by(Tier.rank)]
    ids = [r.id for r in ARG_MODELS[arg].select(ARG_MODELS[arg].id).order_by(
        ARG_MODELS[arg].id)]
    if rule.rule.endswith(".pdf") and arg == "assessment_id":
        # Three sheets of each branch: rendering every one would take minutes.
        by_branch = {}
        for sheet in Assessment.select(Assessment.id, Assessment.branch):
            by_branch.setdefault(sheet.branch_id, []).append(sheet.id)
        return [i for ids_ in by_branch.values() for i in ids_[:PDF_IDS]]
    return ids[:PDF_IDS] if rule.rule.endswith(".pdf") else ids


def route_urls(app, roles):
    """Every URL of every GET route `roles` may open, one per record id (a few per
    PDF route): other branches' records included, which must answer 404."""
    urls = []
    with app.app_context():
        db.connect(reuse_if_open=True)
        for rule in sorted(get_routes(app, roles), key=lambda r: r.rule):
            args = sorted(rule.arguments)
            for combo in itertools.product(*(_values(rule, a) for a in args)):
                urls.append(rule.build(dict(zip(args, combo)))[1])
        db.close()
    return urls


def query_names():
    """The names of every query parameter a page reads: the fields of the GET forms
    (their CSRF is off), and the what-if bands of the cycle page."""
    names = set()
    pending = [forms.Form]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if getattr(cls.Meta, "csrf", True) is False:
            names.update(n for n, v in inspect.getmembers(cls)
                         if isinstance(v, UnboundField))
    names.update(f"band_{t.id}" for t in Tier.select())
    return sorted(names)


def with_query(url, **params):
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return parts._replace(query=urlencode(query)).geturl()


def read(response):
    """What a person would read in the answer: a PDF's text, a workbook's cells,
    or the text of anything else."""
    data = response.get_data()
    mimetype = response.mimetype
    if mimetype == "application/pdf":
        # In the order it was drawn: a wrapped cell's lines stay together.
        return subprocess.run(["pdftotext", "-raw", "-", "-"], input=data, capture_output=True,
                              check=True).stdout.decode("utf-8")
    if "spreadsheetml" in mimetype:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
        return "\n".join(str(cell) for sheet in book.worksheets
                         for row in sheet.iter_rows(values_only=True) for cell in row
                         if cell is not None)
    return data.decode("utf-8", errors="replace")


class _Links(html.parser.HTMLParser):
    """The same-site GET URLs an HTML answer offers: links, htmx GETs, GET forms with
    the values they would send as they stand."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.urls, self.form = [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("href", "hx-get", "src"):
            if attrs.get(name):
                self.urls.append(attrs[name])
        if tag == "form" and (attrs.get("method") or "get").lower() == "get":
            self.form = [attrs.get("action") or attrs.get("hx-get") or "", []]
        elif self.form is not None and tag in ("input", "select") and attrs.get("name"):
            if attrs.get("type") not in ("submit", "button", "checkbox", "radio"):
                self.form[1].append((attrs["name"], attrs.get("value") or ""))

    def handle_endtag(self, tag):
        if tag == "form" and self.form is not None:
            action, fields = self.form
            self.urls.append(action + ("?" + urlencode(fields) if fields else ""))
            self.form = None


def links(base_url, text):
    parser = _Links()
    parser.feed(text)
    found = []
    for href in parser.urls:
        url = urljoin(base_url, href)
        parts = urlsplit(url)
        if parts.scheme or parts.netloc:
            if parts.netloc not in ("", "localhost"):
                continue
            url = parts._replace(scheme="", netloc="").geturl()
        found.append(url.split("#")[0])
    return found


SKIP = re.compile(r"^/(static/|logout|login|language)")


def walk(client, urls, *, crawl_limit=300):
    """GET each of `urls`, and each HTML page again as htmx asks for it (a partial),
    then the pages they link to, up to `crawl_limit` more (not the PDFs of single
    records: the route walk opens a few of those). Returns {(url, htmx?): (status,
    mimetype, text)}."""
    seen = {}
    queue = deque(urls)
    known = set(urls)
    crawled = 0
    while queue:
        url = queue.popleft()
        for htmx in (False, True):
            response = client.get(url, headers={"HX-Request": "true"} if htmx else {})
            text = read(response) if response.status_code == 200 else response.get_data(
                as_text=True)
            seen[(url, htmx)] = (response.status_code, response.mimetype, text)
            if response.status_code != 200 or response.mimetype != "text/html":
                break
            for found in links(url, text):
                if (found in known or SKIP.match(found) or crawled >= crawl_limit
                        or (found.endswith(".pdf") and re.search(r"/\d+/", found))):
                    continue
                known.add(found)
                queue.append(found)
                crawled += 1
    return seen
