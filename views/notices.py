"""Notices: my channels and my latest notices; the admin's group robots and failed
notices."""
from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from forms import Form
from forms.approvals import DelegationForm, EndDelegationForm
from forms.notices import PreferencesForm, RobotForm
from models import Branch, DomainError, NotFound, User, audit, utcnow
from models.delegations import delegations_of, end_delegation, save_delegation
from models.notices import (
    Robot,
    absolute_link,
    channels_of,
    failed_notices,
    last_notices,
    resend,
    save_preferences,
    save_robot,
    unreachable_users,
)
from services.notify import DeliveryError, build_email, send_email, send_robot

from .access import get_or_404, role_required

bp = Blueprint("notices", __name__)


@bp.route("/notices", methods=["GET", "POST"])
def mine():
    """My channel per kind of notice, my periods away with who stands in for me, and my
    latest notices."""
    form = PreferencesForm()
    if not form.is_submitted():
        for field in form.kind_fields():
            field.data = channels_of(current_user, field.name)
    if form.validate_on_submit():
        try:
            save_preferences(current_user, form.chosen())
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("Your choices were saved."), "success")
            return redirect(url_for("notices.mine"), 303)
    return _mine_page(form, DelegationForm(colleagues=_colleagues()))


def _mine_page(form, away_form):
    return render_template("notices/mine.html", form=form, away_form=away_form,
                           away=delegations_of(current_user), end_form=EndDelegationForm(),
                           notices=last_notices(current_user))


def _colleagues():
    """Who may stand in for me: active colleagues who could open the requests that wait
    for me (of my branch when I see one branch)."""
    people = User.select().where(User.active, User.id != current_user.id)
    if current_user.is_branch_scoped:
        people = people.where(User.branch == current_user.branch_id)
    return [u for u in people.order_by(User.display_name)
            if not u.is_branch_scoped or u.branch_id == current_user.branch_id]


@bp.route("/notices/away", methods=["POST"])
def away():
    """Set a period away and who decides my approval steps meanwhile."""
    away_form = DelegationForm(colleagues=_colleagues())
    if away_form.validate_on_submit():
        try:
            save_delegation(current_user, User.get_or_none(User.id == away_form.delegate.data),
                            away_form.starts_on.data, away_form.ends_on.data)
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("Saved: %(name)s decides your approval steps while you are away.",
                    name=User.get_by_id(away_form.delegate.data).display_name), "success")
            return redirect(url_for("notices.mine"), 303)
    form = PreferencesForm()
    for field in form.kind_fields():
        field.data = channels_of(current_user, field.name)
    return _mine_page(form, away_form), 422


@bp.route("/notices/away/<int:delegation_id>/end", methods=["POST"])
def end_away(delegation_id):
    """Back early: the period away ends today (or goes, when it has not started)."""
    if EndDelegationForm().validate_on_submit():
        try:
            end_delegation(delegation_id, current_user)
        except NotFound:
            abort(404)
        flash(_("You are back: your approval steps wait for you again."), "success")
    return redirect(url_for("notices.mine"), 303)


@bp.route("/admin/notices")
@role_required("admin")
def failed():
    """Notices that could not be delivered, with their last error; each can be resent."""
    return render_template("notices/failed.html", notices=failed_notices(), form=Form(),
                           unreachable=unreachable_users(),
                           mail_server=bool(current_app.config.get("SMTP_HOST")))


@bp.route("/admin/notices/<int:notice_id>/resend", methods=["POST"])
@role_required("admin")
def resend_one(notice_id):
    """Put a failed notice back in the queue (audited); the worker sends it."""
    form = Form()
    if not form.validate_on_submit():
        abort(400)
    try:
        resend(notice_id, current_user)
    except DomainError as error:
        flash(str(error), "error")
    else:
        flash(_("The notice will be sent again."), "success")
    return redirect(url_for("notices.failed"), 303)


def _robot_rows():
    robots = {r.branch_id: r for r in Robot.select()}
    return [(None, robots.get(None))] + [(b, robots.get(b.id))
                                         for b in Branch.select().order_by(Branch.code)]


@bp.route("/admin/robots")
@role_required("admin")
def robots():
    """The company-wide robot and each branch's: platform, host, the address's last
    characters; never the address or secret in full."""
    return render_template("notices/robots.html", rows=_robot_rows(), form=Form())


def _branch_or_none(branch_id):
    return get_or_404(Branch, branch_id) if branch_id else None


@bp.route("/admin/robots/<int:branch_id>", methods=["GET", "POST"])
@role_required("admin")
def robot_form(branch_id):
    """Set the robot of a branch (0: company-wide). A refused address is an error on
    the form, and nothing is saved."""
    branch = _branch_or_none(branch_id)
    robot = Robot.get_or_none(Robot.branch.is_null() if branch is None
                              else Robot.branch == branch.id)
    form = RobotForm(creating=robot is None)
    if robot is not None and not form.is_submitted():
        form.platform.data, form.active.data = robot.platform, robot.active
    if form.validate_on_submit():
        try:
            save_robot(branch, current_user, form.platform.data, form.url.data,
                       form.secret.data, form.active.data)
        except DomainError as error:
            flash(str(error), "error")
        else:
            flash(_("The robot was saved."), "success")
            return redirect(url_for("notices.robots"), 303)
    form.url.data = ""  # an address (and its token) is never sent back to a page
    return render_template("notices/robot_form.html", form=form, branch=branch, robot=robot)


@bp.route("/admin/robots/<int:branch_id>/test", methods=["POST"])
@role_required("admin")
def test_robot(branch_id):
    """Send a test message through the robot now, and say what it answered (audited)."""
    branch = _branch_or_none(branch_id)
    robot = Robot.get_or_none(Robot.branch.is_null() if branch is None
                              else Robot.branch == branch.id)
    form = Form()
    if robot is None:
        abort(404)
    if not form.validate_on_submit():
        abort(400)
    return _tested("robot_tested", robot, "notices.robots", lambda: send_robot(
        robot, _("Tierdesk test message"),
        _("%(name)s sent this test message from Tierdesk.", name=current_user.display_name),
        absolute_link(url_for("notices.robots")), current_user.mobile),
        lambda answer: _("The robot answered: %(answer)s", answer=answer))


@bp.route("/admin/notices/smtp-test", methods=["POST"])
@role_required("admin")
def test_smtp():
    """Send a test e-mail to my own address through the SMTP settings now, and say what
    the server answered (audited)."""
    if not Form().validate_on_submit():
        abort(400)
    if not current_user.email:
        flash(_("Give yourself an e-mail address first (Users)."), "error")
        return redirect(url_for("notices.failed"), 303)
    return _tested("smtp_tested", current_user, "notices.failed", lambda: send_email(
        build_email(0, f"smtp-test-{utcnow():%Y%m%d%H%M%S}", current_user,
                    _("Tierdesk test message"),
                    _("%(name)s sent this test message from Tierdesk.",
                      name=current_user.display_name),
                    absolute_link(url_for("notices.failed")))),
        lambda answer: _("The mail server answered: %(answer)s", answer=answer))


def _tested(action, record, back, send, answered):
    """Send a test message now (`send()` returns the channel's answer), audit what came
    back under `action`, say it (`answered(answer)`) and go back to `back`."""
    try:
        answer, ok = send(), True
    except DeliveryError as error:
        answer, ok = str(error), False
    audit(action, record, after={"ok": ok, "answer": answer[:300]})
    flash(answered(answer) if ok else _("Sending failed: %(answer)s", answer=answer),
          "success" if ok else "error")
    return redirect(url_for(back), 303)
