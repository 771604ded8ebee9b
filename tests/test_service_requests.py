"""Service requests (服务请求): the due time from the tier's response hours, the warning
and breach states, the moves and the follow-up call with satisfaction, the pages and
their branch scope, the compliance page's overdue list, and the breach notice sent once."""
import datetime
import re
from zoneinfo import ZoneInfo

import pytest
from flask_babel import force_locale

from models import AuditEvent, Notice, Tier, TierPolicy, db, utcnow
from models.service_requests import (
    Schedule,
    ServiceRequest,
    WorkingHours,
    add_working_time,
    countdown,
    log_request,
    move_request,
    notify_breaches,
    record_follow_up,
    timer,
)
from services.demo import ensure_reference_data
from tests.conftest import login

HOUR = datetime.timedelta(hours=1)
SHANGHAI = datetime.timedelta(hours=8)  # the company's clock: Asia/Shanghai, no DST


def local_input(utc_value):
    """A naive UTC time as the form's datetime-local field takes it (Shanghai time)."""
    return (utc_value + SHANGHAI).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def world(app, make):
    """Tiers A–D; A promises a response within 24 hours and a contact every 30 days, D
    no response time. Branch E with a manager and a rep, branch W with a manager; an
    admin. In E an A customer (the rep manages it) and a D customer; in W an A one."""
    with app.test_request_context():
        ensure_reference_data()
        tiers = {t.code: t for t in Tier.select()}
        start = datetime.date.today() - datetime.timedelta(days=90)
        TierPolicy.create(tier=tiers["A"], version=1, effective_on=start, contact_days=30,
                          response_hours=24)
        TierPolicy.create(tier=tiers["D"], version=1, effective_on=start, contact_days=180)
        east, west = make.branch("E", "华东分公司"), make.branch("W", "西南分公司")
        rep_e = make.user("rep_e", roles=("sales_rep",), branch=east, email="rep@example.com")
        built = dict(
            tiers=tiers, east=east, west=west, rep_e=rep_e,
            admin=make.user("admin", roles=("admin",)),
            bm_e=make.user("bm_e", roles=("branch_manager",), branch=east,
                           email="bm@example.com"),
            bm_w=make.user("bm_w", roles=("branch_manager",), branch=west),
            a_east=make.customer(east, "华东甲级客户", code="EA001", tier=tiers["A"],
                                 account_manager=rep_e),
            d_east=make.customer(east, "华东丁级客户", code="ED001", tier=tiers["D"]),
            a_west=make.customer(west, "西南甲级客户", code="WA001", tier=tiers["A"]),
        )
    return built


def _log(app, customer, user, received_at, kind="complaint", **kw):
    with app.test_request_context():
        return log_request(customer, user, kind=kind, channel="phone",
                           description=kw.pop("description", "交货延迟，客户很不满意"),
                           received_at=received_at, **kw)


def test_the_due_time_comes_from_the_tiers_response_hours(app, world):
    """An A customer's request is due 24 calendar hours after it came in, with the
    warning at 80 %; a D customer's tier promises no response time, so none is due."""
    received = utcnow() - 2 * HOUR
    a = _log(app, world["a_east"], world["bm_e"], received)
    d = _log(app, world["d_east"], world["bm_e"], received)
    a, d = ServiceRequest.get_by_id(a.id), ServiceRequest.get_by_id(d.id)
    assert a.response_hours == 24 and a.tier_id == world["tiers"]["A"].id
    assert a.due_at == received + 24 * HOUR
    assert a.warn_at == received + datetime.timedelta(hours=19.2)
    assert d.due_at is None and timer(d).state == "no_limit"


def test_the_policy_in_force_when_received_holds_not_todays(app, world):
    """A request received before the A policy went from 48 to 24 hours keeps 48 hours."""
    with app.test_request_context():
        TierPolicy.update(effective_on=datetime.date.today() - datetime.timedelta(days=5)) \
            .where(TierPolicy.tier == world["tiers"]["A"]).execute()
        TierPolicy.create(tier=world["tiers"]["A"], version=0,
                          effective_on=datetime.date.today() - datetime.timedelta(days=90),
                          contact_days=30, response_hours=48)
    received = utcnow() - datetime.timedelta(days=10)
    old = _log(app, world["a_east"], world["bm_e"], received)
    assert ServiceRequest.get_by_id(old.id).due_at == received + 48 * HOUR


def test_the_clock_warns_at_80_percent_and_breaches_after_due(app, world):
    """10 hours in: on time, 14 hours left; 20 hours in: due soon; 27 hours in: overdue
    by 3 hours; resolved after the due time, it was answered late."""
    received = utcnow() - 30 * HOUR
    request = ServiceRequest.get_by_id(_log(app, world["a_east"], world["bm_e"], received).id)
    at = {h: timer(request, received + h * HOUR) for h in (10, 20, 27)}
    assert [at[h].state for h in (10, 20, 27)] == ["on_time", "warning", "breached"]
    with app.test_request_context():  # the catalog's Chinese
        assert countdown(at[10].minutes) == "还剩 14 小时"
        assert countdown(at[27].minutes) == "已超时 3 小时"
        assert countdown(30) == "还剩 30 分钟"
        with force_locale("en"):  # English counts in the singular too
            assert countdown(60) == "1 hour left"
            assert countdown(-1) == "1 minute overdue"
            assert countdown(-180) == "3 hours overdue"
        move_request(request, world["bm_e"], "resolved", "已补发货物")
    assert timer(ServiceRequest.get_by_id(request.id)).state == "late"


def test_an_a_complaint_past_24_hours_shows_as_overdue_then_is_resolved_and_followed_up(
        app, client, world):
    """A complaint logged for an A customer 26 hours after it came in is overdue on the
    compliance page and in the list; resolving needs a resolution; the follow-up call
    records satisfaction 4, after which the complaint may close; the satisfaction page
    counts it; every step is in the audit trail."""
    login(client, "bm_e")
    received = utcnow() - 26 * HOUR
    response = client.post("/service-requests/new", data={
        "customer_code": "EA001", "kind": "complaint", "channel": "phone",
        "received_at": local_input(received), "owner": str(world["rep_e"].id),
        "description": "交货延迟两周，影响客户生产"})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    request = ServiceRequest.get()
    url = f"/service-requests/{request.id}"
    assert response.headers["Location"] == url
    assert request.owner_id == world["rep_e"].id

    page = client.get(url).get_data(as_text=True)
    assert "已超时 2 小时" in page and "华东甲级客户" in page
    compliance = client.get("/compliance").get_data(as_text=True)
    section = re.search(r'data-testid="breached-requests">(.*?)</section>', compliance,
                        re.S).group(1)
    assert 'data-testid="breached-count">1<' in section and "华东甲级客户" in section
    listed = client.get("/service-requests?timer=breached").get_data(as_text=True)
    assert "华东甲级客户" in listed and "共 1 条请求" in listed

    # Resolving without saying how is refused; nothing changes.
    refused = client.post(f"{url}/move", data={"to": "resolved", "resolution": "  "})
    assert refused.status_code == 422 and "请填写处理结果" in refused.get_data(as_text=True)
    assert ServiceRequest.get_by_id(request.id).status == "new"
    assert client.post(f"{url}/move", data={"to": "in_progress"}).status_code == 303
    assert client.post(f"{url}/move", data={"to": "resolved",
                                            "resolution": "协调工厂加急补货并赔偿运费"}
                       ).status_code == 303
    resolved = ServiceRequest.get_by_id(request.id)
    assert resolved.status == "resolved" and resolved.follow_up_due_at is not None
    # The follow-up falls due the A policy's contact interval (30 days) after resolving.
    assert (resolved.follow_up_due_at - resolved.resolved_at).days == 30
    compliance = client.get("/compliance").get_data(as_text=True)
    assert 'data-testid="breached-count">0<' in compliance

    # A complaint closes only after its follow-up call.
    early = client.post(f"{url}/move", data={"to": "closed"})
    assert early.status_code == 422 and "回访" in early.get_data(as_text=True)
    assert client.post(f"{url}/follow-up", data={"satisfaction": "9"}).status_code == 422
    assert client.post(f"{url}/follow-up", data={"satisfaction": "4",
                                                 "note": "客户认可处理结果"}).status_code == 303
    assert client.post(f"{url}/move", data={"to": "closed"}).status_code == 303
    done = ServiceRequest.get_by_id(request.id)
    assert (done.status, done.satisfaction, done.follow_up_note) == ("closed", 4,
                                                                     "客户认可处理结果")
    assert "4/5" in client.get(url).get_data(as_text=True)

    satisfaction = client.get("/service-requests/satisfaction").get_data(as_text=True)
    assert re.search(r'data-testid="calls">1<', satisfaction)
    assert re.search(r'data-testid="average">4\.0<', satisfaction)
    assert "华东分公司" in satisfaction and world["rep_e"].display_name in satisfaction

    actions = [e.action for e in AuditEvent.select().where(
        AuditEvent.object_type == "service_request").order_by(AuditEvent.id)]
    assert actions == ["service_request_logged", "service_request_moved",
                       "service_request_moved", "service_request_followed_up",
                       "service_request_moved"]


@pytest.mark.parametrize("change, message", [
    ({"description": ""}, "该字段是必填字段"),
    ({"kind": "praise"}, "不是有效的选择"),
    ({"customer_code": "WA001"}, "在您可查看的客户中没有这个编号"),
    ({"customer_code": "NOPE"}, "在您可查看的客户中没有这个编号"),
    ({"received_at": "future"}, "收到请求的时间不能晚于现在"),
    ({"owner": "bm_w"}, "负责人必须是负责该客户所属分公司的在职同事"),
])
def test_bad_input_is_refused_and_nothing_is_saved(app, client, world, change, message):
    """A blank description, an unknown kind, another branch's or an unknown customer, a
    time in the future and an owner from another branch are each refused with a
    message; no request and no audit row is written."""
    # The admin sees W's customers; E's manager must not.
    login(client, "bm_e" if change.get("customer_code") == "WA001" else "admin")
    data = {"customer_code": "EA001", "kind": "complaint", "channel": "email",
            "received_at": local_input(utcnow() - HOUR), "owner": "",
            "description": "咨询新产品价格"}
    if change.get("received_at") == "future":
        change = {"received_at": local_input(utcnow() + 3 * HOUR)}
    if change.get("owner") == "bm_w":
        change = {"owner": str(world["bm_w"].id)}
    response = client.post("/service-requests/new", data={**data, **change})
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert message in text, re.findall(r'class="(?:error|flash[^"]*)">([^<]*)<', text)
    assert ServiceRequest.select().count() == 0
    assert not AuditEvent.select().where(AuditEvent.object_type == "service_request").exists()


def test_a_follow_up_before_resolving_and_a_wrong_move_are_refused(app, world):
    """An open complaint takes no follow-up call; a new request cannot close; an
    enquiry never gets a follow-up; each refusal leaves the request as it was."""
    request = _log(app, world["a_east"], world["bm_e"], utcnow() - HOUR)
    enquiry = _log(app, world["a_east"], world["bm_e"], utcnow() - HOUR, kind="enquiry")
    from models import DomainError
    with app.test_request_context():
        with pytest.raises(DomainError):
            record_follow_up(request, world["bm_e"], 5)
        with pytest.raises(DomainError):
            move_request(request, world["bm_e"], "closed")
        move_request(enquiry, world["bm_e"], "resolved", "已答复")
        with pytest.raises(DomainError):
            record_follow_up(enquiry, world["bm_e"], 5)
        move_request(enquiry, world["bm_e"], "closed")  # no follow-up needed
    assert ServiceRequest.get_by_id(request.id).status == "new"
    assert ServiceRequest.get_by_id(request.id).satisfaction is None
    assert ServiceRequest.get_by_id(enquiry.id).status == "closed"


def test_another_branchs_request_and_customer_are_a_404(app, client, world):
    """E's manager gets 404 for W's request (page, moves, follow-up) and for logging a
    request of W's customer, never sees it in the list, and the attempt is audited."""
    theirs = _log(app, world["a_west"], world["bm_w"], utcnow() - 30 * HOUR)
    mine = _log(app, world["a_east"], world["bm_e"], utcnow() - HOUR)
    login(client, "bm_e")
    assert client.get(f"/service-requests/{theirs.id}").status_code == 404
    assert client.post(f"/service-requests/{theirs.id}/move",
                       data={"to": "in_progress"}).status_code == 404
    assert client.post(f"/service-requests/{theirs.id}/follow-up",
                       data={"satisfaction": "5"}).status_code == 404
    assert client.get(f"/service-requests/new?customer={world['a_west'].id}").status_code == 404
    assert client.get(f"/service-requests/new?customer={10**30}").status_code == 404
    assert ServiceRequest.get_by_id(theirs.id).status == "new"
    listed = client.get("/service-requests").get_data(as_text=True)
    assert "华东甲级客户" in listed and "西南甲级客户" not in listed
    compliance = client.get("/compliance").get_data(as_text=True)
    assert "西南甲级客户" not in compliance
    assert client.get(f"/service-requests/{mine.id}").status_code == 200
    denied = AuditEvent.select().where(AuditEvent.action == "access_denied",
                                       AuditEvent.object_type == "service_request")
    assert str(theirs.id) in {e.object_id for e in denied}
    # The admin sees both, and may narrow the list to a branch.
    client = app.test_client()
    login(client, "admin")
    everyone = client.get("/service-requests").get_data(as_text=True)
    assert "西南甲级客户" in everyone and "华东甲级客户" in everyone
    west_only = client.get(f"/service-requests?branch={world['west'].id}").get_data(
        as_text=True)
    assert "西南甲级客户" in west_only and "华东甲级客户" not in west_only


def test_the_list_filters_by_status_kind_and_search(app, client, world):
    """Status, kind, the warning filter and a search by customer code each narrow the
    list; a page shows at most PAGE_SIZE rows."""
    _log(app, world["a_east"], world["bm_e"], utcnow() - 20 * HOUR)  # warning
    enquiry = _log(app, world["d_east"], world["bm_e"], utcnow() - HOUR, kind="enquiry")
    with app.test_request_context():
        move_request(enquiry, world["bm_e"], "in_progress")
    login(client, "bm_e")

    def names(query):
        page = client.get(f"/service-requests?{query}").get_data(as_text=True)
        return sorted(set(re.findall(r"华东[甲丁]级客户", page)))
    assert names("timer=warning") == ["华东甲级客户"]
    assert names("status=in_progress") == ["华东丁级客户"]
    assert names("kind=complaint") == ["华东甲级客户"]
    assert names("q=ED0") == ["华东丁级客户"]
    assert names("q=华东") == ["华东丁级客户", "华东甲级客户"]
    app.config["PAGE_SIZE"] = 1
    page = client.get("/service-requests").get_data(as_text=True)
    assert len(re.findall(r'<tr data-request="', page)) == 1 and "下一页" in page
    partial = client.get("/service-requests?status=new", headers={"HX-Request": "true"})
    assert "<html" not in partial.get_data(as_text=True)
    assert partial.headers["HX-Push-Url"] == "/service-requests?status=new"


def test_the_customer_page_shows_its_requests(app, client, world):
    """A customer's page lists its own requests with their clocks and links to log one;
    another customer's requests are not there."""
    request = _log(app, world["a_east"], world["bm_e"], utcnow() - 30 * HOUR)
    _log(app, world["d_east"], world["bm_e"], utcnow() - HOUR, kind="after_sales")
    login(client, "rep_e")
    page = client.get(f"/customers/{world['a_east'].id}").get_data(as_text=True)
    section = re.search(r'id="service-requests">(.*?)</section>', page, re.S).group(1)
    assert f"/service-requests/{request.id}" in section and "已超时 6 小时" in section
    assert "售后" not in section
    assert f"/service-requests/new?customer={world['a_east'].id}" in section
    form = client.get(f"/service-requests/new?customer={world['a_east'].id}").get_data(
        as_text=True)
    assert 'value="EA001"' in form


def test_a_breach_notifies_the_owner_and_the_branch_manager_once(app, world):
    """An open request past its due time writes one notice to its owner and one to the
    branch manager, in the transaction that marks it told; a second run, a resolved
    request and one still within its time write none."""
    app.config.update(SMTP_HOST="127.0.0.1")
    late = _log(app, world["a_east"], world["bm_e"], utcnow() - 25 * HOUR,
                owner=world["rep_e"])
    _log(app, world["a_east"], world["bm_e"], utcnow() - HOUR, owner=world["rep_e"])
    solved = _log(app, world["a_east"], world["bm_e"], utcnow() - 30 * HOUR)
    with app.test_request_context():
        move_request(solved, world["bm_e"], "resolved", "已处理")
        assert notify_breaches() == [late.id]
        assert notify_breaches() == []
    notices = list(Notice.select().where(Notice.about_type == "service_request"))
    assert sorted(n.recipient_id for n in notices) == sorted([world["rep_e"].id,
                                                              world["bm_e"].id])
    assert all(n.about_id == str(late.id) and n.channel == "email" for n in notices)
    assert "华东甲级客户" in notices[0].subject
    assert ServiceRequest.get_by_id(late.id).breach_notified_at is not None
    assert AuditEvent.select().where(AuditEvent.action == "service_request_breached").count() == 1
    assert db.is_closed() or not db.in_transaction()


def _kept_vs_fresh():
    """[(id, kept branch, fresh branch, kept open due, fresh open due)] of every request."""
    return [(r.id, r.branch, r.customer.branch_id, r.open_due_at,
             r.due_at if r.status in ("new", "in_progress") else None)
            for r in ServiceRequest.select().order_by(ServiceRequest.id)]


def test_the_kept_branch_and_open_due_time_equal_a_fresh_computation(app, client, world):
    """Each request's kept branch is its customer's and its open due time is its due time
    while new or in progress, NULL once resolved or closed: after logging, every move,
    a reopening, a customer moved by the edit form and by a bulk UPDATE, a bulk insert,
    and a status written straight into the table; the breached count follows."""
    from models.customers import Customer, save_customer
    from services.demo import build_service_requests

    late = _log(app, world["a_east"], world["bm_e"], utcnow() - 30 * HOUR)
    later = _log(app, world["a_east"], world["bm_e"], utcnow() - 40 * HOUR, kind="enquiry")
    _log(app, world["d_east"], world["bm_e"], utcnow() - HOUR)  # no due time
    _log(app, world["a_west"], world["bm_w"], utcnow() - 26 * HOUR)

    def same():
        rows = _kept_vs_fresh()
        assert [(i, b, d) for i, b, _fb, d, _fd in rows] == \
            [(i, fb, fd) for i, _b, fb, _d, fd in rows]
        return rows

    assert same()[0][3] == ServiceRequest.get_by_id(late.id).due_at
    with app.test_request_context():
        move_request(later, world["bm_e"], "in_progress")
        move_request(later, world["bm_e"], "resolved", "已答复")
        assert ServiceRequest.get_by_id(later.id).open_due_at is None
        same()
        move_request(later, world["bm_e"], "in_progress")  # reopened: open again
        assert ServiceRequest.get_by_id(later.id).open_due_at is not None
        same()
        save_customer(Customer.get_by_id(world["a_east"].id), world["admin"],
                      branch=world["west"].id, account_manager=None)
    assert {r.branch for r in ServiceRequest.select().where(
        ServiceRequest.customer == world["a_east"].id)} == {world["west"].id}
    same()
    # E's manager no longer sees them; W's manager sees both breached ones now.
    login(client, "bm_e")
    assert "华东甲级客户" not in client.get("/service-requests").get_data(as_text=True)
    other = app.test_client()
    login(other, "bm_w")
    compliance = other.get("/compliance").get_data(as_text=True)
    assert 'data-testid="breached-count">3<' in compliance
    with app.app_context():
        Customer.update(branch=world["east"].id).where(
            Customer.branch == world["west"].id).execute()
        same()
        ServiceRequest.update(status="closed").where(ServiceRequest.id == late.id).execute()
        assert ServiceRequest.get_by_id(late.id).open_due_at is None
        # A write that names the kept columns wrongly is corrected.
        ServiceRequest.update(branch=None, open_due_at=utcnow()).execute()
        same()
        assert build_service_requests(size=30, seed=1) == 30
        rows = same()
    assert len(rows) == 34 and any(r[3] is not None for r in rows[4:])
    assert any(r[3] is None for r in rows[4:])


# --- Working hours ---------------------------------------------------------------------

WEEKDAYS_9_TO_18 = Schedule(days=(0, 1, 2, 3, 4), starts=9 * 60, ends=18 * 60)
SHANGHAI_ZONE = ZoneInfo("Asia/Shanghai")


def _due(local_start, hours, schedule=WEEKDAYS_9_TO_18, zone=SHANGHAI_ZONE):
    """add_working_time() on the zone's clock: local naive in, local naive out."""
    start = local_start.replace(tzinfo=zone).astimezone(datetime.UTC).replace(tzinfo=None)
    due = add_working_time(start, datetime.timedelta(hours=hours), schedule, zone)
    return due.replace(tzinfo=datetime.UTC).astimezone(zone).replace(tzinfo=None)


def at(day, hour, minute=0):
    """A local time in the week of Monday 2026-12-07 (the 4th a Friday, the 5th a
    Saturday)."""
    return datetime.datetime(2026, 12, day, hour, minute)


def test_a_friday_evening_request_counts_from_monday_morning():
    """24 response hours from Friday 20:00 with 9-hour days Monday to Friday are two
    working days and 6 hours: due Wednesday 15:00; its 80 % (19.2 h) falls Wednesday
    10:12."""
    assert _due(at(4, 20), 24) == at(9, 15)
    assert _due(at(4, 20), 24 * 0.8) == at(9, 10, 12)


def test_a_weekend_does_not_count():
    """Received on Saturday, the clock starts Monday 09:00; 12 hours from Friday 16:00
    are 2 on Friday, 9 on Monday and 1 on Tuesday; with Saturday a working day, 9 on
    Saturday and 1 on Monday."""
    assert _due(at(5, 11), 2) == at(7, 11)
    assert _due(at(4, 16), 12) == at(8, 10)
    saturdays_too = WEEKDAYS_9_TO_18._replace(days=(0, 1, 2, 3, 4, 5))
    assert _due(at(4, 16), 12, saturdays_too) == at(7, 10)


def test_the_windows_edges():
    """Received before opening it starts at opening; at closing time it waits for the
    next day; a span that ends exactly at closing ends then, not the next morning; one
    minute past closing carries over."""
    assert _due(at(7, 8, 30), 1) == at(7, 10)
    assert _due(at(7, 18), 1) == at(8, 10)
    assert _due(at(7, 9), 9) == at(7, 18)
    assert _due(at(7, 17, 30), 1) == at(8, 9, 30)
    assert _due(at(7, 0), 9 * 5) == at(11, 18)  # a whole working week
    assert _due(at(7, 0), 9 * 5 + 1) == at(14, 10)


def test_working_hours_are_the_companys_clock():
    """The same UTC moment, 10:00 UTC on Friday, is 18:00 in Shanghai (closed: due
    Monday 10:00 there, 02:00 UTC) and 10:00 in London (open: due 11:00 UTC)."""
    friday_10_utc = datetime.datetime(2026, 12, 4, 10)
    span = datetime.timedelta(hours=1)
    assert add_working_time(friday_10_utc, span, WEEKDAYS_9_TO_18, SHANGHAI_ZONE) == \
        datetime.datetime(2026, 12, 7, 2)
    assert add_working_time(friday_10_utc, span, WEEKDAYS_9_TO_18,
                            ZoneInfo("Europe/London")) == datetime.datetime(2026, 12, 4, 11)


def test_the_admin_sets_working_hours_and_requests_count_in_them(app, client, world):
    """The admin sets Monday to Friday 09:00–18:00 through the form, audited; an A
    request received Friday 20:00 (Shanghai) is then due Wednesday 15:00 with its
    warning Wednesday 10:12; back to calendar hours, the next one is due 24 hours on."""
    login(client, "admin")
    page = client.get("/service-requests/working-hours").get_data(as_text=True)
    assert "当前：</strong>\n  按日历小时计，全天候" in page
    assert re.search(r'<input checked[^>]*value="calendar"', page)
    response = client.post("/service-requests/working-hours", data={
        "counted": "working", "days": ["0", "1", "2", "3", "4"], "starts": "09:00",
        "ends": "18:00"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/service-requests/working-hours"
    row = WorkingHours.get()
    assert (row.days, row.starts, row.ends) == ("0,1,2,3,4", 540, 1080)
    event = AuditEvent.get(AuditEvent.action == "working_hours_set")
    assert '"ends": "18:00"' in event.after and event.actor_name == "admin"
    shown = client.get("/service-requests/working-hours").get_data(as_text=True)
    assert "按工作时间计，星期一、星期二、星期三、星期四、星期五，09:00–18:00" in shown

    friday_evening = datetime.datetime(2026, 12, 4, 12)  # 20:00 in Shanghai
    with app.test_request_context():
        request = log_request(world["a_east"], world["bm_e"], kind="complaint",
                              channel="phone", description="周五晚上来电投诉",
                              received_at=friday_evening,
                              now=datetime.datetime(2026, 12, 4, 13))
    request = ServiceRequest.get_by_id(request.id)
    assert request.due_at == datetime.datetime(2026, 12, 9, 7)  # Wednesday 15:00
    assert request.warn_at == datetime.datetime(2026, 12, 9, 2, 12)  # Wednesday 10:12

    # Changed again: still one setting, and the audit trail holds what it was.
    assert client.post("/service-requests/working-hours", data={
        "counted": "working", "days": ["0", "1", "2", "3", "4", "5"], "starts": "08:30",
        "ends": "17:30"}).status_code == 303
    assert [(r.days, r.starts, r.ends) for r in WorkingHours.select()] == [
        ("0,1,2,3,4,5", 510, 1050)]
    changed = AuditEvent.select().where(AuditEvent.action == "working_hours_set") \
        .order_by(AuditEvent.id.desc()).first()
    assert '"ends": "18:00"' in changed.before and '"ends": "17:30"' in changed.after

    assert client.post("/service-requests/working-hours",
                       data={"counted": "calendar"}).status_code == 303
    assert WorkingHours.select().count() == 0
    assert AuditEvent.select().where(AuditEvent.action == "working_hours_cleared").count() == 1
    with app.test_request_context():
        again = log_request(world["a_east"], world["bm_e"], kind="complaint",
                            channel="phone", description="周五晚上来电投诉",
                            received_at=friday_evening,
                            now=datetime.datetime(2026, 12, 4, 13))
    assert ServiceRequest.get_by_id(again.id).due_at == friday_evening + 24 * HOUR


ENDS_FIRST = "工作日的结束时间必须晚于开始时间。"


@pytest.mark.parametrize(("data", "message"), [
    ({"days": ["0", "1"], "starts": "18:00", "ends": "09:00"}, ENDS_FIRST),
    ({"days": ["0"], "starts": "09:00", "ends": "09:00"}, ENDS_FIRST),
    ({"starts": "09:00", "ends": "18:00"}, "请至少选择一个工作日。"),
    ({"days": ["0"], "starts": "", "ends": "18:00"}, "请填写工作日的开始和结束时间。"),
])
def test_bad_working_hours_are_refused_and_nothing_is_saved(app, client, world, data,
                                                            message):
    """A day that ends before (or when) it starts, no working day, or a missing time is
    refused with a message saying so; no working hours are saved and nothing audited."""
    login(client, "admin")
    response = client.post("/service-requests/working-hours",
                           data={"counted": "working", **data})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert WorkingHours.select().count() == 0
    assert not AuditEvent.select().where(AuditEvent.action.startswith("working_hours")).exists()


def test_only_the_admin_sets_working_hours(app, client, world):
    """A branch manager may not open or post the working hours; nothing is saved."""
    login(client, "bm_e")
    assert client.get("/service-requests/working-hours").status_code == 403
    assert client.post("/service-requests/working-hours", data={
        "counted": "working", "days": ["0"], "starts": "09:00",
        "ends": "18:00"}).status_code == 403
    assert WorkingHours.select().count() == 0
    assert "/service-requests/working-hours" not in client.get(
        "/service-requests").get_data(as_text=True)


def test_a_time_that_does_not_parse_is_refused(app, client, world):
    """A start time such as 25:00 is refused on the form; nothing is saved."""
    login(client, "admin")
    response = client.post("/service-requests/working-hours", data={
        "counted": "working", "days": ["0"], "starts": "25:00", "ends": "18:00"})
    assert response.status_code == 422
    assert WorkingHours.select().count() == 0


def test_a_complaint_and_its_follow_up_call_are_on_the_customers_timeline(app, world):
    """Logging a complaint puts it on the customer's activity timeline; its follow-up
    call is logged as a call there, so it counts as the customer's last contact. An
    enquiry adds nothing to the timeline."""
    from models import Activity, ServiceStatus
    customer = world["a_east"]
    received = utcnow() - 2 * HOUR
    complaint = _log(app, customer, world["bm_e"], received)
    _log(app, customer, world["bm_e"], received, kind="enquiry", description="询问价格")
    with app.test_request_context():
        [logged] = Activity.select().where(Activity.customer == customer.id)
        assert logged.kind == "complaint" and logged.user_id == world["bm_e"].id
        assert logged.notes == f"投诉（服务请求 {complaint.id}）：交货延迟，客户很不满意"
        move_request(complaint, world["bm_e"], "in_progress")
        move_request(complaint, world["bm_e"], "resolved", "协调补货")
        record_follow_up(complaint, world["rep_e"], 4, "客户认可处理结果")
        call = Activity.get(Activity.customer == customer.id, Activity.kind == "call")
        assert call.notes == f"回访（服务请求 {complaint.id}），满意度 4/5：客户认可处理结果"
        assert call.user_id == world["rep_e"].id
        status = ServiceStatus.get_by_id(customer.id)
        assert status.last_contact_on == call.occurred_on
        assert AuditEvent.select().where(AuditEvent.action == "activity_logged").count() == 2
