"""Tiers and their versioned service policies; who is overdue for service."""
import datetime
import re

import pytest
from flask_babel import force_locale

from models import Activity, AuditEvent, DomainError, ServiceStatus, Tier, TierPolicy, User
from models.compliance import (
    count_overdue,
    count_tiers,
    due_soon,
    overdue,
    overdue_counts,
    overdue_page,
    tier_counts,
)
from models.customers import log_activity
from models.kept_counts import KeptCount
from models.tiers import current_policy, policy_history, save_policy
from tests.conftest import login
from tests.test_approvals import make_world

POLICY = dict(contact_days=30, visit_days=365, analysis_days=90, response_hours=24,
              holiday_greetings=True, dedicated_manager=True, production_priority="first",
              credit_terms="月结60天", notes="**专属**客户经理")


def today():
    """Asked each time, not once at import: a run that passes midnight stays right."""
    return datetime.date.today()


def days_ago(n):
    return today() - datetime.timedelta(days=n)


@pytest.fixture
def world(app, make):
    """make_world() plus policies in force: A contact 30 / visit 365 / analysis 90, B contact
    45, C contact 60 (neither visits nor analyses), D nothing promised."""
    built = make_world(app, make)
    t = built["tiers"]
    with app.test_request_context():
        save_policy(t["A"], built["admin"], effective_on=days_ago(200), **POLICY)
        save_policy(t["B"], built["admin"], effective_on=days_ago(200),
                    **{**POLICY, "contact_days": 45, "visit_days": None,
                       "analysis_days": None})
        save_policy(t["C"], built["admin"], effective_on=days_ago(200),
                    **{**POLICY, "contact_days": 60, "visit_days": None,
                       "analysis_days": None})
    return built


def _activity(customer, kind, on):
    Activity.create(customer=customer, kind=kind, occurred_on=on, notes=f"{kind} 记录")


def test_policy_versions_keep_their_history_and_say_what_changed(app, world):
    """A new version does not overwrite the old one; the one in force follows the effective
    date; the history names each changed field; each save is audited."""
    a, admin = world["tiers"]["A"], world["admin"]
    with app.test_request_context():
        save_policy(a, admin, effective_on=days_ago(10), **{**POLICY, "response_hours": 12})
        save_policy(a, admin, effective_on=today() + datetime.timedelta(days=30),
                    **{**POLICY, "response_hours": 8, "credit_terms": "月结90天"})
    assert TierPolicy.select().where(TierPolicy.tier == a).count() == 3
    assert current_policy(a).response_hours == 12
    assert current_policy(a, today() + datetime.timedelta(days=31)).response_hours == 8
    history = policy_history(a)
    assert [v.version for v, _changes in history] == [3, 2, 1]
    newest = {name: (before, after) for name, before, after in history[0][1]}
    assert newest["response_hours"] == (12, 8) and newest["credit_terms"] == ("月结60天",
                                                                             "月结90天")
    assert "contact_days" not in newest
    events = AuditEvent.select().where(AuditEvent.action == "tier_policy_saved",
                                       AuditEvent.object_id == str(a.id))
    assert events.count() == 3


def test_bad_policies_are_refused(app, world):
    """Nothing changed, a negative interval, an unknown priority: refused, no version saved."""
    a, admin = world["tiers"]["A"], world["admin"]
    latest = current_policy(a)
    for values, match in (({**POLICY}, "Nothing changed"),
                          ({**POLICY, "contact_days": -5}, "above zero"),
                          ({**POLICY, "production_priority": "vip"}, "Unknown production")):
        with app.test_request_context(), force_locale("en"), \
                pytest.raises(DomainError, match=match):
            save_policy(a, admin, effective_on=latest.effective_on, **values)
    assert TierPolicy.select().where(TierPolicy.tier == a).count() == 1


def test_only_an_admin_edits_a_policy_and_the_page_shows_it(app, client, world):
    """An admin saves a new version through the page; a branch manager gets 403; the tier
    page shows the policy, its history and sanitised Markdown."""
    login(client, "bm_e")
    assert client.post("/tiers/A/policy", data={"effective_on": today().isoformat(),
                                                "production_priority": "normal"}
                       ).status_code == 403
    client.post("/logout")
    login(client, "admin")
    form = client.get("/tiers/A/policy").get_data(as_text=True)
    assert 'value="30"' in form  # starts from the latest version
    response = client.post("/tiers/A/policy", data={
        "effective_on": today().isoformat(), "contact_days": "30", "visit_days": "365",
        "analysis_days": "90", "response_hours": "12", "holiday_greetings": "y",
        "dedicated_manager": "y", "production_priority": "first", "credit_terms": "月结60天",
        "notes": "## 服务\n\n- **专属**客户经理\n\n<script>alert(1)</script>"
                 "[点我](javascript:alert(2)) <img src=x onerror=alert(3)>"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/tiers/A")
    page = client.get("/tiers/A").get_data(as_text=True)
    assert "<strong>专属</strong>" in page
    assert "<script>alert" not in page and "javascript:" not in page and "onerror" not in page
    assert "Version 2" in page and re.search(r"<del>24</del>\s*→\s*<ins>12</ins>", page)
    assert current_policy(world["tiers"]["A"]).response_hours == 12


def test_tier_page_counts_holders_and_overdue_in_my_scope(app, client, world):
    """The tier page counts the customers holding it and those overdue, within the branch for
    a branch manager."""
    t, c = world["tiers"], world["customers"]
    _activity(c["B"], "call", days_ago(10))  # B within 45 days: fine
    late = world["west_customer"]  # C, no contact ever: overdue
    login(client, "bm_e")
    page = client.get("/tiers/B").get_data(as_text=True)
    assert re.search(r'data-testid="holders">1<', page) and re.search(
        r'data-testid="late">0<', page)
    assert tier_counts(world["bm"])[t["C"].id] == (1, 1)  # only the east C customer
    assert tier_counts(world["director"])[t["C"].id] == (2, 2)
    assert client.get("/tiers/NOPE").status_code == 404
    _activity(late, "call", days_ago(1))
    assert tier_counts(world["director"])[t["C"].id] == (2, 1)


def test_tiers_are_configurable_by_an_admin(app, client, world):
    """An admin adds a tier at the bottom, renames it, moves it up; a bad colour is refused;
    each change is audited."""
    login(client, "admin")
    response = client.post("/tiers/new", data={"code": "E", "name_zh": "E级",
                                               "name_en": "Tier E", "colour": "#123456"})
    assert response.status_code == 303
    tier = Tier.get(Tier.code == "E")
    assert tier.rank == 5
    client.post("/tiers/E/edit", data={"code": "E", "name_zh": "铅牌", "name_en": "Lead",
                                       "colour": "not-a-colour"})
    assert Tier.get_by_id(tier.id).name_zh == "E级"
    client.post("/tiers/E/edit", data={"code": "E", "name_zh": "铅牌", "name_en": "Lead",
                                       "colour": "#654321"})
    client.post("/tiers/E/move", data={"to": "up"})
    assert [t.code for t in Tier.ordered()] == ["A", "B", "C", "E", "D"]
    assert Tier.get_by_id(tier.id).name_zh == "铅牌"
    actions = {e.action for e in AuditEvent.select()}
    assert {"tier_created", "tier_updated", "tier_moved"} <= actions
    assert "Lead" in client.get("/tiers").get_data(as_text=True)  # the English name


def test_service_status_follows_every_activity(app, world):
    """The last contact, visit and sales analysis follow the activity log, whichever way an
    activity is written or removed."""
    customer = world["customers"]["B"]
    with app.test_request_context():
        log_activity(customer, world["rep"], "visit", days_ago(20))
    _activity(customer, "call", days_ago(5))
    _activity(customer, "sales_analysis", days_ago(50))
    status = ServiceStatus.get_by_id(customer.id)
    assert (status.last_contact_on, status.last_visit_on, status.last_analysis_on) == (
        days_ago(5), days_ago(20), days_ago(50))
    Activity.delete().where(Activity.kind == "call").execute()
    status = ServiceStatus.get_by_id(customer.id)
    assert status.last_contact_on == days_ago(20)


def test_overdue_lists_show_days_and_the_last_activity(app, world, make):
    """Each list holds the customers whose tier promises that service and had none within the
    interval, never-served first, then by days overdue; on time ones are absent."""
    t, east = world["tiers"], world["east"]
    make.customer(east, "从未联系", tier=t["A"], account_manager=world["rep"])
    late = make.customer(east, "逾期十天", tier=t["A"], account_manager=world["rep"])
    fine = make.customer(east, "按时联系", tier=t["A"], account_manager=world["other_rep"])
    _activity(late, "call", days_ago(40))
    _activity(fine, "email", days_ago(3))
    _activity(world["customers"]["C"], "call", days_ago(65))  # C: 60 days, 5 overdue
    _activity(world["customers"]["D"], "call", days_ago(900))  # D promises nothing
    with app.test_request_context():
        total, rows = overdue_page(world["bm"], "contact")
    assert total == len(rows)
    names = [r.name for r in rows]
    never_served = [r.name for r in rows if r.last_on is None]
    assert "从未联系" in never_served and names[:len(never_served)] == never_served
    assert names[len(never_served)] == "逾期十天"  # 10 days over, before C's 5
    assert "按时联系" not in names and world["customers"]["D"].name not in names
    by_name = {r.name: r for r in rows}
    assert by_name["逾期十天"].days_overdue == 10
    assert by_name["逾期十天"].last.kind == "call"
    assert by_name[world["customers"]["C"].name].days_overdue == 5
    assert by_name["从未联系"].days_overdue is None
    # Scope: another branch's manager sees none of these; the manager filter narrows.
    ids = {r.id for r in rows}
    assert not {r.customer for r in overdue(world["bm_w"], "contact")} & ids
    assert {r.customer for r in overdue(world["director"], "contact")} >= ids
    assert list(overdue(world["director"], "contact", manager_id=world["other_rep"].id)) == []
    served = [r.days_overdue for r in rows if r.last_on]  # across tiers, by due date
    assert len(served) >= 2 and served == sorted(served, reverse=True)
    with app.test_request_context():  # a second page holds the rest, in the same order
        second = overdue_page(world["bm"], "contact", size=2, page=2)[1]
        one_by_one = [overdue_page(world["bm"], "contact", size=1, page=n)[1][0].id
                      for n in range(1, total + 1)]
        past_the_end = overdue_page(world["bm"], "contact", size=2, page=total)[1]
    assert [r.id for r in second] == [r.id for r in rows[2:4]]
    assert one_by_one == [r.id for r in rows] and past_the_end == []
    counts = overdue_counts(world["bm"])
    assert counts["contact"] == len(rows) and counts["visit"] == 3  # A visits: none logged
    # Per branch, company-wide: each branch counts as it does alone, and they add up.
    by_branch = overdue_counts(world["director"], group_by="branch")
    assert len(by_branch) >= 2 and by_branch[world["east"].id] == counts
    for branch_id, values in by_branch.items():
        assert values == overdue_counts(world["director"], branch_id=branch_id)
    assert overdue_counts(world["director"]) == {
        kind: sum(values[kind] for values in by_branch.values()) for kind in counts}


def test_kept_overdue_counts_equal_a_fresh_count_after_every_kind_of_write(app, world, make):
    """The counts kept between requests (overdue per kind, holders and overdue per tier)
    equal a fresh count after each write that changes who is overdue: an activity
    logged, moved or deleted, a customer added, re-tiered, moved to another branch or
    manager, a new policy; and they are reused in between."""
    t, east, west = world["tiers"], world["east"], world["west"]
    shapes = [(world["director"], {}), (world["director"], {"group_by": "branch"}),
              (world["bm"], {"group_by": "account_manager"}),
              (world["bm"], {"manager_id": world["rep"].id}), (world["bm_w"], {})]
    seen = []
    KeptCount.delete().execute()  # the suite's earlier tests may have kept some

    def same_as_fresh():
        with app.test_request_context():
            for user, args in shapes:
                kept = overdue_counts(user, **args)
                assert kept == count_overdue(user, **args), (user.username, args)
                assert overdue_counts(user, **args) == kept  # the kept answer, reused
            for user in (world["director"], world["bm"], world["bm_w"]):
                kept = tier_counts(user)
                assert kept == count_tiers(user) == tier_counts(user), user.username
            seen.append(overdue_counts(world["director"]))
            seen.append(tier_counts(world["director"]))

    same_as_fresh()
    assert KeptCount.select().count() == len(shapes) + 3
    customer = make.customer(east, "缓存客户", tier=t["A"], account_manager=world["rep"])
    same_as_fresh()
    with app.test_request_context():
        activity = log_activity(customer, world["rep"], "call", days_ago(1))
    same_as_fresh()
    Activity.update(occurred_on=days_ago(400)).where(Activity.id == activity.id).execute()
    same_as_fresh()
    Activity.delete().where(Activity.id == activity.id).execute()
    same_as_fresh()
    customer.tier = t["D"]
    customer.save()
    same_as_fresh()
    customer.tier = t["B"]
    customer.branch = west
    customer.account_manager = None
    customer.save()
    same_as_fresh()
    customer.account_manager = world["other_rep"]
    customer.branch = east
    customer.save()
    same_as_fresh()
    with app.test_request_context():
        save_policy(t["D"], world["admin"], effective_on=days_ago(1),
                    **{**POLICY, "visit_days": 30})
    same_as_fresh()
    assert len(set(map(str, seen))) >= 4  # the writes did change the counts


def test_compliance_page_and_dashboard(app, client, world, make):
    """The compliance page lists the branch's overdue customers with counts per kind and per
    account manager; the dashboard shows the counts; htmx gets the list alone."""
    late = make.customer(world["east"], "逾期客户", tier=world["tiers"]["A"],
                         account_manager=world["rep"])
    _activity(late, "call", days_ago(45))
    login(client, "bm_e")
    page = client.get("/compliance").get_data(as_text=True)
    assert "逾期客户" in page and "Per account manager" in page and "西南客户" not in page
    row = re.search(r"逾期客户</a>.*?</tr>", page, re.S).group(0)
    assert '<span class="tag">Phone call</span>' in row  # its last contact, by kind
    assert re.search(r'data-testid="count-contact">\s*<h2>Contact</h2><p class="big">\d+<', page)
    fragment = client.get("/compliance?kind=visit&page=1",
                          headers={"HX-Request": "true", "HX-Target": "overdue"})
    assert "<html" not in fragment.get_data(as_text=True)
    assert "逾期客户" in fragment.get_data(as_text=True)
    # A filter change redraws the counts and the groups with the list, not the list alone.
    changed = client.get("/compliance?kind=visit", headers={
        "HX-Request": "true", "HX-Target": "compliance"}).get_data(as_text=True)
    assert re.search(r'class="tile current[^"]*" href="[^"]*" data-testid="count-visit"', changed)
    assert "Per account manager" in changed and "逾期客户" in changed
    # Each group links to its own list, keeping the filters already set.
    assert f'href="/compliance?kind=visit&amp;manager={world["rep"].id}"' in changed
    # With an account manager chosen, the tiles count that manager's customers.
    def tile(page, kind="contact"):
        return re.search(rf'data-testid="count-{kind}">\s*<h2>[^<]*</h2><p class="big">(\d+)<',
                         page).group(1)
    assert int(tile(page)) >= 1
    assert tile(client.get(f"/compliance?manager={world['other_rep'].id}").get_data(
        as_text=True)) == "0"
    assert tile(client.get(f"/compliance?manager={world['rep'].id}").get_data(
        as_text=True)) == tile(page)
    dashboard = client.get("/").get_data(as_text=True)
    assert 'data-testid="overdue-tile"' in dashboard
    client.post("/logout")
    login(client, "director")
    assert "Per branch" in client.get("/compliance").get_data(as_text=True)
    # Choosing a branch offers that branch's account managers to choose from next.
    def managers(page):
        return re.search(r'<select id="manager".*?</select>', page, re.S).group(0)

    rep = f'<option value="{world["rep"].id}">'
    assert rep not in managers(client.get("/compliance").get_data(as_text=True))
    east = client.get(f"/compliance?branch={world['east'].id}", headers={
        "HX-Request": "true", "HX-Target": "compliance"}).get_data(as_text=True)
    assert rep in managers(east) and "Per account manager" in east
    assert f'href="/compliance?branch={world["east"].id}&amp;manager={world["rep"].id}"' in east
    assert f'href="/compliance?branch={world["east"].id}"' in client.get(
        "/compliance").get_data(as_text=True)  # per branch, for the director
    rep_page = client.get(f"/compliance?branch={world['east'].id}&manager={world['rep'].id}")
    assert tile(rep_page.get_data(as_text=True)) == tile(page)


def test_compliance_groups_name_a_deactivated_manager_who_still_holds_customers(
        app, client, world, make):
    """The filter offers active managers only; the per-manager counts still name a manager
    who was deactivated with overdue customers, rather than a dash."""
    gone = world["other_rep"]
    late = make.customer(world["east"], "离职经理的客户", tier=world["tiers"]["A"],
                         account_manager=gone)
    _activity(late, "call", days_ago(45))
    User.update(active=False).where(User.id == gone.id).execute()
    login(client, "bm_e")
    page = client.get("/compliance").get_data(as_text=True)
    assert f'<option value="{gone.id}">' not in page  # not offered as a filter
    assert f'manager={gone.id}">{gone.display_name}</a>' in page


def test_account_managers_due_this_week(app, client, world, make):
    """Due this week lists my customers whose next service falls due within seven days, not
    the overdue ones and not other managers'."""
    t = world["tiers"]
    soon = make.customer(world["east"], "下周到期", tier=t["A"], account_manager=world["rep"])
    _activity(soon, "call", days_ago(26))  # A: 30 days, due in 4
    overdue_one = make.customer(world["east"], "早已逾期", tier=t["A"],
                                account_manager=world["rep"])
    _activity(overdue_one, "call", days_ago(50))
    others = make.customer(world["east"], "别人的客户", tier=t["A"],
                           account_manager=world["other_rep"])
    _activity(others, "call", days_ago(26))
    items = due_soon(world["rep"])
    assert [(due, kind, row["name"]) for due, kind, row in items] == [
        (today() + datetime.timedelta(days=4), "contact", "下周到期")]
    login(client, "rep_e")
    page = client.get("/compliance/due").get_data(as_text=True)
    assert "下周到期" in page and "早已逾期" not in page and "别人的客户" not in page
    assert "Due this week" in client.get("/").get_data(as_text=True)


def test_the_policy_handbook_prints_every_tiers_policy_in_force(app, client, world):
    """/tiers/handbook.pdf is a real PDF: an overview, then each tier's policy in force, in
    Chinese, with the Markdown terms as text and a tier without a policy said so."""
    from tests.pdf_helpers import pdf_text
    a = world["tiers"]["A"]
    with app.test_request_context():
        save_policy(a, world["admin"], effective_on=today() + datetime.timedelta(days=5),
                    **{**POLICY, "response_hours": 6})  # not in force yet
    login(client, "admin")
    response = client.get("/tiers/handbook.pdf")
    assert response.status_code == 200 and response.data.startswith(b"%PDF")
    assert response.headers["Content-Type"] == "application/pdf"
    text = re.sub(r"\s+", " ", pdf_text(response.data))  # the admin reads English
    assert "Tier service policy handbook" in text
    sections = {name: text.split(f"{name} · Service policy")[1][:400]
                for name in ("Tier A", "Tier B", "Tier C", "Tier D")}
    assert "月结60天" in sections["Tier A"] and "专属客户经理" in sections["Tier A"]
    assert "Response time (hours) 24" in sections["Tier A"]  # not the version due in 5 days
    assert "Contact every (days) 45" in sections["Tier B"]
    assert "No policy in force yet." in sections["Tier D"]
    assert "Page 1 of" in text


def test_the_weekly_digest_tells_each_manager_what_is_overdue_by_tier(app, world, make):
    """On Monday each branch manager hears the branch's overdue service, each account
    manager their own customers', as counts per tier and kind in their language, with a
    link to the list; nobody else hears anything. The worker sends it on Mondays at
    08:00 company time (midnight UTC)."""
    from models.compliance import notify_overdue_digest
    from models.notices import Notice
    from services import jobs

    app.config.update(SMTP_HOST="127.0.0.1", PUBLIC_URL="https://tierdesk.example.com")
    for person in ("bm", "bm_w", "rep", "rep_w", "other_rep", "director"):
        User.update(email=f"{person}@example.com").where(
            User.id == world[person].id).execute()
    User.update(language="zh_CN").where(User.id == world["bm"].id).execute()
    # An A customer contacted yesterday: never visited nor analysed, so overdue for both.
    recent = make.customer(world["east"], "近期联系客户", tier=world["tiers"]["A"],
                           account_manager=world["other_rep"])
    with app.test_request_context():
        log_activity(recent, world["other_rep"], "call", days_ago(1))
        told = notify_overdue_digest()
    assert sorted(told) == sorted(world[p].id for p in ("bm", "bm_w", "rep", "rep_w",
                                                        "other_rep"))
    notices = {n.recipient_id: n for n in Notice.select()}
    assert set(notices) == set(told) and {n.kind for n in notices.values()} == {
        "overdue_digest"}
    bm = notices[world["bm"].id]  # the East branch: B and C never contacted, the A one
    assert bm.subject == "本周逾期服务：4 项"
    assert "- A级：拜访 1 位、销售分析 1 位\n- B级：联系 1 位\n- C级：联系 1 位" in bm.body
    assert "D级" not in bm.body and bm.link == "https://tierdesk.example.com/compliance"
    rep = notices[world["rep"].id]  # reads English: B and C of the East branch
    assert "- Tier B: Contact 1\n- Tier C: Contact 1" in rep.body and "Tier A" not in rep.body
    assert rep.link == f"https://tierdesk.example.com/compliance?manager={world['rep'].id}"
    assert "- Tier C: Contact 1" in notices[world["bm_w"].id].body
    assert "- Tier A: Visit 1, Sales analysis 1" in notices[world["other_rep"].id].body
    digest_at = jobs.overdue_digest.s().validate_datetime
    assert digest_at(datetime.datetime(2027, 3, 22, 0, 0))
    assert not digest_at(datetime.datetime(2027, 3, 22, 8, 0))


def _followed_up(customer, tier, satisfaction, at):
    """A resolved complaint of `customer`, received under `tier`, followed up at `at`."""
    from models.service_requests import ServiceRequest
    return ServiceRequest.create(
        customer=customer, kind="complaint", channel="phone", description="包装破损",
        received_at=at - datetime.timedelta(days=3), status="resolved", tier=tier,
        resolution="已补发", resolved_at=at - datetime.timedelta(days=2), followed_up_at=at,
        satisfaction=satisfaction)


def test_the_handbook_ends_with_the_years_satisfaction_per_tier(app, client, world):
    """The handbook's appendix counts this year's follow-up calls per tier (the tier at
    receipt) with their average satisfaction and a total, over the requests the reader
    may see: the admin every branch's, E's manager only E's (in Chinese); last year's
    calls and tiers without any show no figures."""
    from tests.pdf_helpers import pdf_text
    t, east_b, east_c = world["tiers"], world["customers"]["B"], world["customers"]["C"]
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(
        minutes=5)
    with app.app_context():
        _followed_up(east_b, t["B"], 5, now)
        _followed_up(east_b, t["B"], 4, now)
        _followed_up(east_c, t["C"], 2, now)
        _followed_up(world["west_customer"], t["C"], 3, now)
        _followed_up(east_b, t["B"], 1, datetime.datetime(now.year - 1, 6, 1))
        User.update(language="zh_CN").where(User.id == world["bm"].id).execute()

    login(client, "admin")
    text = re.sub(r"\s+", " ", pdf_text(client.get("/tiers/handbook.pdf").data))
    appendix = text.split(f"Appendix: satisfaction in {now.year}")[1]
    assert "all branches" in appendix
    assert "Tier A 0 —" in appendix and "Tier B 2 4.5" in appendix
    assert "Tier C 2 2.5" in appendix and "All tiers 4 3.5" in appendix

    other = app.test_client()
    login(other, "bm_e")
    text = re.sub(r"\s+", " ", pdf_text(other.get("/tiers/handbook.pdf").data))
    appendix = text.split(f"附录：{now.year} 年客户满意度")[1]
    assert "仅华东分公司" in appendix
    assert f"{t['A'].name_zh} 0 —" in appendix
    assert f"{t['B'].name_zh} 2 4.5" in appendix and f"{t['C'].name_zh} 1 2.0" in appendix
    assert "全部等级 3 3.7" in appendix
