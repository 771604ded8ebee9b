"""Who may open what: login everywhere, roles per route, branch isolation, CSRF."""
import re

import pytest

from app import PUBLIC_ENDPOINTS
from models import ALL_MODELS, AuditEvent, Customer, User
from tests.conftest import csrf_token_from, login

ALL_ROLES = ("admin", "committee_chair", "committee_member", "branch_manager",
             "sales_director", "general_manager", "sales_rep")
EVERYONE = None
CUSTOMER_EDITORS = ("admin", "branch_manager", "sales_rep", "sales_director")
FUNNEL_TEAM = ("branch_manager", "sales_director", "general_manager", "admin")
FUNNEL_READERS = ("sales_rep", *FUNNEL_TEAM)
REPORT_ROLES = ("admin", "committee_chair", "committee_member", "sales_director",
                "general_manager")

# Every endpoint behind login, with the roles allowed to open it. A new
# route must be added here, or test_every_route_is_in_the_matrix fails.
ALLOCATORS = ("admin", "branch_manager", "sales_director")
ROUTE_ROLES = {
    "main.dashboard": EVERYONE,
    "auth.logout": EVERYONE,
    "customers.index": EVERYONE,
    "customers.detail": EVERYONE,
    "customers.export": EVERYONE,
    "customers.create": CUSTOMER_EDITORS,
    "customers.edit": CUSTOMER_EDITORS,
    "customers.add_activity": CUSTOMER_EDITORS,
    "customers.add_contact_person": CUSTOMER_EDITORS,
    "customers.delete_contact": CUSTOMER_EDITORS,
    "customers.import_upload": CUSTOMER_EDITORS,
    "customers.import_preview": CUSTOMER_EDITORS,
    "customers.import_discard": CUSTOMER_EDITORS,
    "customers.save_portfolio": CUSTOMER_EDITORS,
    "scorecards.index": EVERYONE,
    "scorecards.detail": EVERYONE,
    "scorecards.history": EVERYONE,
    "scorecards.sheet": EVERYONE,
    "scorecards.create": ("admin",),
    "scorecards.edit": ("admin",),
    "cycles.index": EVERYONE,
    "cycles.detail": EVERYONE,
    "cycles.sheets": EVERYONE,
    "cycles.setup": ("admin", "committee_chair"),
    "cycles.move_on": ("admin", "committee_chair"),
    "cycles.assessment": EVERYONE,
    "cycles.save": EVERYONE,
    "cycles.take_over": EVERYONE,
    "cycles.submit": EVERYONE,
    "cycles.meeting": EVERYONE,
    "cycles.meeting_state": EVERYONE,
    "cycles.meeting_board": EVERYONE,
    "cycles.move_meeting": EVERYONE,
    "cycles.finalise_sheet": EVERYONE,
    "cycles.mark_discuss": EVERYONE,
    "tiers.index": EVERYONE,
    "tiers.detail": EVERYONE,
    "tiers.handbook_pdf": EVERYONE,
    "tiers.create": ("admin",),
    "tiers.edit": ("admin",),
    "tiers.move": ("admin",),
    "tiers.edit_policy": ("admin",),
    "tiers.compliance": EVERYONE,
    "tiers.due": EVERYONE,
    "approvals.queue_page": EVERYONE,
    "approvals.decide_bulk": EVERYONE,
    "approvals.detail": EVERYONE,
    "approvals.decide_one": EVERYONE,
    "approvals.withdraw_one": EVERYONE,
    "approvals.remind_one": EVERYONE,
    "approvals.file": ("branch_manager", "sales_rep"),
    "approvals.rules": ("admin",),
    "approvals.save_rule_view": ("admin",),
    "funnel.my_week": ("sales_rep", "branch_manager"),
    "funnel.quick_add": ("sales_rep", "branch_manager"),
    "funnel.move_one": ("sales_rep", "branch_manager"),
    "funnel.mark_lost": ("sales_rep", "branch_manager"),
    "funnel.export_week": ("sales_rep", "branch_manager"),
    "funnel.opportunity": FUNNEL_READERS,
    "funnel.conversion_page": FUNNEL_READERS,
    "funnel.team": FUNNEL_TEAM,
    "funnel.team_member": FUNNEL_TEAM,
    "funnel.export_team": FUNNEL_TEAM,
    "funnel.team_pdf": FUNNEL_TEAM,
    "reports.sheet_pdf": EVERYONE,
    "reports.blank_sheet_pdf": EVERYONE,
    "reports.report_pdf": REPORT_ROLES,
    "reports.signing": REPORT_ROLES,
    "reports.reopen": ("admin", "committee_chair"),
    "reports.report_page": REPORT_ROLES,
    "reports.start_report": REPORT_ROLES,
    "reports.job_status": REPORT_ROLES,
    "reports.job_file": REPORT_ROLES,
    "reports.retry_job": REPORT_ROLES,
    "verify.index": EVERYONE,
    "portfolio.index": EVERYONE,
    "portfolio.settings": ("admin",),
    "service_requests.index": EVERYONE,
    "service_requests.satisfaction": EVERYONE,
    "service_requests.detail": EVERYONE,
    "service_requests.create": CUSTOMER_EDITORS,
    "service_requests.move": CUSTOMER_EDITORS,
    "service_requests.follow_up": CUSTOMER_EDITORS,
    "service_requests.working_hours": ("admin",),
    "portfolio.value_classes": ("admin",),
    "customers.proposed_manager": CUSTOMER_EDITORS,
    "allocation.index": ALLOCATORS,
    "allocation.new_rule": ALLOCATORS,
    "allocation.edit_rule": ALLOCATORS,
    "allocation.remove_rule": ALLOCATORS,
    "allocation.move": ALLOCATORS,
    "allocation.reassign": ALLOCATORS,
    "allocation.confirm": ALLOCATORS,
    "admin.users": ("admin",),
    "admin.user_form": ("admin",),
    "admin.branches": ("admin",),
    "admin.branch_form": ("admin",),
    "audit.events": ("admin",),
    "notices.mine": EVERYONE,
    "notices.away": EVERYONE,
    "notices.end_away": EVERYONE,
    "notices.failed": ("admin",),
    "notices.resend_one": ("admin",),
    "notices.robots": ("admin",),
    "notices.robot_form": ("admin",),
    "notices.test_robot": ("admin",),
    "notices.test_smtp": ("admin",),
}


def _sample_url(rule):
    """The rule's URL with placeholder values for its arguments."""
    values = {}
    for arg in rule.arguments:
        converter = rule._converters[arg]
        kind = converter.__class__.__name__
        values[arg] = 1 if kind == "IntegerConverter" else (
            next(iter(converter.items)) if kind == "AnyConverter" else "x")
    return rule.build(values)[1]


def _rules(app):
    return [r for r in app.url_map.iter_rules() if r.endpoint not in PUBLIC_ENDPOINTS]


def test_every_route_outside_the_allowlist_needs_login(app, client):
    """An anonymous visitor gets the login page from every route but the allowlist."""
    checked = 0
    for rule in _rules(app):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(_sample_url(rule), method=method)
            assert response.status_code == 302, (rule.rule, method, response.status_code)
            assert response.headers["Location"].startswith("/login"), rule.rule
            checked += 1
    assert checked >= len(ROUTE_ROLES)


def test_htmx_requests_are_sent_to_login_without_a_page(client):
    """An htmx request without a session gets 401 and HX-Redirect, not the login HTML."""
    response = client.get("/audit", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


def test_public_endpoints_are_only_the_allowlist(app):
    """Nothing public sneaks in: the allowlist is login, language, health and static files."""
    assert PUBLIC_ENDPOINTS == {"static", "auth.login", "auth.set_language", "main.healthz"}


def test_every_route_is_in_the_matrix(app):
    """Each protected endpoint declares who may open it."""
    endpoints = {r.endpoint for r in _rules(app)}
    assert endpoints == set(ROUTE_ROLES)


@pytest.mark.parametrize("role", ALL_ROLES)
def test_role_route_matrix(app, client, make, role):
    """Each role opens exactly the routes the matrix gives it; others answer 403."""
    user = make.user(f"only_{role}", roles=(role,))
    login(client, user.username)
    for rule in _rules(app):
        if "GET" not in rule.methods:
            continue
        allowed = ROUTE_ROLES[rule.endpoint]
        response = client.get(_sample_url(rule))
        if allowed is EVERYONE or role in allowed:
            assert response.status_code in (200, 404), (role, rule.rule, response.status_code)
        else:
            assert response.status_code == 403, (role, rule.rule, response.status_code)


def test_denied_access_is_audited(client, make):
    """A 403 leaves an access_denied event naming the path."""
    user = make.user("rep", roles=("sales_rep",))
    login(client, user.username)
    assert client.get("/audit").status_code == 403
    event = AuditEvent.select().where(AuditEvent.action == "access_denied").get()
    assert event.actor_name == "rep"
    assert "/audit" in event.after


# GETs may leave a trace of what was read (an export), never a change.
READ_EVENTS = {"customer_export", "funnel_export", "access_denied"}


def test_get_requests_change_nothing(app, client, make):
    """Opening every page changes no table; the trail only notes exports (reads)."""
    make.user("boss", roles=tuple(ALL_ROLES))
    login(client, "boss")
    tables = [m for m in ALL_MODELS if m is not AuditEvent]
    before = {m.__name__: m.select().count() for m in tables}
    last_event = AuditEvent.select().order_by(AuditEvent.id.desc()).first().id
    for rule in _rules(app):
        if "GET" in rule.methods:
            client.get(_sample_url(rule))
    assert {m.__name__: m.select().count() for m in tables} == before
    written = {e.action for e in AuditEvent.select().where(AuditEvent.id > last_event)}
    assert written <= READ_EVENTS


def test_branch_manager_sees_only_the_branch(client, make):
    """The dashboard counts only the branch's customers for a branch manager."""
    east, west = make.branch("E"), make.branch("W")
    for _ in range(3):
        make.customer(branch=east)
    make.customer(branch=west)
    make.user("bm_e", roles=("branch_manager",), branch=east)
    login(client, "bm_e")
    page = client.get("/").get_data(as_text=True)
    assert re.search(r'class="big">3<', page)


def test_another_branchs_record_is_a_404(app, make):
    """get_or_404 answers 404 for another branch's record, and audits it."""
    from werkzeug.exceptions import NotFound

    from views.access import get_or_404
    east, west = make.branch("E"), make.branch("W")
    theirs = make.customer(branch=west)
    mine = make.customer(branch=east)
    manager = make.user("bm_e", roles=("branch_manager",), branch=east)
    with app.test_request_context():
        assert get_or_404(Customer, mine.id, user=manager).id == mine.id
        with pytest.raises(NotFound):
            get_or_404(Customer, theirs.id, user=manager)
        with pytest.raises(NotFound):
            get_or_404(Customer, 999999, user=manager)
    denied = AuditEvent.select().where(AuditEvent.action == "access_denied")
    assert [e.object_id for e in denied] == [str(theirs.id)]
    director = make.user("dir", roles=("sales_director",))
    with app.test_request_context():
        assert get_or_404(Customer, theirs.id, user=director).id == theirs.id


# --- CSRF, with protection on as in production -----------------------------

def test_login_without_csrf_token_is_refused(csrf_app, make):
    """A login POST without the form's token is refused and logs nobody in."""
    client = csrf_app.test_client()
    make.user("li", roles=("admin",))
    response = client.post("/login", data={"username": "li", "password": "correct-horse-1"})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def _logged_in_with_token(csrf_app, make):
    """A client logged in as an admin through the real form, token and all."""
    client = csrf_app.test_client()
    make.user("li", roles=("admin",))
    page = client.get("/login").get_data(as_text=True)
    client.post("/login", data={"username": "li", "password": "correct-horse-1",
                                "csrf_token": csrf_token_from(page)})
    return client


def test_post_without_token_changes_nothing(csrf_app, make):
    """A forged admin POST (no token) is refused and no user is created."""
    client = _logged_in_with_token(csrf_app, make)
    data = {"username": "mallory", "display_name": "M", "password": "long-enough-1",
            "roles": "admin", "branch": "0", "language": "zh_CN", "sales_cycle_days": "28",
            "active": "y"}
    response = client.post("/admin/users/new", data=data)
    assert response.status_code == 400
    assert "表单已过期" in response.get_data(as_text=True)
    assert not User.select().where(User.username == "mallory").exists()
    # The same POST with the page's token goes through.
    form_page = client.get("/admin/users/new").get_data(as_text=True)
    response = client.post("/admin/users/new", data={**data, "csrf_token": csrf_token_from(
        form_page)})
    assert response.status_code == 303
    assert User.select().where(User.username == "mallory").exists()


def test_htmx_post_carries_the_token_as_a_header(csrf_app, make):
    """The layout's hx-headers token is accepted for htmx POSTs; without it, 400."""
    client = _logged_in_with_token(csrf_app, make)
    dashboard = client.get("/").get_data(as_text=True)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', dashboard).group(1)
    refused = client.post("/language", data={"language": "en"}, headers={"HX-Request": "true"})
    assert refused.status_code == 400
    assert User.get(User.username == "li").language == "zh_CN"
    accepted = client.post("/language", data={"language": "en"},
                           headers={"HX-Request": "true", "X-CSRFToken": token})
    assert accepted.status_code == 302
    assert User.get(User.username == "li").language == "en"


def test_logout_needs_the_token(csrf_app, make):
    """A cross-site POST to /logout without the token does not end the session."""
    client = _logged_in_with_token(csrf_app, make)
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200
