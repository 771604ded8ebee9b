"""Logging in and out, and choosing the language."""
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from forms.auth import LanguageForm, LoginForm
from models import User, audit, utcnow
from models.login_limits import is_limited, record_failure
from models.people import DummyPasswordCheck

bp = Blueprint("auth", __name__)


def _safe_next(target):
    """Only a path on this site; anything else goes to the dashboard."""
    if target and target.startswith("/") and not target.startswith("//") \
            and not urlsplit(target).netloc and "\\" not in target:
        return target
    return url_for("main.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form; on valid credentials start a fresh session.

    An unknown user and a wrong password get the same message; while
    models.login_limits refuses the username from this address, the
    password is not checked and the answer is 429.
    """
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        username = form.username.data.strip()
        if is_limited(username, request.remote_addr):
            audit("login_throttled", object_type="user", object_id=username.lower())
            flash(_("Too many failed attempts. Please wait a few minutes and try again."),
                  "error")
            return render_template("auth/login.html", form=form), 429
        user = User.get_or_none(User.username == username)
        ok = user.check_password(form.password.data) if user else DummyPasswordCheck.run(
            form.password.data)
        if ok and user.active:
            session.clear()  # a new session: nothing carried from before login
            login_user(user)
            session["login_at"] = utcnow().isoformat()  # SESSION_MAX_HOURS counts from here
            User.update(last_login_at=utcnow()).where(User.id == user.id).execute()
            audit("login", user, actor=user)
            return redirect(_safe_next(form.next.data))
        record_failure(username, request.remote_addr, actor=user)
        flash(_("Wrong username or password."), "error")
        return render_template("auth/login.html", form=form), 200
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["GET", "POST"])
@login_required
def logout():
    """GET asks to confirm; POST ends the session and revokes its cookie."""
    if request.method == "GET":
        return render_template("auth/logout.html", form=LanguageForm())
    user = current_user._get_current_object()
    user.revoke_sessions()
    audit("logout", user, actor=user)
    logout_user()
    session.clear()
    session["language"] = user.language  # the login page keeps speaking their language
    flash(_("You have logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/language", methods=["POST"])
def set_language():
    """Switch the interface language; a logged-in user keeps the choice."""
    form = LanguageForm()
    if form.validate_on_submit():
        language = form.language.data
        session["language"] = language
        if current_user.is_authenticated and current_user.language != language:
            before = current_user.language
            User.update(language=language).where(User.id == current_user.id).execute()
            audit("user_language", current_user._get_current_object(),
                  before={"language": before}, after={"language": language})
    return redirect(_safe_next(form.next.data))
