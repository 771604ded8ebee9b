"""Flask extensions, created here and bound to the app in create_app()."""
from flask_babel import Babel
from flask_htmx import HTMX
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect


class PageAwareHTMX(HTMX):
    """flask-htmx's `htmx`, except that a history restore is not a fragment request.

    htmx restores a page it has not cached (our pages say hx-history="false", and
    base.html keeps no cache) by asking the server again with HX-Request *and*
    HX-History-Restore-Request, then puts the answer in place of the whole body.
    So `if htmx:` is false for such a request: every view that answers a partial
    `if htmx:` answers the whole page instead, and Back, Forward and reload never
    show a bare fragment. `htmx.history_restore_request` still tells them apart.
    """

    def __bool__(self):
        return super().__bool__() and not self.history_restore_request


babel = Babel()
csrf = CSRFProtect()
htmx = PageAwareHTMX()
login_manager = LoginManager()
