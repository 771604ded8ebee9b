"""Tierdesk: customer grading and tier management (客户分级管理)."""
import datetime
import functools
import gc
import os
import secrets
from pathlib import Path

from babel import Locale
from flask import Flask, has_request_context, request, session
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

from extensions import babel, csrf, htmx, login_manager
from i18n import lazy_gettext as _l

BASE_DIR = Path(__file__).resolve().parent

# Endpoints reachable without logging in; everything else needs a session.
PUBLIC_ENDPOINTS = frozenset({"static", "auth.login", "auth.set_language", "main.healthz"})


def create_app(test_config=None):
    """Build the app: defaults, then the environment, then `test_config`."""
    app = Flask(__name__, instance_path=str(BASE_DIR / "instance"))
    # The database, its backups by default, the secret and signing keys, the reports:
    # the instance folder is this user's alone.
    os.makedirs(app.instance_path, mode=0o700, exist_ok=True)
    os.chmod(app.instance_path, 0o700)
    app.config.from_mapping(
        SECRET_KEY=None,
        DATABASE_URL=f"sqlite:///{Path(app.instance_path) / 'tierdesk.db'}",
        MAX_CONTENT_LENGTH=10 * 1024 * 1024,
        IDLE_TIMEOUT_MINUTES=30,
        # How many proxies in front of the app may say who the client is
        # (X-Forwarded-For, X-Forwarded-Proto); 0 ignores those headers.
        TRUSTED_PROXIES=0,
        # However busy, a session ends this long after its login (a stolen cookie
        # kept alive by use dies too).
        SESSION_MAX_HOURS=12,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=False,
        REMEMBER_COOKIE_DURATION=datetime.timedelta(seconds=0),
        WTF_CSRF_TIME_LIMIT=None,
        BABEL_DEFAULT_LOCALE="zh_CN",
        BABEL_DEFAULT_TIMEZONE="Asia/Shanghai",
        BABEL_TRANSLATION_DIRECTORIES=str(BASE_DIR / "translations"),
        PAGE_SIZE=50,
        # Search-as-you-type counts its matches up to here, then says "more than": ten
        # pages of them. Each keystroke reads the index until one match past the cap;
        # across all branches at 20,000 customers that took 2.5 ms at 1,000, 1.3 at 500.
        SEARCH_COUNT_CAP=500,
        # How often meeting screens ask whether the chair moved on / new scores arrived.
        MEETING_POLL_SECONDS=3,
        BOARD_POLL_SECONDS=2,
        # Where the customer pyramid's layers end, in % of customers from the top
        # (platinum, gold, iron; lead is the rest): a hint beside each assessment.
        PYRAMID_CUTS=(1, 5, 20),
        # The organisation's signing key for the committee report: a PKCS#12 file
        # (and its password); without one, a key and self-signed certificate are
        # made on first use in SIGNING_DIR (default instance/signing/).
        SIGNING_PKCS12=None,
        SIGNING_PKCS12_PASSWORD=None,
        SIGNING_DIR=None,
        ORGANISATION_NAME="Tierdesk",
        # The address printed under the QR code (…/verify); default: this server's.
        PUBLIC_URL=None,
        # /verify refuses files larger than this.
        VERIFY_MAX_BYTES=10 * 1024 * 1024,
        # Committee reports: sheets per rendered part (services/reports.py), how many
        # parts render at once (None: one per CPU), where reports and parts are kept.
        REPORT_BATCH=50,
        REPORT_PROCESSES=None,
        REPORTS_DIR=None,
        # Notices (models/notices.py, services/notify.py): the SMTP server, and the
        # hosts besides the platforms' own that robots may post to (comma-separated).
        SMTP_HOST=None,
        SMTP_PORT=None,
        SMTP_USERNAME=None,
        SMTP_PASSWORD=None,
        SMTP_SECURITY="starttls",
        MAIL_FROM=None,
        WEBHOOK_ALLOWED_HOSTS="",
        NOTICE_TIMEOUT_SECONDS=10,
        NOTICE_MAX_TRIES=5,
        NOTICE_RETRY_SECONDS=60,
        NOTICE_LEASE_SECONDS=600,
    )
    for key in ("SECRET_KEY", "DATABASE_URL", "IDLE_TIMEOUT_MINUTES", "SESSION_MAX_HOURS",
                "SESSION_COOKIE_SECURE", "MAX_CONTENT_LENGTH", "BABEL_DEFAULT_TIMEZONE",
                "SIGNING_PKCS12", "SIGNING_PKCS12_PASSWORD", "SIGNING_DIR",
                "ORGANISATION_NAME", "PUBLIC_URL", "REPORTS_DIR", "TRUSTED_PROXIES",
                "SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_SECURITY",
                "MAIL_FROM", "WEBHOOK_ALLOWED_HOSTS"):
        if key in os.environ:
            value = os.environ[key]
            if key in ("IDLE_TIMEOUT_MINUTES", "SESSION_MAX_HOURS", "MAX_CONTENT_LENGTH",
                       "TRUSTED_PROXIES", "SMTP_PORT"):
                value = int(value)
            elif key == "SESSION_COOKIE_SECURE":
                value = value.lower() in ("1", "true", "yes")
            app.config[key] = value
    if test_config:
        app.config.update(test_config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _instance_secret(app.instance_path)
    app.config["PERMANENT_SESSION_LIFETIME"] = datetime.timedelta(
        minutes=app.config["IDLE_TIMEOUT_MINUTES"])
    if app.config["TRUSTED_PROXIES"] > 0:
        # The client's address (login limits, audit trail) and scheme from that many
        # proxies; never the Host header, which anyone can set.
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_port=0,
                                x_prefix=0)

    from models.base import init_database
    init_database(app.config["DATABASE_URL"])

    babel.init_app(app, locale_selector=_select_locale)
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)

    from services import formatting
    formatting.register(app, babel)

    from views import (
        admin,
        allocation,
        approvals,
        audit,
        auth,
        customers,
        cycles,
        errors,
        funnel,
        main,
        notices,
        portfolio,
        reports,
        scorecards,
        service_requests,
        tiers,
        verify,
    )
    for module in (auth, main, customers, scorecards, cycles, reports, verify, tiers, approvals,
                   funnel, portfolio, allocation, service_requests, notices, admin, audit,
                   errors):
        app.register_blueprint(module.bp)

    _register_request_hooks(app)
    _register_commands(app)
    if not app.testing:
        # What a serving process has loaded by now (libraries, the pinyin tables, the
        # catalogs: some 290,000 objects) lives as long as the process. Frozen, it is
        # skipped by the collector's full passes, which otherwise walked it all: 80-110
        # ms each, paid by about one page view in a hundred.
        gc.freeze()
    return app


def _instance_secret(instance_path):
    """A secret key kept in instance/ so that `make run` needs no setup."""
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _select_locale():
    if not has_request_context():
        return None  # CLI and jobs: the default locale
    if current_user and current_user.is_authenticated:
        return _locale(current_user.language)
    return _locale(session.get("language"))


@functools.lru_cache(maxsize=16)
def _locale(identifier):
    """A parsed Locale, once per process: Flask-Babel would parse the identifier on
    every request, and Babel's parse scans its whole locale list each time."""
    return Locale.parse(identifier) if identifier else None


@login_manager.user_loader
def _load_user(session_id):
    from models import User
    return User.from_session_id(session_id)


login_manager.login_view = "auth.login"
login_manager.login_message = _l("Please log in to see this page.")
login_manager.session_protection = "basic"


@login_manager.unauthorized_handler
def _unauthorized():
    from flask import flash, make_response, redirect, url_for
    from flask_babel import gettext as _
    login_url = url_for("auth.login", next=request.full_path.rstrip("?"))
    if htmx:
        # An htmx fragment must not swap the login page into itself.
        return make_response("", 401, {"HX-Redirect": login_url})
    flash(_("Please log in to see this page."), "info")
    return redirect(login_url)


def _register_request_hooks(app):
    from flask import flash, make_response, redirect, url_for
    from flask_babel import gettext as _
    from flask_login import logout_user

    from models.base import db, utcnow

    @app.before_request
    def open_db_and_require_login():
        db.connect(reuse_if_open=True)
        session.permanent = True  # idle timeout: the cookie expires when unused
        if current_user.is_authenticated and _older_than_allowed(session.get("login_at")):
            # Past SESSION_MAX_HOURS since login, however busy: log out. A session
            # without a login time (from before this rule) cannot show its age.
            language = current_user.language
            logout_user()
            session.clear()
            session["language"] = language
            if request.endpoint not in PUBLIC_ENDPOINTS:
                flash(_("You logged in more than %(hours)s hours ago: please log in again.",
                        hours=app.config["SESSION_MAX_HOURS"]), "info")
                login_url = url_for("auth.login", next=request.full_path.rstrip("?"))
                if htmx:  # as for any other logged-out htmx request
                    return make_response("", 401, {"HX-Redirect": login_url})
                return redirect(login_url)
        if request.endpoint not in PUBLIC_ENDPOINTS and not current_user.is_authenticated:
            return login_manager.unauthorized()
        return None

    def _older_than_allowed(login_at):
        """Whether a session that logged in at `login_at` (ISO, UTC) has outlived
        SESSION_MAX_HOURS; a missing or unreadable time counts as too old."""
        try:
            started = datetime.datetime.fromisoformat(login_at)
        except (TypeError, ValueError):
            return True
        limit = datetime.timedelta(hours=app.config["SESSION_MAX_HOURS"])
        return utcnow() - started > limit

    @app.teardown_request
    def close_db(exc):
        if not db.is_closed():
            db.close()

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        if app.config["SESSION_COOKIE_SECURE"]:  # served over HTTPS: only ever over HTTPS
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.endpoint != "static":
            # Pages, exports and PDFs all carry customer data: no copy in any cache.
            # Overwrites send_file's "no-cache", which still lets a cache keep it.
            headers["Cache-Control"] = "no-store"
        if response.mimetype == "text/html":
            # A fragment for htmx, the whole page for a plain GET or a history restore.
            response.vary.add("HX-Request")
            response.vary.add("HX-History-Restore-Request")
        return response


def _register_commands(app):
    from services import cli
    cli.register(app)
