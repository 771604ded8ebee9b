"""Logging in and out, sessions, throttling."""
import time

import itsdangerous.timed

from models import AuditEvent, User
from models.people import save_user
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
