"""The dashboard and the health check."""
import datetime

from flask import Blueprint, g, jsonify, render_template, request, url_for
from flask_babel import get_locale
from flask_login import current_user

from i18n import lazy_gettext as _l
from models import Customer, db
from models.approvals import pending_count
from models.compliance import due_soon, overdue_counts
from models.customers import count_found
from models.funnel import my_summary, stage_label
from models.people import ROLES
from models.phases import tasks_for
from models.schema import current_version, latest_version
from services.health import harfbuzz_subsetting

bp = Blueprint("main", __name__)


@bp.route("/")
def dashboard():
    """My tasks; each later domain adds its own panel."""
    customers = count_found(Customer.visible_to(current_user))
    funnel = my_summary(current_user) if current_user.has_role("sales_rep") else None
    return render_template("main/dashboard.html", customer_count=customers,
                           grading_tasks=tasks_for(current_user),
                           approvals_waiting=waiting_for(current_user),
                           overdue=overdue_counts(current_user),
                           due_this_week=len(due_soon(current_user))
                           if current_user.has_role("sales_rep") else None, funnel=funnel)


@bp.route("/healthz")
def healthz():
    """JSON for monitors: database, schema version, PDF font subsetting."""
    try:
        db.execute_sql("SELECT 1")
        database_ok = True
        version = current_version()
    except Exception:  # noqa: BLE001 - any failure means "not healthy"
        database_ok, version = False, None
    subsetting = harfbuzz_subsetting()
    body = {
        "status": "ok" if database_ok and version == latest_version() else "degraded",
        "database": database_ok,
        "schema_version": version,
        "schema_latest": latest_version(),
        "pdf_font_subsetting": subsetting,
    }
    if not subsetting:
        body["warnings"] = ["libharfbuzz-subset0 is missing: every Chinese PDF renders about "
                            "30 times slower. Install it: apt-get install libharfbuzz-subset0"]
        body["status"] = "degraded"
    return jsonify(body), 200 if database_ok else 503


def waiting_for(user):
    """The approvals waiting for `user`, counted once a request: the badge and the
    dashboard's tile both show it, and the unfiltered queue has counted it already."""
    if "pending_count" not in g:
        g.pending_count = pending_count(user)
    return g.pending_count


# The navigation: (endpoint, label, roles that see it; None = everyone).
# Later domains add their entries here.
# A count beside an entry: endpoint -> function(user) -> number (0 shows none).
NAV_BADGES = {"approvals.queue_page": waiting_for}
NAV = [
    ("main.dashboard", _l("My tasks"), None),
    ("customers.index", _l("Customers"), None),
    ("cycles.index", _l("Grading cycles"), None),
    ("scorecards.index", _l("Scorecards"), None),
    ("tiers.index", _l("Tiers"), None),
    ("approvals.queue_page", _l("Approvals"), None),
    ("portfolio.index", _l("Portfolio"), None),
    ("service_requests.index", _l("Service requests"), None),
    ("allocation.index", _l("Allocation"), ("admin", "branch_manager", "sales_director")),
    ("funnel.my_week", _l("My funnel"), ("sales_rep", "branch_manager")),
    ("funnel.team", _l("Team funnel"), ("branch_manager", "sales_director", "general_manager",
                                        "admin")),
    ("notices.mine", _l("Notices"), None),
    ("admin.users", _l("Users"), ("admin",)),
    ("admin.branches", _l("Branches"), ("admin",)),
    ("notices.robots", _l("Group robots"), ("admin",)),
    ("audit.events", _l("Audit trail"), ("admin",)),
]


@bp.app_template_global()
def id_url(endpoint, key):
    """The URL of `endpoint` for any id, without the id: a list appends each row's id
    (`{{ base }}{{ row.id }}`) rather than building fifty URLs through the router.
    For stable URLs that end in the id, as /customers/<id> does."""
    url = url_for(endpoint, **{key: 0})
    if not url.endswith("/0"):
        raise ValueError(f"{endpoint} does not end in its {key}")
    return url[:-1]


@bp.app_context_processor
def layout_helpers():
    def nav_items():
        items = []
        # Read through their proxies once, not once per entry.
        user, path = current_user._get_current_object(), request.path
        for endpoint, label, roles in NAV:
            if roles is None or user.has_role(*roles):
                url = url_for(endpoint)
                active = path == url if url == "/" else path.startswith(url)
                badge = NAV_BADGES[endpoint](user) if endpoint in NAV_BADGES else 0
                items.append({"url": url, "label": label, "active": active, "badge": badge,
                              "badge_id": f"badge-{endpoint.replace('.', '-')}"
                              if endpoint in NAV_BADGES else None})
        # /funnel/team is under /funnel too: only the longest match is the current one.
        longest = max((len(item["url"]) for item in items if item["active"]), default=0)
        for item in items:
            item["active"] = item["active"] and len(item["url"]) == longest
        return items

    return {"nav_items": nav_items, "current_locale": get_locale,
            "role_label": lambda role: ROLES.get(role, role), "today": datetime.date.today(),
            "stage_label": stage_label}
