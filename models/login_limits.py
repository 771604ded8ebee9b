"""How often a password may be guessed: the one rule the login and the signing form share.

Every wrong password is a `login_failed` audit pair: one row for the user name (object
type `user`; its `ip` column holds the address) and one for the address (object type
`ip`, `ip:<address>`), told apart by their type so that a user name typed as
"ip:<address>" counts for no address. From those:

- An address with ADDRESS_MAX_FAILURES failures within WINDOW is refused for every
  user name until they age out.
- A user name with USER_MAX_FAILURES or more failures within WINDOW is locked for
  retry_delay(failures) after its last failure — but only for addresses that failed
  for that user name within WINDOW themselves. From any other address the right
  password still logs in (a wrong one counts as usual), so a stranger cannot lock a
  known user out, while the guesser is slowed down more with every failure.

A logged-in user who re-enters their password (to sign) is held to the same records:
a wrong one is a failure like any other, and the one that brings the user name to
USER_MAX_FAILURES within WINDOW ends all the user's sessions, so whoever holds a
session cannot go on guessing its password.

Unknown and known user names are counted and refused alike: nothing here reads the
user table, so neither the answer nor its time tells which names exist.
"""
import datetime

from i18n import lazy_gettext as _l

from .audit import AuditEvent, audit, recent_count
from .base import DomainError, utcnow, write_transaction

WINDOW = datetime.timedelta(minutes=15)
USER_MAX_FAILURES = 5
ADDRESS_MAX_FAILURES = 20
FIRST_DELAY = datetime.timedelta(seconds=30)


class TooManyFailures(DomainError):
    """Refused without checking the password: too many failures lately (answer 429)."""

    def __init__(self):
        super().__init__(_l("Too many failed attempts. Please wait a few minutes and try "
                            "again."))


class SessionsRevoked(DomainError):
    """A wrong password in a session was one too many: every session of the user ended."""

    def __init__(self):
        super().__init__(_l("Too many wrong passwords: you have been logged out everywhere. "
                            "Log in again."))


def retry_delay(failures):
    """How long a user name stays locked after its last failure, given `failures` within
    the window: FIRST_DELAY at USER_MAX_FAILURES, doubling with each further one, at
    most WINDOW; nothing below USER_MAX_FAILURES."""
    if failures < USER_MAX_FAILURES:
        return datetime.timedelta(0)
    # The exponent is capped so that a long run of failures cannot overflow.
    return min(FIRST_DELAY * 2 ** min(failures - USER_MAX_FAILURES, 16), WINDOW)


def _address(address):
    """The client's address as the records keep it (an IPv6 address is at most 45
    characters; a longer value would not fit the audit columns)."""
    return (address or "")[:45]


def is_limited(username, address, now=None):
    """Whether an attempt for `username` from `address` is refused now, before any
    password is checked (see the module's docstring)."""
    now = now or utcnow()
    since = now - WINDOW
    address = _address(address)
    if recent_count("login_failed", f"ip:{address}", since, "ip") >= ADDRESS_MAX_FAILURES:
        return True
    name = username.lower()
    failures = recent_count("login_failed", name, since, "user")
    if failures < USER_MAX_FAILURES:
        return False
    mine = (AuditEvent.select(AuditEvent.at)
            .where(AuditEvent.action == "login_failed", AuditEvent.object_type == "user",
                   AuditEvent.object_id == name, AuditEvent.at >= since))
    if not mine.where(AuditEvent.ip == address).exists():
        return False  # this address has not guessed this name: let it try
    last = mine.order_by(AuditEvent.at.desc()).first().at
    return now < last + retry_delay(failures)


def record_failure(username, address, actor=None):
    """Record one wrong password for `username` from `address`, audited; returns how
    many failures the user name has within the window, this one included."""
    name, address = username.lower(), _address(address)
    audit("login_failed", object_type="user", object_id=name, actor=actor, ip=address)
    audit("login_failed", object_type="ip", object_id=f"ip:{address}", actor=actor, ip=address)
    return recent_count("login_failed", name, utcnow() - WINDOW, "user")


def session_password_failed(user, address):
    """Record a wrong password re-entered by the logged-in `user` (see record_failure).
    When it is the user name's USER_MAX_FAILURES-th failure within the window or more,
    revoke every session of the user, audited, and raise SessionsRevoked; otherwise
    return the number of failures."""
    with write_transaction():
        failures = record_failure(user.username, address, actor=user)
        if failures < USER_MAX_FAILURES:
            return failures
        user.revoke_sessions()
        audit("sessions_revoked", user, actor=user, ip=_address(address),
              after={"failures": failures, "window_minutes": int(WINDOW.total_seconds() // 60)})
    raise SessionsRevoked()
