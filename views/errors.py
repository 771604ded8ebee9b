"""Generic error pages in the user's language."""
from flask import Blueprint, current_app, render_template
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError

from i18n import lazy_gettext as _l

bp = Blueprint("errors", __name__)

MESSAGES = {
    400: _l("The request could not be understood."),
    403: _l("You do not have permission to do this."),
    404: _l("This page does not exist, or you cannot see it."),
    405: _l("This action is not allowed here."),
    429: _l("Too many requests. Please wait a moment and try again."),
    500: _l("Something went wrong on our side. The error was recorded; please try again."),
}


def _page(status, message=None):
    return render_template("errors/error.html", status=status,
                           message=message or MESSAGES[status]), status


@bp.app_errorhandler(CSRFError)
def csrf_error(error):
    return _page(400, _l("This form has expired. Reload the page and try again."))


@bp.app_errorhandler(413)
def too_large(error):
    """Refused before any view ran: say what the limit is."""
    mb = current_app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024)
    return _page(413, _("The upload is larger than %(mb)s MB, the most this site accepts. "
                        "Nothing was saved.", mb=mb))


for _status in MESSAGES:
    bp.app_errorhandler(_status)(lambda error, status=_status: _page(status))
