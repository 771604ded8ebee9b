"""Logging in and out, sessions, throttling."""
import datetime
import re
import time

import itsdangerous.timed
import pytest

from app import create_app
from models import AuditEvent, User, utcnow
from models.admin import save_user
from models.login_limits import is_limited, retry_delay
from tests.conftest import PASSWORD, login


def test_login_page_is_chinese_by_default(client):
    """The login page speaks Chinese to a visitor who has chosen nothing."""
    response = client.get("/login")
    assert response.status_code == 200
    assert "登录" in response.get_data(as_text=True)


def test_login_and_dashboard(client, make):
    """A correct password opens the dashboard with the user's name on it."""
    make.user("wang", roles=("admin",), display_name="王小明")
    response = login(client, "wang")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    assert "王小明" in page


def test_unknown_user_and_wrong_password_get_the_same_message(client, make):
    """Nobody learns which usernames exist from the login answer."""
    make.user("li", roles=("admin",))
    wrong = login(client, "li", "not-the-password").get_data(as_text=True)
    unknown = login(client, "nobody", "not-the-password").get_data(as_text=True)
    assert "用户名或密码错误" in wrong
    assert "用户名或密码错误" in unknown
    assert client.get("/").status_code == 302


def test_next_only_goes_to_this_site(client, make):
    """A `next` pointing elsewhere lands on the dashboard instead."""
    make.user("zhao", roles=("admin",))
    response = client.post("/login", data={"username": "zhao", "password": PASSWORD,
                                           "next": "https://evil.example/"})
    assert response.headers["Location"] == "/"
    client.post("/logout")
    response = client.post("/login", data={"username": "zhao", "password": PASSWORD,
                                           "next": "/admin/users"})
    assert response.headers["Location"] == "/admin/users"


def test_login_renews_the_session(client, make):
    """Whatever the session held before login is gone after it (no fixation)."""
    make.user("sun", roles=("admin",))
    with client.session_transaction() as session:
        session["planted"] = "by-attacker"
    login(client, "sun")
    with client.session_transaction() as session:
        assert "planted" not in session


def test_logout_revokes_a_replayed_cookie(app, client, make):
    """A session cookie copied before logout is refused after it."""
    make.user("zhou", roles=("admin",))
    login(client, "zhou")
    old_cookie = client.get_cookie("session").value
    assert client.get("/").status_code == 200
    client.post("/logout")
    thief = app.test_client()
    thief.set_cookie("session", old_cookie)
    response = thief.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_deactivation_ends_open_sessions(app, client, make):
    """A user switched off by an admin is logged out at their next click."""
    user = make.user("wu", roles=("sales_rep",))
    login(client, "wu")
    assert client.get("/").status_code == 200
    with app.test_request_context():
        save_user(User.get_by_id(user.id), username="wu", display_name="wu",
                  roles=["sales_rep"], branch=user.branch, active=False)
    assert client.get("/").status_code == 302
    assert login(client, "wu").status_code == 200  # the form again, not a session


def test_idle_session_expires(client, make, monkeypatch):
    """A session unused for longer than the idle timeout (30 min) is refused."""
    make.user("qian", roles=("admin",))
    login(client, "qian")
    assert client.get("/").status_code == 200
    real_time = time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real_time() + 29 * 60)
    assert client.get("/").status_code == 200  # within the window, and renewed
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real_time() + 60 * 60)
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_a_session_ends_twelve_hours_after_login_however_busy(app, client, make, monkeypatch):
    """A session older than SESSION_MAX_HOURS (12) is logged out and sent to the login page
    with why; htmx gets 401 and HX-Redirect; the limit can be set in the environment."""
    import datetime

    from app import create_app
    from models import utcnow
    make.user("feng", roles=("admin",))
    login(client, "feng")
    with client.session_transaction() as session:
        started = datetime.datetime.fromisoformat(session["login_at"])
        assert abs(utcnow() - started) < datetime.timedelta(minutes=1)
        session["login_at"] = (utcnow() - datetime.timedelta(hours=11, minutes=59)).isoformat()
    assert client.get("/").status_code == 200  # within the twelve hours
    with client.session_transaction() as session:
        session["login_at"] = (utcnow() - datetime.timedelta(hours=12, minutes=1)).isoformat()
    response = client.get("/admin/users")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/admin/users"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "您登录已超过 12 小时，请重新登录。" in page
    assert client.get("/").status_code == 302  # logged out, not just turned away once
    with client.session_transaction() as session:
        assert "_user_id" not in session and "login_at" not in session
    login(client, "feng")
    assert client.get("/").status_code == 200
    with client.session_transaction() as session:
        session["login_at"] = (utcnow() - datetime.timedelta(hours=13)).isoformat()
    response = client.get("/admin/users", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=/admin/users"
    monkeypatch.setenv("SESSION_MAX_HOURS", "2")
    assert create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL":
                       app.config["DATABASE_URL"]}).config["SESSION_MAX_HOURS"] == 2


def test_repeated_failures_are_throttled(client, make):
    """After five wrong passwords even the right one is refused for a while."""
    make.user("zheng", roles=("admin",))
    for _ in range(5):
        assert login(client, "zheng", "wrong-password").status_code == 200
    response = login(client, "zheng")
    assert response.status_code == 429
    assert "尝试次数过多" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_logins_and_failures_are_audited(app, client, make):
    """Each login, failed login and logout leaves an audit event."""
    make.user("feng", roles=("admin",))
    login(client, "feng", "bad-password")
    login(client, "feng")
    client.post("/logout")
    actions = [e.action for e in AuditEvent.select().order_by(AuditEvent.id)]
    assert actions.count("login_failed") == 2  # one by username, one by address
    assert "login" in actions and "logout" in actions


def test_logout_get_changes_nothing(client, make):
    """GET /logout only asks; the session stays until the POST."""
    make.user("chen", roles=("admin",))
    login(client, "chen")
    assert client.get("/logout").status_code == 200
    assert client.get("/").status_code == 200


# --- Login limits and the proxy's forwarded address ----------------------------------

def _client_at(app, address, forwarded_for=None):
    """A browser whose requests reach the app from `address`, with `forwarded_for` in
    X-Forwarded-For as a proxy would send it."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    if forwarded_for:
        client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return client


def _login_failed_rows(object_id):
    return AuditEvent.select().where(AuditEvent.action == "login_failed",
                                     AuditEvent.object_id == object_id).count()


@pytest.fixture
def proxied_app(app, monkeypatch):
    """The same database served behind one TLS proxy: TRUSTED_PROXIES=1 in the
    environment, as the README tells a production set-up."""
    monkeypatch.setenv("TRUSTED_PROXIES", "1")
    return create_app({"TESTING": True, "SECRET_KEY": "test-secret",
                       "DATABASE_URL": app.config["DATABASE_URL"], "WTF_CSRF_ENABLED": False})


PROXY = "10.0.0.1"


def test_behind_a_trusted_proxy_a_guesser_does_not_lock_out_everyone(proxied_app, make):
    """With TRUSTED_PROXIES=1, 20 failures from one client behind the proxy refuse that
    client only; a user forwarded from another address still logs in."""
    make.user("wang", roles=("sales_rep",))
    guesser = _client_at(proxied_app, PROXY, "203.0.113.66")
    for n in range(20):
        assert login(guesser, f"nobody{n}", "guess").status_code == 200
    response = login(guesser, "somebody-else", "guess")
    assert response.status_code == 429
    assert "尝试次数过多" in response.get_data(as_text=True)
    user = _client_at(proxied_app, PROXY, "198.51.100.23")
    response = login(user, "wang")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert user.get("/").status_code == 200
    assert _login_failed_rows("ip:203.0.113.66") == 20
    assert _login_failed_rows(f"ip:{PROXY}") == 0
    assert AuditEvent.get(AuditEvent.action == "login").ip == "198.51.100.23"


def test_without_trusted_proxies_x_forwarded_for_is_ignored(app, make):
    """With TRUSTED_PROXIES=0 (the default) a made-up X-Forwarded-For changes nothing:
    20 failures from one address refuse it whatever the header says."""
    make.user("wang", roles=("sales_rep",))
    for n in range(20):
        spoofer = _client_at(app, PROXY, f"192.0.2.{n + 1}")
        assert login(spoofer, f"nobody{n}", "guess").status_code == 200
    fresh = _client_at(app, PROXY, "198.51.100.99")
    response = login(fresh, "wang")
    assert response.status_code == 429
    assert fresh.get("/").status_code == 302
    assert _login_failed_rows(f"ip:{PROXY}") == 20
    assert {e.ip for e in AuditEvent.select()} == {PROXY}


def test_only_the_proxys_client_address_and_scheme_are_trusted_never_the_host(proxied_app):
    """Behind TRUSTED_PROXIES=1 the app sees the client's address and https from the
    proxy's headers, but keeps the Host it was sent, whatever X-Forwarded-Host says."""
    seen = {}

    def record(environ, start_response):
        seen.update(environ)
        start_response("204 No Content", [])
        return [b""]

    proxied_app.wsgi_app.app = record  # what the proxy fix hands on to Flask
    client = _client_at(proxied_app, PROXY, "203.0.113.5")
    client.get("/login", headers={"X-Forwarded-Proto": "https",
                                  "X-Forwarded-Host": "evil.example",
                                  "Host": "tierdesk.example"})
    assert seen["REMOTE_ADDR"] == "203.0.113.5"
    assert seen["wsgi.url_scheme"] == "https"
    assert seen["HTTP_HOST"] == "tierdesk.example"


def test_a_stranger_cannot_lock_admin_out(app, make):
    """Wrong passwords for `admin` from one address refuse that address (429, even with
    the right password), while admin logs in from an address that has not failed."""
    make.user("admin", roles=("admin",), display_name="管理员")
    stranger = _client_at(app, "198.51.100.7")
    for _ in range(5):
        assert login(stranger, "admin", "guess").status_code == 200
    refused = login(stranger, "admin")  # the right password is not even checked
    assert refused.status_code == 429
    assert "尝试次数过多" in refused.get_data(as_text=True)
    assert stranger.get("/").status_code == 302
    admin = _client_at(app, "192.0.2.10")
    response = login(admin, "admin")
    assert response.status_code == 302
    assert "管理员" in admin.get("/").get_data(as_text=True)
    assert _login_failed_rows("admin") == 5
    assert AuditEvent.select().where(AuditEvent.action == "login_throttled").count() == 1
    assert AuditEvent.get(AuditEvent.action == "login").ip == "192.0.2.10"


def test_a_locked_name_from_a_clean_address_counts_a_wrong_password(app, make):
    """From an address that has not failed, a wrong password for a locked name is
    counted as usual, and that address is refused from then on."""
    make.user("admin", roles=("admin",))
    stranger = _client_at(app, "198.51.100.7")
    for _ in range(5):
        login(stranger, "admin", "guess")
    other = _client_at(app, "192.0.2.10")
    assert login(other, "admin", "typo").status_code == 200
    assert _login_failed_rows("admin") == 6
    assert login(other, "admin").status_code == 429
    assert other.get("/").status_code == 302


def test_unknown_and_real_names_are_locked_alike(app, make):
    """Five failures lock an unknown name exactly as a real one: same status, same
    message, so the lock does not tell which names exist."""
    make.user("admin", roles=("admin",))
    client = _client_at(app, "198.51.100.7")
    answers = {}
    for name in ("admin", "no-such-user"):
        for _ in range(5):
            assert login(client, name, "guess").status_code == 200
        response = login(client, name, "guess")
        # The CSRF token is the only part that differs between any two pages.
        page = re.sub(r'("X-CSRFToken": "|name="csrf_token" value=")[^"]+', "TOKEN",
                      response.get_data(as_text=True))
        answers[name] = (response.status_code, page.replace(name, "NAME"))
    assert answers["admin"] == answers["no-such-user"]
    assert answers["admin"][0] == 429
    assert _login_failed_rows("admin") == _login_failed_rows("no-such-user") == 5


def _failed_before(name, address, count, seconds_ago):
    """`count` failed logins for `name` from `address`, `seconds_ago` in the past."""
    at = utcnow() - datetime.timedelta(seconds=seconds_ago)
    for _ in range(count):
        AuditEvent.create(action="login_failed", object_type="user", object_id=name,
                          ip=address, at=at)
        AuditEvent.create(action="login_failed", object_type="ip", object_id=f"ip:{address}",
                          ip=address, at=at)


def test_the_lock_lasts_30_seconds_then_doubles_with_each_failure(app, make):
    """After five failures the guesser waits 30 s; each further failure doubles the
    wait (60 s after the sixth), and failures older than 15 minutes no longer count."""
    make.user("admin", roles=("admin",))
    guesser = _client_at(app, "198.51.100.7")
    _failed_before("admin", "198.51.100.7", 5, seconds_ago=20)
    assert login(guesser, "admin").status_code == 429
    now = utcnow()
    assert is_limited("admin", "198.51.100.7", now=now + datetime.timedelta(seconds=8))
    assert not is_limited("admin", "198.51.100.7", now=now + datetime.timedelta(seconds=12))
    _failed_before("admin", "198.51.100.7", 1, seconds_ago=0)  # the sixth failure
    now = utcnow()
    assert is_limited("admin", "198.51.100.7", now=now + datetime.timedelta(seconds=58))
    assert not is_limited("admin", "198.51.100.7", now=now + datetime.timedelta(seconds=62))
    assert not is_limited("admin", "198.51.100.7", now=now + datetime.timedelta(minutes=16))
    assert [retry_delay(n).total_seconds() for n in (4, 5, 6, 7, 9, 10, 40)] == [
        0, 30, 60, 120, 480, 900, 900]


def test_after_the_delay_the_guesser_may_try_again(app, make):
    """Thirty seconds after a fifth failure the same address may try again."""
    make.user("admin", roles=("admin",))
    _failed_before("admin", "198.51.100.7", 5, seconds_ago=31)
    response = login(_client_at(app, "198.51.100.7"), "admin")
    assert response.status_code == 302


def test_a_user_name_shaped_like_an_address_counts_for_no_address(app, make):
    """Failures for the user name "ip:<address>" do not lock that address out."""
    make.user("wang", roles=("sales_rep",))
    for n in range(20):
        attacker = _client_at(app, f"198.51.100.{n + 1}")
        assert login(attacker, "ip:192.0.2.10", "guess").status_code == 200
    response = login(_client_at(app, "192.0.2.10"), "wang")
    assert response.status_code == 302
    assert _login_failed_rows("ip:192.0.2.10") == 20  # all of them for the user name
