"""Generic error pages in the user's language."""
from flask import Blueprint, render_template
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError

bp = Blueprint("errors", __name__)

MESSAGES = {
    400: _l("The request could not be understood."),
    403: _l("You do not have permission to do this."),
    404: _l("This page does not exist, or you cannot see it."),
    405: _l("This action is not allowed here."),
    413: _l("The upload is too large."),
    429: _l("Too many requests. Please wait a moment and try again."),
    500: _l("Something went wrong on our side. The error was recorded; please try again."),
}


def _page(status, message=None):
    return render_template("errors/error.html", status=status,
                           message=message or MESSAGES[status]), status


@bp.app_errorhandler(CSRFError)
def csrf_error(error):
    return _page(400, _l("This form has expired. Reload the page and try again."))


for _status in MESSAGES:
    bp.app_errorhandler(_status)(lambda error, status=_status: _page(status))
