"""Whole-product walks: no answer shows a branch-scoped user another branch's
customers, no user text becomes markup, and no query string makes a 500."""
import datetime
import html.parser
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import Activity, Assessment, Branch, Contact, Customer, User
from models.people import ROLES
from models.portfolio import default_setting
from tests import walk
from tests.conftest import login

# Another branch's customers carry this in their names, contacts and notes.
SECRET = "机密客户"
# Parameters that point at records: set to another branch's, they must not widen a page.
REFERENCE_PARAMS = {"branch", "manager", "assessment", "actor"}


def _mark_other_branch(home):
    """Give every record of the branches other than `home`, and the other branch
    itself, a name that must never reach a user of `home`; returns {parameter:
    another branch's value}."""
    others = Customer.select(Customer.id).where(Customer.branch != home.id)
    Customer.update(name=Customer.code.concat(SECRET + "有限公司")).where(
        Customer.branch != home.id).execute()
    Contact.update(name="机密联系人").where(Contact.customer.in_(others)).execute()
    Activity.update(notes=f"{SECRET}的拜访记录").where(Activity.customer.in_(others)).execute()
    other = Branch.get(Branch.id != home.id)
    other.name = f"{SECRET}所在分公司"  # a branch-scoped user sees the own branch alone
    other.save()
    return {
        "branch": other.id,
        "manager": User.get(User.branch == other.id, User.username.startswith("rep_")).id,
        "assessment": Assessment.get(Assessment.branch == other.id).id,
        "actor": User.get(User.branch == other.id).username,
    }


@pytest.mark.parametrize("username", ["bm_sh", "rep_sh_1"])
def test_branch_users_never_see_another_branchs_customers(app, client, username):
    """A branch manager or rep walking every page, partial, export and PDF they may
    open (every record id, every link, filters pointing at another branch) never
    reads the name of another branch's customer."""
    walk.build_company(app)
    with app.app_context():
        user = User.get(User.username == username)
        home = user.branch
        references = _mark_other_branch(home)
        urls = walk.route_urls(app, user.roles)
        names = set(walk.query_names()) & REFERENCE_PARAMS
    assert names == REFERENCE_PARAMS, "a filter named in REFERENCE_PARAMS is gone"
    # Lists and the cycle's pages, filtered to the other branch's records.
    lists = [u for u in urls if not re.search(r"\d", u) or re.fullmatch(r"/cycles/\d+.*", u)]
    urls += [walk.with_query(u, **{name: references[name]}) for u in lists for name in names]
    assert login(client, username, "demo2027").status_code == 302
    answers = walk.walk(client, urls)

    leaks = sorted(url for (url, _htmx), (_s, _m, text) in answers.items() if SECRET in text)
    assert leaks == []
    opened = {url for (url, _htmx), (status, _m, _t) in answers.items() if status == 200}
    # The walk reached the pages that list customers, not only refusals.
    for must in ("/customers", "/cycles/2", "/approvals", "/compliance", "/funnel"):
        assert must in opened, must
    assert any(u.endswith("/sheet.pdf") for u in opened)
    assert any(u.startswith("/customers/export.xlsx") for u in opened)
    with app.app_context():
        # ...and its own branch's customers did show: the walk would see a leak.
        own = Customer.select().where(Customer.branch == home.id).first().name
    assert any(own in text for (_s, _m, text) in answers.values())


# --- Hostile text ----------------------------------------------------------------

# Two payloads a prober types into every text box: one that leaves an attribute and
# adds an element, one that adds an element htmx would act on (GET /x on load).
LEAVES_ATTRIBUTE = '甲"><img src=x>乙'
ADDS_HTMX = "丙<p hx-get=/x hx-trigger=load\n>丁"
HOSTILE = LEAVES_ATTRIBUTE + ADDS_HTMX

# Every text column a person can set through a form or an import, by model.
USER_TEXT = {
    "Branch": ("name", "region"), "User": ("display_name",), "Tier": ("name_zh", "name_en"),
    "ScorecardTemplate": ("name", "description"), "Criterion": ("name", "guidance"),
    "CriterionLevel": ("name",), "Customer": ("name", "region"),
    "Contact": ("name", "title"), "Activity": ("notes",), "GradingCycle": ("name",),
    "Assessment": ("preliminary_comment", "rationale"), "Score": ("comment",),
    "TierPolicy": ("credit_terms", "notes"),
    "TierChangeRequest": ("reason", "closing_comment"), "ApprovalStep": ("comment",),
    "Opportunity": ("lost_reason",), "TierHistory": ("reference",),
    # A notice's text is the app's, made of what people typed (names, reasons), and its
    # error is what a mail server or robot answered: shown as text like typed text.
    "Notice": ("subject", "body", "last_error", "answer"), "Robot": ("url_hint",),
    "PortfolioSetting": ("keep_name", "keep_note", "hold_or_win_name", "hold_or_win_note",
                         "develop_name", "develop_note", "win_or_let_go_name",
                         "win_or_let_go_note"),
    "ServiceRequest": ("description", "resolution", "follow_up_note"),
    "AllocationRule": ("region",),
}
# Text written in Markdown: rendered, so its HTML is sanitised rather than shown as
# typed. It holds the payloads between other marks than 甲…乙 and 丙…丁.
MARKDOWN = {("TierPolicy", "notes")}

# Text columns nobody types freely: codes and names checked against a pattern
# (letters, digits, - and _), choices from a list, states, hashes, what the app writes.
NOT_USER_TEXT = {
    "SchemaVersion": ("name",), "Branch": ("code",),
    "User": ("username", "password_hash", "roles_text", "language", "email", "mobile"),
    "AuditEvent": ("actor_name", "action", "object_type", "object_id", "before", "after",
                   "ip"),
    "Tier": ("code", "colour"), "ScorecardTemplate": ("family", "kind"),
    "Customer": ("code", "name_initials", "kind", "nature", "industry"),
    "Contact": ("phone", "email"), "Activity": ("kind",), "TierHistory": ("source",),
    "ImportBatch": ("filename", "payload", "status", "error"),
    "GradingCycle": ("scope", "phase"), "Score": ("stage",),
    "TierPolicy": ("production_priority",),
    "ApprovalRule": ("key", "direction", "roles_text", "escalate_to"),
    "TierChangeRequest": ("source", "status", "waiting_role", "rule_key"),
    "ApprovalStep": ("role", "status", "escalated_from"), "Opportunity": ("stage",),
    "StageMove": ("from_stage", "to_stage", "kind"), "CycleSignature": ("role", "fingerprint"),
    "ReportJob": ("state", "error", "path", "fingerprint"),
    "Notice": ("kind", "channel", "link", "state", "delivery_key", "about_type", "about_id"),
    "Robot": ("platform", "url_encrypted", "secret_encrypted"),
    "NoticePreference": ("kind", "channels"),
    "ServiceRequest": ("kind", "channel", "status"),
    "CustomerValueClass": ("value_class",),
    "AllocationRule": ("industry", "nature", "value_class"),
    "OwnershipChange": ("source", "reference"),
    "WorkingHours": ("days",),
}


def test_every_text_column_is_classified():
    """Each text column is either user text (the hostile walk fills it) or named as
    not typed freely: a new column must be placed, or the walk would miss it."""
    from peewee import CharField, TextField

    from models import ALL_MODELS
    found = {m.__name__: {f.name for f in m._meta.sorted_fields
                          if isinstance(f, (CharField, TextField))} for m in ALL_MODELS}
    found = {name: columns for name, columns in found.items() if columns}
    classified = {name: set(USER_TEXT.get(name, ())) | set(NOT_USER_TEXT.get(name, ()))
                  for name in set(USER_TEXT) | set(NOT_USER_TEXT)}
    assert found == classified


def _payload(model_name, column):
    if (model_name, column) in MARKDOWN:
        return HOSTILE.replace("甲", "戊").replace("丙", "己")
    return HOSTILE


def _fill_with_hostile_text(app):
    """Every user text column of every record holds both payloads (and its id, for
    the columns that must be unique); an import preview and the audit trail hold
    them too. Returns the admin."""
    import models
    from services.customer_io import preview_import, save_preview
    from tests.test_customer_io import xlsx
    with app.test_request_context():
        if not models.PortfolioSetting.select().exists():  # the demo runs on the defaults
            models.PortfolioSetting.create(version=1, effective_on=datetime.date(2026, 1, 1),
                                           **default_setting().values())
        for model_name, columns in USER_TEXT.items():
            model = getattr(models, model_name)
            for record in model.select(model.id):
                model.update({getattr(model, c): f"{_payload(model_name, c)}{record.id}"
                              for c in columns}).where(model.id == record.id).execute()
        admin = User.get(User.username == "admin")
        rows = [["客户编号", "客户名称", "企业性质", "所属分公司", "2026年销售额"],
                ["H001", HOSTILE, "国有企业", "SH", "12万"],
                ["H002", "某公司", HOSTILE, HOSTILE, HOSTILE]]
        save_preview(preview_import(f"{HOSTILE}.xlsx", xlsx(*rows), admin), admin)
        models.audit("customer_updated", Customer.get(), actor=admin,
                     before={"name": "旧名"}, after={"name": HOSTILE})
    return admin


class _Created(html.parser.HTMLParser):
    """The elements and attributes the payloads would create if they were markup."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.created = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if (tag == "img" and attrs.get("src") == "x") or attrs.get("hx-get") == "/x" \
                or attrs.get("hx-trigger") == "load" and tag == "p":
            self.created.append(self.get_starttag_text())


def markup_created(text):
    parser = _Created()
    parser.feed(text)
    return parser.created


def pdf_payloads_intact(text):
    """In a PDF's text, each payload that shows reads as the typed text: an element
    made of it would leave only its surroundings (甲"> … 乙)."""
    flat = re.sub(r"\s+", "", text)
    broken = [m for m in re.findall(r"甲(.*?)乙", flat) if m != '"><imgsrc=x>']
    broken += [m for m in re.findall(r"丙(.*?)丁", flat) if m != "<phx-get=/xhx-trigger=load>"]
    return broken


@pytest.mark.parametrize("username", ["admin", "bm_sh"])
def test_hostile_text_never_becomes_markup(app, client, username, immediate_jobs, tmp_path):
    """With both payloads in every text a person can set and in every query
    parameter, no page, partial, PDF or export shows an element or attribute that
    the input created, and every PDF prints the payload as the text typed."""
    app.config["REPORTS_DIR"] = str(tmp_path / "reports")  # report.pdf renders as a job
    walk.build_company(app)
    _fill_with_hostile_text(app)
    with app.app_context():
        user = User.get(User.username == username)
        if username == "admin":  # one user who may open every route
            user.roles = list(ROLES)
            user.save()
        urls = walk.route_urls(app, user.roles)
        names = walk.query_names()
    lists = [u for u in urls if not re.search(r"\d", u) or re.fullmatch(r"/cycles/\d+", u)]
    # Each parameter on its own into each page; all at once into each file (a render
    # each is slow, and a file shows no form that could stop at the first bad value).
    files = re.compile(r".*\.(pdf|xlsx|csv)$")
    urls += [walk.with_query(u, **{name: HOSTILE}) for u in lists if not files.match(u)
             for name in names]
    urls += [walk.with_query(u, **dict.fromkeys(names, HOSTILE)) for u in lists
             if files.match(u)]
    assert login(client, username, "demo2027").status_code == 302
    answers = walk.walk(client, urls)

    created = {url: markup_created(text) for (url, _htmx), (status, mimetype, text)
               in answers.items() if mimetype == "text/html"}
    assert {url: found for url, found in created.items() if found} == {}
    pdfs = {url: text for (url, _htmx), (status, mimetype, text) in answers.items()
            if mimetype == "application/pdf"}
    assert {url: pdf_payloads_intact(text) for url, text in pdfs.items()
            if pdf_payloads_intact(text)} == {}
    # The payloads did reach the answers (as text), PDFs included.
    shown = [text for (_s, mimetype, text) in answers.values()
             if ("丙&lt;p hx-get" if mimetype == "text/html" else "丙<p hx-get") in text]
    assert len(shown) > 300
    assert sum("甲\"><img src=x>乙" in re.sub(r"\s+", "", t).replace("imgsrc", "img src")
               for t in pdfs.values()) >= 2
    assert not [key for key, (status, _m, _t) in answers.items() if status >= 500]


# --- Query strings ----------------------------------------------------------------

# Values that have broken number and date parsing somewhere.
TRICKY = ["inf", "-inf", "nan", "NaN", "Infinity", "1e309", "-1", "0", "1.5", "１２",
          "99999999999999999999999", "-99999999999999999999999", "", " ", "\x00", "%",
          "2027-W00", "2027-W53", "2027-W99", "0000-01-01", "9999-12-31", "2027-02-30",
          "true", "[]", "None", "<b>", "'", "\\"]
# PDFs of one record read no query string, and each costs a render: not fuzzed.
NO_QUERY = {"reports.report_pdf", "reports.sheet_pdf", "reports.blank_sheet_pdf",
            "tiers.handbook_pdf", "reports.job_file"}


@pytest.fixture
def fuzz_client(app, client):
    """Someone holding every role, on the small company with a cycle in review."""
    walk.build_company(app)
    with app.app_context():
        user = User.get(User.username == "admin")
        user.roles = list(ROLES)
        user.save()
        routes = [r for r in walk.get_routes(app, user.roles) if r.endpoint not in NO_QUERY]
        # The last record of each kind: the cycle in committee review, for one.
        urls = sorted({r.build({a: (walk._values(r, a) or [1])[-1] for a in r.arguments})[1]
                       for r in routes})
        names = walk.query_names()
    assert login(client, "admin", "demo2027").status_code == 302
    return client, urls, names


def test_no_tricky_value_makes_a_500(fuzz_client):
    """Every query parameter set to each value that breaks parsing somewhere, on
    every GET route, answers without a server error."""
    client, urls, names = fuzz_client
    failed = [(url, value) for url in urls for value in TRICKY
              if client.get(walk.with_query(url, **dict.fromkeys(names, value)))
              .status_code >= 500]
    assert failed == []


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_no_query_string_makes_a_500(fuzz_client, data):
    """Any mix of query parameters on any GET route (numbers that are not finite,
    dates that do not exist, text where ids belong) answers without a server error."""
    client, urls, names = fuzz_client
    url = data.draw(st.sampled_from(urls), label="url")
    params = data.draw(st.dictionaries(
        st.sampled_from(names), st.one_of(st.sampled_from(TRICKY), st.text(max_size=12)),
        min_size=1, max_size=4), label="params")
    htmx = data.draw(st.booleans(), label="htmx")
    response = client.get(walk.with_query(url, **params),
                          headers={"HX-Request": "true"} if htmx else {})
    assert response.status_code < 500, (url, params)
