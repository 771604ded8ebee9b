"""Notices: the outbox written with the change, delivery by a real SMTP server and real
HTTP robots on loopback, retries and failures, claims, the admin's and users' pages."""
import base64
import datetime as dt
import email
import email.policy
import hashlib
import hmac
import ipaddress
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask_babel import force_locale

from forms.notices import CHOSEN_KINDS
from i18n import lazy_gettext as _l
from models import (
    ApprovalStep,
    Assessment,
    AuditEvent,
    Customer,
    DomainError,
    Tier,
    TierChangeRequest,
    User,
    db,
    write_transaction,
)
from models.approvals import decide, deciders, file_cycle_requests, file_request
from models.cycles import finalise
from models.notices import (
    INTERRUPTED,
    Notice,
    Robot,
    claim,
    notify,
    save_preferences,
    save_robot,
    sweep_interrupted,
)
from services import notify as channels
from services.demo import build_demo
from services.jobs import send_due_notices
from tests.conftest import csrf_token_from, login, run_in_huey_worker
from tests.test_approvals import make_world
from tests.test_cycles import _criteria, _in_committee, make_setup, save_score

PUBLIC_URL = "https://tierdesk.example.com"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """What the SMTP server on loopback received."""

    def __init__(self):
        self.messages, self.raw = [], []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 — aiosmtpd's name
        self.raw.append(envelope.content)
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        return "250 Message accepted"


@pytest.fixture
def smtp(app):
    """A real SMTP server (aiosmtpd) on loopback, and the app pointed at it."""
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_SECURITY="none",
                      MAIL_FROM="Tierdesk <tierdesk@example.com>")
    yield box
    controller.stop()


class Receiver(BaseHTTPRequestHandler):
    """A platform's robot endpoint: records each request, answers as `mode` says."""
    server_version = "robot"

    def do_POST(self):  # noqa: N802 — http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        mode = self.server.mode
        self.server.received.append({"path": self.path, "body": json.loads(body),
                                     "headers": dict(self.headers)})
        if mode in ("slow", "hang"):
            time.sleep(1.5 if mode == "slow" else 8)
        if mode == "500":
            self.send_response(500)
            self.end_headers()
            return
        if mode == "redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.end_headers()
            return
        answer = ({"code": 0, "msg": "success", "data": {}} if "feishu" in self.path
                  else {"errcode": 0, "errmsg": "ok"})
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def robot_server(app):
    """A real HTTP server on loopback standing in for the platforms' robots."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received, server.mode = [], "ok"
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    app.config["WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def world(app, make):
    return notices_world(app, make)


def notices_world(app, make):
    """The approvals' world (tests/test_approvals.py) with addresses: the east branch
    manager reads Chinese, has an e-mail address and a mobile number."""
    # A mail server is configured (nothing listens there unless a test starts `smtp`):
    # without one, no e-mail notice is written at all.
    app.config.update(PUBLIC_URL=PUBLIC_URL, NOTICE_RETRY_SECONDS=0, NOTICE_MAX_TRIES=3,
                      NOTICE_TIMEOUT_SECONDS=0.5)
    if not app.config["SMTP_HOST"]:  # (the `smtp` fixture may have set its own already)
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=free_port(), SMTP_SECURITY="none")
    found = make_world(app, make)
    for key in ("bm", "rep", "director", "gm", "bm_w"):
        User.update(email=f"{found[key].username}@example.com",
                    mobile=f"1380000{found[key].id:04d}").where(
            User.id == found[key].id).execute()
    User.update(language="zh_CN").where(User.id == found["bm"].id).execute()
    return {k: (User.get_by_id(v.id) if isinstance(v, User) else v) for k, v in found.items()}


def _file(app, world, to="C", customer="B"):
    with app.test_request_context():
        return file_request(world["customers"][customer], world["rep"], world["tiers"][to],
                            "订单连续下滑")


def _deliver_all(app):
    with app.test_request_context():
        return send_due_notices()


def test_filing_writes_a_notice_per_decider_and_chosen_channel(app, world, robot_server):
    """A filed request tells the one branch manager who may decide its step, by e-mail
    and by the branch's robot, about that request, with the absolute link; nobody else;
    a person who turned the kind off gets nothing."""
    with app.test_request_context():
        save_robot(world["east"], world["admin"], "wecom", f"{robot_server.base}/wecom?key=k1")
        save_preferences(world["bm_w"], {"approval_waiting": "off"})
    request = _file(app, world)
    rows = list(Notice.select().order_by(Notice.channel))
    assert [(n.recipient_id, n.channel, n.state) for n in rows] == [
        (world["bm"].id, "email", "pending"), (world["bm"].id, "robot", "pending")]
    assert {(n.about_type, n.about_id, n.link, n.kind) for n in rows} == {
        ("tier_change_request", str(request.id), f"{PUBLIC_URL}/tier-changes/{request.id}",
         "approval_waiting")}
    assert rows[0].subject.startswith("待审批")  # the recipient's language: Chinese


def test_a_notice_in_the_current_language_is_rendered_without_forcing_it(app, world,
                                                                          monkeypatch):
    """A recipient whose stored "zh_CN" is the current locale (zh_Hans_CN) gets the text
    as it is, without forcing the locale again (a catalog reload per notice); a
    recipient reading English gets it in English."""
    import models.notices
    forced = []
    real = models.notices.force_locale

    def counting(locale):
        forced.append(str(locale))
        return real(locale)
    monkeypatch.setattr(models.notices, "force_locale", counting)
    User.update(language="en").where(User.id == world["rep"].id).execute()
    with app.test_request_context(), write_transaction():
        notify("test", world["bm"], _l("Test message"), "正文", "/")
        assert forced == []
        notify("test", User.get_by_id(world["rep"].id), _l("Test message"), "body", "/")
        assert forced == ["en"]
    subjects = {n.recipient_id: n.subject for n in Notice.select()}
    assert subjects[world["bm"].id] == "测试消息"
    assert subjects[world["rep"].id] == "Test message"


def test_one_change_reaches_each_branch_by_its_own_robot_or_the_companys(app, world,
                                                                          robot_server):
    """Notices of one change (one cache) go to the robot of each recipient's branch, and
    to the company-wide robot for a branch that has none or whose robot is off."""
    with app.test_request_context():
        east = save_robot(world["east"], world["admin"], "wecom", f"{robot_server.base}/e?key=1")
        company = save_robot(None, world["admin"], "wecom", f"{robot_server.base}/c?key=2")
        cache = {}
        with write_transaction():
            for person in (world["bm"], world["bm_w"]):
                notify("test", person, "主题", "正文", "/", cache=cache)
        save_robot(world["east"], world["admin"], "wecom", active=False)
        with write_transaction():
            notify("test", world["bm"], "主题", "正文", "/", cache={})
    robots = [(n.recipient_id, n.robot_id) for n in
              Notice.select().where(Notice.channel == "robot").order_by(Notice.id)]
    assert robots == [(world["bm"].id, east.id), (world["bm_w"].id, company.id),
                      (world["bm"].id, company.id)]


def test_one_delivery_run_sends_every_due_notice_however_many(app, world, robot_server):
    """A cycle's publication writes hundreds of notices: the worker's run delivers all
    that are due when it starts, batch after batch, each once; not just the first
    batch, leaving the rest a minute each."""
    with app.test_request_context():
        save_robot(None, world["admin"], "wecom", f"{robot_server.base}/wecom?key=k")
        save_preferences(world["bm"], {"approval_waiting": "robot"})
        with write_transaction():
            for n in range(120):
                notify("approval_waiting", world["bm"], f"待审批 {n}", "正文", "/approvals")
        assert send_due_notices(batch=50) == {"sent": 120}
        assert send_due_notices(batch=50) == {}
    assert sorted(r["body"]["markdown"]["content"].split("\n")[0] for r in robot_server.received) \
        == sorted(f"**待审批 {n}**" for n in range(120))


def test_a_rolled_back_change_leaves_no_notice(app, world):
    """notify() writes inside the caller's transaction: when that rolls back, so do the
    notices; a refused decision writes none either."""
    with app.test_request_context(), pytest.raises(RuntimeError):
        with write_transaction():
            notify("test", world["bm"], "主题", "正文", "/")
            assert Notice.select().count() == 1
            raise RuntimeError("the change failed")
    assert Notice.select().count() == 0
    with app.test_request_context(), pytest.raises(RuntimeError, match="inside the transaction"):
        notify("test", world["bm"], "主题", "正文", "/")  # no transaction: refused
    assert Notice.select().count() == 0
    request = _file(app, world)
    before = Notice.select().count()
    with app.test_request_context(), pytest.raises(DomainError):
        decide(request.pending_step(), world["bm"], "reject", "")  # no reason: refused
    assert Notice.select().count() == before


def test_email_arrives_with_chinese_subject_text_html_and_link(app, world, smtp):
    """The waiting approval reaches the branch manager's mailbox on a real SMTP server:
    the Chinese subject decodes, plain text and HTML both carry the absolute link."""
    request = _file(app, world)
    assert _deliver_all(app) == {"sent": 1}
    (message,) = smtp.messages
    assert "待审批" in message["Subject"] and world["customers"]["B"].name in message["Subject"]
    assert re.search(rb"(?m)^Subject: =\?utf-8\?b\?[A-Za-z0-9+/=]+\?=\r$", smtp.raw[0])  # RFC 2047
    assert message["To"].addresses[0].addr_spec == "bm_e@example.com"
    link = f"{PUBLIC_URL}/tier-changes/{request.id}"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert link in text and f'href="{link}"' in html
    assert "订单连续下滑" in text
    notice = Notice.get()
    assert notice.state == "sent" and notice.sent_at is not None and notice.tries == 1
    assert message["Message-ID"] == f"<notice-{notice.id}-{notice.delivery_key}@example.com>"


def _expected_text(notice):
    return f"**{notice.subject}**\n\n" + "\n".join(
        p for p in notice.body.split("\n") if p) + f"\n\n[{notice.link}]({notice.link})"


@pytest.mark.parametrize("platform", ["wecom", "dingtalk", "feishu"])
def test_robot_message_has_the_platforms_json_and_signature(app, world, robot_server,
                                                            platform):
    """Each platform's robot gets its markdown message as documented; 钉钉 and 飞书 carry
    the signature of timestamp and secret computed as their documentation says, and
    钉钉 @-mentions the person by mobile number."""
    secret = "SECtest-secret-123"
    with app.test_request_context():
        save_robot(None, world["admin"], platform,
                   f"{robot_server.base}/{platform}?access_token=tok", secret)
        save_preferences(world["bm"], {"approval_waiting": "robot"})
    _file(app, world)
    assert _deliver_all(app) == {"sent": 1}
    (got,) = robot_server.received
    notice = Notice.get()
    body, query = got["body"], parse_qs(urlsplit(got["path"]).query)
    text = _expected_text(notice)
    assert got["headers"]["Content-Type"] == "application/json; charset=utf-8"
    if platform == "wecom":
        assert body == {"msgtype": "markdown", "markdown": {"content": text}}
    elif platform == "dingtalk":
        mobile = world["bm"].mobile
        assert body == {"msgtype": "markdown",
                        "markdown": {"title": notice.subject, "text": f"{text}\n\n@{mobile}"},
                        "at": {"atMobiles": [mobile], "isAtAll": False}}
        stamp = query["timestamp"][0]
        assert abs(int(stamp) - time.time() * 1000) < 60_000  # milliseconds
        # https://open.dingtalk.com/document/robots/customize-robot-security-settings
        expected = base64.b64encode(hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(),
                                             hashlib.sha256).digest()).decode()
        assert query["sign"] == [expected] and query["access_token"] == ["tok"]
    else:
        stamp = body.pop("timestamp")
        assert abs(int(stamp) - time.time()) < 60  # seconds
        # https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot
        expected = base64.b64encode(hmac.new(f"{stamp}\n{secret}".encode(), b"",
                                             hashlib.sha256).digest()).decode()
        assert body.pop("sign") == expected
        assert body == {"msg_type": "interactive", "card": {
            "header": {"title": {"tag": "plain_text", "content": notice.subject}},
            "elements": [{"tag": "markdown", "content": text.split("\n", 2)[2]}]}}
    assert Notice.get().state == "sent"


@pytest.mark.parametrize("fault", ["down", "500", "slow", "redirect"])
def test_a_failing_robot_is_retried_then_failed_and_the_approval_stands(
        app, world, robot_server, fault):
    """A robot that is down, answers 500, is too slow or redirects: the decision that
    caused the notice is committed, the notice is tried again with growing waits and
    after NOTICE_MAX_TRIES it is failed with the reason; nothing was sent twice."""
    url = (f"http://127.0.0.1:{free_port()}/wecom" if fault == "down"
           else f"{robot_server.base}/wecom")
    robot_server.mode = fault
    with app.test_request_context():
        save_robot(None, world["admin"], "wecom", url)
        save_preferences(world["rep"], {"request_decided": "robot"})
    request = _file(app, world)
    Notice.delete().execute()  # only the outcome's notice matters here
    with app.test_request_context():
        decide(request.pending_step(), world["bm"], "approve", "同意")
    assert TierChangeRequest.get_by_id(request.id).status == "approved"
    app.config["NOTICE_RETRY_SECONDS"] = 3600
    assert _deliver_all(app) == {"pending": 1}
    notice = Notice.get()
    assert notice.tries == 1 and notice.last_error
    assert notice.next_attempt_at > notice.created_at
    assert _deliver_all(app) == {}  # not due before its back-off
    app.config["NOTICE_RETRY_SECONDS"] = 0
    Notice.update(next_attempt_at=Notice.created_at).execute()  # the hour has passed
    assert _deliver_all(app) == {"pending": 1}
    assert _deliver_all(app) == {"failed": 1}
    notice = Notice.get()
    assert (notice.state, notice.tries) == ("failed", 3)
    reason = {"down": "unreachable", "500": "HTTP 500", "slow": "timed out",
              "redirect": "HTTP 302"}[fault]
    assert reason in notice.last_error
    assert _deliver_all(app) == {}
    assert TierChangeRequest.get_by_id(request.id).status == "approved"
    if fault != "down":
        assert len(robot_server.received) == 3


def test_smtp_down_is_retried_with_growing_waits(app, world):
    """No SMTP server listening: the try fails with the reason, the next waits longer
    (base, 4×, …) and the third fails for good."""
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=free_port(), SMTP_SECURITY="none",
                      NOTICE_RETRY_SECONDS=10)
    _file(app, world)
    waits = []
    for expected in ("pending", "pending", "failed"):
        Notice.update(next_attempt_at=Notice.created_at).execute()
        with app.test_request_context():
            assert send_due_notices() == {expected: 1}
        notice = Notice.get()
        waits.append((notice.next_attempt_at - notice.claimed_at).total_seconds())
    assert 9 < waits[0] < 11 and 39 < waits[1] < 41
    assert "ConnectionRefusedError" in Notice.get().last_error


def test_a_worker_killed_between_sending_and_marking_loses_nothing_and_sends_once(
        app, world, smtp):
    """The worker claimed and sent, then died before marking: after the lease the notice
    is failed with a reason saying delivery is unknown (shown to the admin to resend),
    and no worker sends it again by itself: one copy arrived."""
    _file(app, world)
    notice = Notice.get()
    with app.test_request_context():
        assert claim(notice.id)
        channels.send_notice(Notice.get_by_id(notice.id))  # … and the worker dies here
        assert send_due_notices() == {}  # still within its lease: nobody touches it
        app.config["NOTICE_LEASE_SECONDS"] = 0
        assert sweep_interrupted() == 1
        assert send_due_notices() == {}
    notice = Notice.get_by_id(notice.id)
    assert (notice.state, notice.last_error) == ("failed", INTERRUPTED)
    assert len(smtp.messages) == 1


def test_two_workers_racing_for_one_notice_send_it_once(app, world, smtp):
    """Two workers deliver the same notice at the same moment: one claims and sends,
    the other finds it taken; one message arrives."""
    _file(app, world)
    notice_id = Notice.get().id
    db.close()
    start, results = threading.Barrier(2), []

    def worker():
        with app.test_request_context():
            start.wait()
            results.append(channels.deliver(notice_id))
            db.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results, key=str) == [None, "sent"]
    assert len(smtp.messages) == 1
    assert Notice.get_by_id(notice_id).state == "sent"


def test_a_webhook_to_another_host_or_plain_http_is_refused_on_save(app, world):
    """Only https to the platform's own hosts unless WEBHOOK_ALLOWED_HOSTS lists the
    host; the refusal says why and nothing is stored; the address is stored encrypted."""
    with app.test_request_context(), force_locale("en"):
        for platform, url, why in (
                ("wecom", "https://evil.example/cgi-bin/webhook/send?key=1", "only to"),
                ("wecom", "http://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=1", "https"),
                ("dingtalk", "https://qyapi.weixin.qq.com/x", "only to"),
                ("feishu", "ftp://open.feishu.cn/x", "not a web address")):
            with pytest.raises(DomainError, match=why):
                save_robot(None, world["admin"], platform, url)
        assert Robot.select().count() == 0
        url = "https://oapi.dingtalk.com/robot/send?access_token=abcdef123456"
        robot = save_robot(world["east"], world["admin"], "dingtalk", url, "SECxyz")
    stored = Robot.get_by_id(robot.id)
    assert url not in stored.url_encrypted and "SECxyz" not in stored.secret_encrypted
    assert stored.url_hint == "oapi.dingtalk.com …3456"
    with app.app_context():
        assert (stored.url, stored.secret) == (url, "SECxyz")
    after = AuditEvent.get(AuditEvent.action == "robot_saved").after
    assert "abcdef" not in after and "SECxyz" not in after


def test_notify_test_sends_through_each_channel_at_once(app, world, smtp, robot_server,
                                                        runner):
    """`flask notify-test USERNAME` sends to the user's e-mail and robot now, outside
    the queue, and prints what each answered; an unknown user is an error."""
    with app.test_request_context():
        save_robot(None, world["admin"], "wecom", f"{robot_server.base}/wecom?key=k")
    result = runner.invoke(args=["notify-test", "bm_e"])
    assert result.exit_code == 0, result.output
    assert "email: ok" in result.output and "250" in result.output
    assert "robot: ok" in result.output and '"errcode": 0' in result.output
    assert len(smtp.messages) == 1 and len(robot_server.received) == 1
    assert Notice.select().count() == 0
    result = runner.invoke(args=["notify-test", "nobody"])
    assert result.exit_code != 0 and "no user" in result.output


def test_admin_sees_failed_notices_and_resends_one(app, client, world):
    """The failed notices page shows each with its last error; resending is a POST
    with the CSRF token, audited, and puts the notice back in the queue."""
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=free_port(), SMTP_SECURITY="none",
                      NOTICE_MAX_TRIES=1)
    _file(app, world)
    assert _deliver_all(app) == {"failed": 1}
    login(client, "admin")
    app.config["WTF_CSRF_ENABLED"] = True
    page = client.get("/admin/notices")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "ConnectionRefusedError" in html
    # The admin and the west rep have no address and there is no robot: nothing reaches them.
    # (In the page's body: the list once sat in the <title>, where nobody saw it.)
    unreachable = html.split("<main")[1].split('data-testid="unreachable"')[1].split("</ul>")[0]
    assert "rep_w" in unreachable and "bm_e" not in unreachable
    assert 'data-testid="no-mail-server"' not in html
    app.config["SMTP_HOST"] = None  # no mail server: an address alone reaches nobody
    html = client.get("/admin/notices").get_data(as_text=True)
    assert 'data-testid="no-mail-server"' in html
    assert "bm_e" in html.split('data-testid="unreachable"')[1].split("</ul>")[0]
    app.config["SMTP_HOST"] = "127.0.0.1"
    notice = Notice.get()
    assert client.post(f"/admin/notices/{notice.id}/resend").status_code == 400  # no token
    response = client.post(f"/admin/notices/{notice.id}/resend",
                           data={"csrf_token": csrf_token_from(html)})
    assert response.status_code == 303
    assert Notice.get_by_id(notice.id).state == "pending"
    assert AuditEvent.select().where(AuditEvent.action == "notice_resent",
                                     AuditEvent.object_id == str(notice.id)).exists()
    app.config["WTF_CSRF_ENABLED"] = False
    manager = app.test_client()
    login(manager, "bm_e")
    assert manager.get("/admin/notices").status_code == 403


def test_request_page_and_my_page_show_who_was_notified(app, client, world, robot_server):
    """The request's page lists who was notified by which channel and when; a user's
    own notices page lists their latest notices."""
    with app.test_request_context():
        save_robot(None, world["admin"], "wecom", f"{robot_server.base}/wecom?key=k")
    request = _file(app, world)
    _deliver_all(app)
    login(client, "rep_e")
    html = client.get(f"/tier-changes/{request.id}").get_data(as_text=True)
    assert 'data-testid="notices"' in html and world["bm"].display_name in html
    assert "E-mail" in html and "Group robot" in html
    manager = app.test_client()
    login(manager, "bm_e")
    html = manager.get("/notices").get_data(as_text=True)
    assert world["customers"]["B"].name in html and "已发送" in html


def test_admin_sets_a_robot_through_the_page_and_tests_it(app, client, world, robot_server):
    """The robot form refuses a host that is not allowed with the reason, stores a good
    one, shows only its host and last characters (never the address or secret in
    full), and its test button sends a message and says what the robot answered."""
    login(client, "admin")
    east = world["east"].id
    response = client.post(f"/admin/robots/{east}", data={
        "platform": "dingtalk", "url": "https://evil.example/robot/send?access_token=x",
        "secret": "SECabc", "active": "y"})
    refused = response.get_data(as_text=True)
    assert response.status_code == 200 and "oapi.dingtalk.com" in refused
    assert "access_token=x" not in refused  # not even the address just typed
    assert Robot.select().count() == 0
    url = f"{robot_server.base}/dingtalk?access_token=tok-secret-9876"
    response = client.post(f"/admin/robots/{east}", data={
        "platform": "dingtalk", "url": url, "secret": "SECabcdefgh", "active": "y"})
    assert response.status_code == 303
    for page in (f"/admin/robots/{east}", "/admin/robots"):
        html = client.get(page).get_data(as_text=True)
        assert "tok-secret" not in html and "SECabcdefgh" not in html
    assert "127.0.0.1 …9876" in html
    response = client.post(f"/admin/robots/{east}/test", follow_redirects=True)
    assert "The robot answered" in response.get_data(as_text=True)
    (got,) = robot_server.received
    assert got["body"]["msgtype"] == "markdown" and "sign=" in got["path"]
    assert AuditEvent.select().where(AuditEvent.action == "robot_tested").exists()


def test_admin_gives_a_user_an_email_and_mobile(app, client, world):
    """The user form takes an e-mail address and a mobile number; a malformed address
    is refused and nothing is saved."""
    login(client, "admin")
    rep = world["rep"]
    data = {"username": rep.username, "display_name": rep.display_name,
            "roles": ["sales_rep"], "branch": rep.branch_id, "language": "en",
            "sales_cycle_days": 28, "active": "y"}
    response = client.post(f"/admin/users/{rep.id}", data={**data, "email": "not-an-address",
                                                           "mobile": "13900001111"})
    assert response.status_code == 200
    assert User.get_by_id(rep.id).email == "rep_e@example.com"
    response = client.post(f"/admin/users/{rep.id}", data={**data, "email": "wang@example.cn",
                                                           "mobile": "139 0000 1111"})
    assert response.status_code == 303
    saved = User.get_by_id(rep.id)
    assert (saved.email, saved.mobile) == ("wang@example.cn", "13900001111")


def test_demo_users_have_example_com_addresses(app):
    """Every demo user has an e-mail address at example.com, so notices can be tried."""
    with app.test_request_context():
        build_demo(seed=3, customers=5, branches=1, reps_per_branch=1, funnel=False)
    addresses = [u.email for u in User.select()]
    assert addresses and all(a.endswith("@example.com") for a in addresses)
    assert User.get(User.username == "admin").email == "admin@example.com"


def test_the_huey_worker_delivers_a_queued_notice(app, world, smtp, tmp_path):
    """A real huey consumer (worker.py) runs deliver_notice in its own process with its
    own app, from the same environment: the mail arrives and the notice is sent."""
    _file(app, world)
    notice_id = Notice.get().id
    db.close()
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(app.config["SMTP_PORT"]),
           "SMTP_SECURITY": "none", "MAIL_FROM": "tierdesk@example.com",
           "PUBLIC_URL": PUBLIC_URL}
    run_in_huey_worker(
        app, tmp_path, f"from services.jobs import deliver_notice; deliver_notice({notice_id})",
        queued=lambda: Notice.get_by_id(notice_id).state == "pending",
        finished=lambda: Notice.get_by_id(notice_id).state == "sent", **env)
    assert Notice.get_by_id(notice_id).state == "sent"
    assert len(smtp.messages) == 1


def test_publishing_a_cycle_tells_each_branch_manager_of_each_request(app, make):
    """A cycle's requests (filed together, with the deciders and robots looked up once)
    each tell the manager of their own branch, and only them."""
    setup = make_setup(app, make)
    cycle = _in_committee(app, setup)
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=free_port())
    User.update(email=User.username.concat("@example.com")).where(
        User.username.in_(["bm_e", "bm_w"])).execute()
    tiers = {t.code: t for t in Tier.select()}
    sheets = list(Assessment.select().where(Assessment.cycle == cycle))
    Customer.update(tier=tiers["C"].id).execute()
    with app.test_request_context():
        for sheet in sheets:
            for criterion in _criteria(setup["template"]):
                save_score(sheet, setup["members"][0], "committee", criterion.id, None,
                           criterion.max_points * 6 // 10 + 1, "", 0)
            finalise(sheet, setup["chair"], tiers["B"])
        filed, _skipped = file_cycle_requests(cycle, setup["chair"])
    assert len(filed) == len(sheets) >= 2
    managers = {setup["east"].id: setup["bm_east"].id, setup["west"].id: setup["bm_west"].id}
    got = sorted((int(n.about_id), n.recipient_id) for n in Notice.select())
    assert got == sorted((r.id, managers[r.branch_id]) for r in filed)
    assert {r.branch_id for r in filed} == set(managers)


def test_a_person_chooses_the_channel_per_kind_on_their_page(app, client, world,
                                                             robot_server):
    """My notices page saves my channel per kind (audited); off writes no notice, e-mail
    only writes the e-mail one."""
    with app.test_request_context():
        save_robot(None, world["admin"], "wecom", f"{robot_server.base}/wecom?key=k")
    login(client, "bm_e")
    every_kind = dict.fromkeys(CHOSEN_KINDS, "email")  # the page has a field per kind
    response = client.post("/notices", data={**every_kind, "approval_waiting": "off",
                                              "request_decided": "both"})
    assert response.status_code == 303
    page = client.get("/notices").get_data(as_text=True)
    chosen = re.search(r'name="approval_waiting".*?</select>', page, re.S).group(0)
    assert re.search(r'<option selected value="off">|<option value="off" selected>', chosen)
    _file(app, world, customer="B")
    assert Notice.select().count() == 0
    client.post("/notices", data={**every_kind, "request_decided": "both"})
    _file(app, world, customer="C", to="B")
    assert [n.channel for n in Notice.select()] == ["email"]
    assert AuditEvent.select().where(AuditEvent.action == "notice_preferences").count() == 2


def test_a_worker_killed_mid_send_leaves_the_notice_for_a_person_not_a_second_copy(
        app, world, robot_server, tmp_path):
    """A real huey consumer is killed (SIGKILL) while the robot holds its request open:
    the notice stays claimed, the sweep then marks it failed as interrupted, and no
    worker posts it a second time."""
    with app.test_request_context():
        save_robot(None, world["admin"], "wecom", f"{robot_server.base}/wecom?key=k")
        save_preferences(world["bm"], {"approval_waiting": "robot"})
    _file(app, world)
    notice_id = Notice.get().id
    db.close()
    robot_server.mode = "hang"
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, HUEY_DB=str(tmp_path / "huey.db"), SECRET_KEY="test-secret",
               DATABASE_URL=app.config["DATABASE_URL"], WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
               PUBLIC_URL=PUBLIC_URL)
    subprocess.run([sys.executable, "-c", "from services.jobs import deliver_notice; "
                    f"deliver_notice({notice_id})"], cwd=root, env=env, check=True)
    consumer = subprocess.Popen([str(Path(sys.executable).parent / "huey_consumer"),
                                 "worker.huey", "--workers", "1"], cwd=root, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not robot_server.received and time.time() < deadline:
            time.sleep(0.1)
    finally:
        consumer.kill()  # mid-send: the robot has the message, the worker never hears back
        consumer.wait(10)
    assert len(robot_server.received) == 1
    assert Notice.get_by_id(notice_id).state == "sending"
    robot_server.mode = "ok"
    app.config["NOTICE_LEASE_SECONDS"] = 0
    with app.test_request_context():
        assert send_due_notices() == {}
    notice = Notice.get_by_id(notice_id)
    assert (notice.state, notice.last_error, notice.tries) == ("failed", INTERRUPTED, 1)
    assert len(robot_server.received) == 1


def test_admin_sends_a_test_email_to_themselves(app, client, world, smtp):
    """The failed-notices page's button sends a test e-mail to the admin's own address
    and says what the server answered; audited."""
    User.update(email="admin@example.com").where(User.username == "admin").execute()
    login(client, "admin")
    html = client.post("/admin/notices/smtp-test", follow_redirects=True).get_data(
        as_text=True)
    assert "The mail server answered" in html and "250" in html
    (message,) = smtp.messages
    assert message["To"].addresses[0].addr_spec == "admin@example.com"
    assert AuditEvent.select().where(AuditEvent.action == "smtp_tested").exists()


def _self_signed(tmp_path):
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # see below
@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_email_over_starttls_or_tls_with_a_login(app, world, tmp_path, monkeypatch, security):
    """SMTP_SECURITY starttls and tls: the certificate is checked (here one the test
    trusts), the login is given, and the message arrives."""
    cert_file, key_file = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # the one CA the client trusts
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret")

    box, port = Mailbox(), free_port()
    # aiosmtpd does not count an implicit-TLS connection as TLS when it offers AUTH.
    options = ({"tls_context": server_tls, "require_starttls": True}
               if security == "starttls" else {"ssl_context": server_tls,
                                                "auth_require_tls": False})
    controller = Controller(box, hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_required=True, **options)
    controller.start()
    try:
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_SECURITY=security,
                          SMTP_USERNAME="tierdesk", SMTP_PASSWORD="s3cret",
                          MAIL_FROM="tierdesk@example.com")
        _file(app, world)
        assert _deliver_all(app) == {"sent": 1}, Notice.get().last_error
    finally:
        controller.stop()
    assert logins == [(b"tierdesk", b"s3cret")] and len(box.messages) == 1


def test_without_a_mail_server_no_e_mail_notice_is_written(app, world, robot_server):
    """With no SMTP_HOST (a fresh install, the demo) a step waiting for the branch
    manager writes the robot's notice only: no e-mail that could only fail."""
    app.config["SMTP_HOST"] = None
    with app.test_request_context():
        save_robot(None, world["admin"], "wecom", f"{robot_server.base}/wecom?key=k1")
    _file(app, world)
    assert {n.channel for n in Notice.select()} == {"robot"}


def test_the_account_manager_hears_when_a_customers_tier_changes(app, world):
    """Once the last step approves, the customer's account manager hears its new tier
    (in their language, with a link to the customer), unless they filed the request
    themselves: then the outcome alone reaches them, once."""
    from models import Customer
    customer, other = world["customers"]["B"], world["other_rep"]
    User.update(email="rep_e2@example.com").where(User.id == other.id).execute()
    Customer.update(account_manager=other.id).where(Customer.id == customer.id).execute()
    request = _file(app, world)  # the rep files B → C for a customer other_rep manages
    with app.test_request_context():
        decide(request.pending_step(), world["bm"], "approve", "同意")
    outcome = Notice.select().where(Notice.kind.in_(("tier_changed", "request_decided")))
    assert {(n.recipient_id, n.kind) for n in outcome} == {
        (other.id, "tier_changed"), (world["rep"].id, "request_decided")}
    notice = Notice.get(Notice.kind == "tier_changed")
    assert notice.subject.startswith(f"{customer.name} is now ")  # other_rep reads English
    assert "a customer you manage" in notice.body and "同意" not in notice.subject
    assert notice.link == f"{PUBLIC_URL}/customers/{customer.id}"
    own = _file(app, world, to="D", customer="C")  # the rep manages C: no second notice
    Notice.delete().execute()
    with app.test_request_context():
        decide(own.pending_step(), world["bm"], "approve", "同意")
    assert [(n.recipient_id, n.kind) for n in Notice.select()] == [
        (world["rep"].id, "request_decided")]


def test_a_requester_reminds_the_approvers_once_a_day(app, world, client, monkeypatch):
    """催办: the requester's button tells whoever may decide the waiting step again (in
    their language), once a day; a second try the same day is refused with why, nothing
    sent; only the requester may, and only while the request is open. The request's
    history (the audit trail) records each reminder."""
    from models import AuditEvent, approvals
    request = _file(app, world)  # the rep files; the east branch manager decides
    Notice.delete().execute()
    login(client, "rep_e")
    page = client.get(f"/tier-changes/{request.id}").get_data(as_text=True)
    assert 'data-testid="remind"' in page and "Once a day." in page
    answer = client.post(f"/tier-changes/{request.id}/remind", follow_redirects=True)
    assert "1 approver was reminded." in answer.get_data(as_text=True)
    assert {(n.recipient_id, n.kind) for n in Notice.select()} == {
        (world["bm"].id, "approval_waiting")}
    assert Notice.get().subject.startswith("催办：华东B级客户")  # bm reads Chinese
    answer = client.post(f"/tier-changes/{request.id}/remind", follow_redirects=True)
    assert "less than a day ago" in answer.get_data(as_text=True)
    assert Notice.select().count() == 1
    assert AuditEvent.select().where(AuditEvent.action == "tier_change_reminded").count() == 1
    monkeypatch.setattr(approvals, "REMIND_EVERY", dt.timedelta(0))  # a day on
    client.post(f"/tier-changes/{request.id}/remind")
    assert Notice.select().count() == 2
    client.post("/logout")
    login(client, "bm_e")
    client.post(f"/tier-changes/{request.id}/remind")
    assert Notice.select().count() == 2  # not the requester: refused
    with app.test_request_context():
        decide(request.pending_step(), world["bm"], "approve", "同意")
    Notice.delete().execute()
    client.post("/logout")
    login(client, "rep_e")
    client.post(f"/tier-changes/{request.id}/remind")
    assert Notice.select().count() == 0  # decided: nobody left to remind


def test_a_promotion_to_a_reaches_each_approver_where_they_work(app, client, world, smtp,
                                                                 robot_server, make):
    """The whole way, as the issue tells it: a rep files a promotion to A; the branch
    manager gets an e-mail and the branch robot's message with the link, and
    approves; the sales director is away and their stand-in approves in their stead; the
    general manager's step waits past the rule's limit, is reminded, then approved; the
    rep is told the outcome. Real SMTP and robot receivers, delivered by the worker's
    run."""
    from models.approvals import chase_waiting, save_rule
    a_tier, customer = world["tiers"]["A"], world["customers"]["B"]
    deputy = make.user("deputy", roles=("committee_member",), display_name="副总监",
                       email="deputy@example.com", language="zh_CN")
    with app.test_request_context():
        save_rule(f"tier-{a_tier.id}", world["admin"],
                  ["branch_manager", "sales_director", "general_manager"], remind_days=2)
        save_robot(world["east"], world["admin"], "wecom", f"{robot_server.base}/wecom?key=e")

    def mail_to(user):
        return [m for m in smtp.messages if m["To"].addresses[0].addr_spec == user.email]

    def decide_as(username, request):
        client.post("/logout")
        login(client, username)
        step = TierChangeRequest.get_by_id(request.id).pending_step()
        answer = client.post(f"/tier-changes/{request.id}/decide", data={
            "step": step.id, "decision": "approve", "comment": "同意"})
        assert answer.status_code == 303

    login(client, "rep_e")
    client.post(f"/customers/{customer.id}/tier-change",
                data={"to_tier": a_tier.id, "reason": "年采购额翻番，回款及时",
                      "effective_on": dt.date.today().isoformat(), "source": "mid_year"})
    request = TierChangeRequest.get(TierChangeRequest.customer == customer.id)
    link = f"{PUBLIC_URL}/tier-changes/{request.id}"
    _deliver_all(app)
    (to_bm,) = mail_to(world["bm"])
    assert to_bm["Subject"].startswith("待审批：华东B级客户") and link in to_bm.get_body(
        ("plain",)).get_content()
    (robot,) = robot_server.received
    assert link in robot["body"]["markdown"]["content"]
    assert robot["path"] == "/wecom?key=e"  # the east branch's robot

    decide_as("bm_e", request)
    client.post("/logout")
    login(client, "director")
    client.post("/notices/away", data={"delegate": deputy.id,
                                       "starts_on": dt.date.today().isoformat(),
                                       "ends_on": (dt.date.today() + dt.timedelta(3)).isoformat()})
    _deliver_all(app)
    smtp.messages.clear()
    # While the director is away their step waits for the stand-in (their queue, and
    # any reminder).
    with app.test_request_context():
        assert [p.id for p in deciders(TierChangeRequest.get_by_id(request.id).pending_step(),
                                       request)] == [deputy.id]
    decide_as("deputy", request)
    step = ApprovalStep.get(ApprovalStep.request == request.id, ApprovalStep.position == 2)
    assert (step.decided_by_id, step.on_behalf_of_id) == (deputy.id, world["director"].id)
    _deliver_all(app)
    (to_gm,) = mail_to(world["gm"])
    assert "waits for your decision as General manager" in to_gm.get_body(
        ("plain",)).get_content()

    waiting_since = TierChangeRequest.get_by_id(request.id).pending_step().waiting_since
    with app.test_request_context():
        assert chase_waiting(waiting_since + dt.timedelta(days=2, minutes=1)) == (
            [request.id], [])
    _deliver_all(app)
    reminders = [m for m in mail_to(world["gm"]) if m["Subject"].startswith("Reminder")]
    assert len(reminders) == 1 and link in reminders[0].get_body(("plain",)).get_content()

    decide_as("gm", request)
    assert Customer.get_by_id(customer.id).tier_id == a_tier.id
    _deliver_all(app)
    (outcome,) = mail_to(world["rep"])
    assert outcome["Subject"].startswith("Your request was decided (Approved)")
    client.post("/logout")
    login(client, "rep_e")
    page = client.get(f"/tier-changes/{request.id}").get_data(as_text=True)
    assert f"{deputy.display_name} for {world['director'].display_name}" in page
