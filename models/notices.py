"""Notices (通知): the outbox, each person's channels, and the group robots.

`notify()` writes one Notice row per channel the recipient chose, inside the caller's
transaction: a notice exists if and only if the change that caused it committed. It
never sends, commits or opens a transaction of its own; the worker delivers the rows
afterwards (services/notify.py, services/jobs.py).

Delivery is claim-then-send. A worker claims a pending notice with one conditional
UPDATE (state pending → sending, tries + 1) and sends only when that UPDATE changed
the row, so two workers never send the same notice. It then marks the notice sent,
or puts it back to pending with a growing back-off, or marks it failed after
MAX_TRIES tries with the last error.

A worker killed after sending but before marking leaves the notice in "sending".
Sending it again could deliver a second copy (a robot message has no idempotency key
the platforms honour, and an SMTP server may have queued the mail before the
connection broke), so such a notice is never retried by itself: once its claim is
older than the lease, the sweep marks it failed with a reason that says delivery is
unknown. It is not lost (the admin sees it among the failed notices and may resend
it), and nothing is sent twice without a person deciding so. An e-mail keeps one
Message-ID for all its tries and resends (its delivery key), so a mail client that
got it twice shows it once. The trade-off: an interrupted notice waits for a person
instead of arriving late on its own.
"""
import base64
import datetime
import functools
import secrets
from urllib.parse import urlsplit

from babel import Locale
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from flask_babel import force_locale, get_locale
from peewee import (
    JOIN,
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from i18n import lazy_gettext as _l

from .audit import audit
from .base import BaseModel, DomainError, db, utcnow, write_transaction
from .people import Branch, User

KINDS = {
    "approval_waiting": _l("An approval step is waiting for you"),
    "request_decided": _l("Your request was decided"),
    "funnel_stale": _l("Opportunities the weekly rollover will send back"),
    "overdue_digest": _l("Weekly digest of overdue service"),
    "cycle": _l("Your part in a grading cycle"),
    "tier_changed": _l("A customer you manage changed tier"),
    "service_breach": _l("A service request went past its response time"),
    "test": _l("Test message"),
}
CHANNEL_CHOICES = {
    "both": _l("E-mail and group robot"),
    "email": _l("E-mail only"),
    "robot": _l("Group robot only"),
    "off": _l("Off"),
}
# What a person gets until they choose: a waiting approval and their part in a grading
# cycle reach them everywhere; the outcome of their own request and the weekly notices
# by e-mail.
DEFAULT_CHANNELS = {"approval_waiting": "both", "request_decided": "email",
                    "funnel_stale": "email", "overdue_digest": "email", "cycle": "both",
                    "tier_changed": "email", "service_breach": "both", "test": "both"}
CHANNELS = {"email": _l("E-mail"), "robot": _l("Group robot")}
STATES = {
    "pending": _l("Pending"),
    "sending": _l("Sending"),
    "sent": _l("Sent"),
    "failed": _l("Failed"),
}
PLATFORMS = {"wecom": _l("WeCom"), "dingtalk": _l("DingTalk"), "feishu": _l("Feishu")}
# Each platform's own webhook hosts; others only through WEBHOOK_ALLOWED_HOSTS.
PLATFORM_HOSTS = {
    "wecom": ("qyapi.weixin.qq.com",),
    "dingtalk": ("oapi.dingtalk.com",),
    "feishu": ("open.feishu.cn", "open.larksuite.com"),
}
MAX_TRIES = 5
RETRY_SECONDS = 60  # the first retry; each further one waits four times longer
LEASE_SECONDS = 600  # a claim older than this was interrupted


class Robot(BaseModel):
    """A group robot (群机器人): one per branch, and one company-wide (no branch). Its
    webhook URL and secret are stored encrypted; only `url_hint` is ever shown."""
    branch = ForeignKeyField(Branch, null=True, unique=True, on_delete="CASCADE")
    platform = CharField(max_length=16)
    url_encrypted = TextField()
    secret_encrypted = TextField(default="")
    url_hint = CharField(max_length=200, default="")
    active = BooleanField(default=True)
    updated_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    updated_at = DateTimeField(default=utcnow)

    @property
    def platform_label(self):
        return PLATFORMS.get(self.platform, self.platform)

    @property
    def url(self):
        return decrypt(self.url_encrypted)

    @property
    def secret(self):
        return decrypt(self.secret_encrypted) if self.secret_encrypted else ""

    def audit_dict(self):
        return {"branch": self.branch_id, "platform": self.platform, "url": self.url_hint,
                "secret": "set" if self.secret_encrypted else "", "active": self.active}


class NoticePreference(BaseModel):
    """A person's channels for one kind of notice; DEFAULT_CHANNELS when there is none."""
    user = ForeignKeyField(User, on_delete="CASCADE")
    kind = CharField(max_length=32)
    channels = CharField(max_length=8)

    class Meta:
        indexes = ((("user", "kind"), True),)


class Notice(BaseModel):
    """One message to one person by one channel about one event (the outbox)."""
    kind = CharField(max_length=32)
    recipient = ForeignKeyField(User, on_delete="CASCADE")
    channel = CharField(max_length=8)
    robot = ForeignKeyField(Robot, null=True, on_delete="SET NULL")
    subject = CharField(max_length=255)
    body = TextField()
    link = CharField(max_length=500, default="")
    state = CharField(max_length=8, default="pending")
    tries = IntegerField(default=0)
    next_attempt_at = DateTimeField(default=utcnow)
    claimed_at = DateTimeField(null=True)
    last_error = TextField(default="")
    answer = TextField(default="")
    sent_at = DateTimeField(null=True)
    # The same for every try and resend of this notice (the e-mail's Message-ID).
    delivery_key = CharField(max_length=64)
    about_type = CharField(max_length=64, default="")
    about_id = CharField(max_length=64, default="")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("state", "next_attempt_at"), False),
                   (("about_type", "about_id"), False),
                   (("recipient", "created_at"), False))

    def __str__(self):
        return self.subject

    @property
    def state_label(self):
        return STATES.get(self.state, self.state)

    @property
    def channel_label(self):
        return CHANNELS.get(self.channel, self.channel)

    @property
    def kind_label(self):
        return KINDS.get(self.kind, self.kind)


# --- Secrets ------------------------------------------------------------------

def _fernet():
    """Fernet with a key derived from SECRET_KEY (HKDF-SHA256): the same key in every
    process that shares the secret, and none without it."""
    secret = current_app.config["SECRET_KEY"]
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"tierdesk robot webhooks").derive(
        secret.encode() if isinstance(secret, str) else secret)
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(text):
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token):
    """The stored text; DomainError when SECRET_KEY changed since it was stored."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise DomainError(_l("The robot's address cannot be read with this SECRET_KEY: "
                             "save the robot again.")) from error


def url_hint(url):
    """What the pages show of a webhook address: its host and its last 4 characters."""
    return f"{urlsplit(url).hostname or '?'} …{url[-4:]}"


# --- Webhook addresses ----------------------------------------------------------

def extra_hosts():
    """The hosts WEBHOOK_ALLOWED_HOSTS adds (comma-separated), lower-case."""
    listed = current_app.config.get("WEBHOOK_ALLOWED_HOSTS") or ""
    return {h.strip().lower() for h in listed.split(",") if h.strip()}


def webhook_refusal(platform, url):
    """Why `url` may not be a `platform` robot's webhook, or None: https to the
    platform's own hosts, or any scheme of http(s) to a host WEBHOOK_ALLOWED_HOSTS
    lists (a local receiver in tests)."""
    if platform not in PLATFORMS:
        return _l("Unknown robot platform.")
    try:
        parts = urlsplit((url or "").strip())
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 — raises ValueError for a port that is no number
    except ValueError:
        return _l("This is not a web address.")
    if parts.scheme not in ("http", "https") or not host:
        return _l("This is not a web address.")
    if parts.username or parts.password:
        return _l("A webhook address carries no user name or password.")
    if host in extra_hosts():
        return None
    if host not in PLATFORM_HOSTS[platform]:
        return _l("Robots send only to %(hosts)s (WEBHOOK_ALLOWED_HOSTS adds others).",
                  hosts=", ".join(PLATFORM_HOSTS[platform]))
    if parts.scheme != "https":
        return _l("A webhook address must start with https://.")
    return None


def save_robot(branch, user, platform, url=None, secret=None, active=True):
    """Create or change the robot of `branch` (None: company-wide), audited; returns it.
    An empty `url` or `secret` keeps the stored one. Raises DomainError for a missing
    or refused address."""
    with write_transaction():
        robot = Robot.get_or_none(Robot.branch.is_null() if branch is None
                                  else Robot.branch == branch)
        url = (url or "").strip()
        if not url and robot is None:
            raise DomainError(_l("Give the robot's webhook address."))
        if url or (robot and robot.platform != platform):
            refusal = webhook_refusal(platform, url or robot.url)
            if refusal:
                raise DomainError(refusal)
        before = robot.audit_dict() if robot else None
        if robot is None:
            robot = Robot(branch=branch)
        robot.platform = platform
        if url:
            robot.url_encrypted, robot.url_hint = encrypt(url), url_hint(url)
        if secret:
            robot.secret_encrypted = encrypt(secret.strip())
        robot.active = active
        robot.updated_by, robot.updated_at = user, utcnow()
        robot.save()
        audit("robot_saved", robot, actor=user, before=before, after=robot.audit_dict())
    return robot


def active_robots():
    """{branch id (None: the company-wide one): robot} of the active robots."""
    return {r.branch_id: r for r in Robot.select().where(Robot.active)}


def robot_for(branch_id, robots=None):
    """The active robot of `branch_id`, else the company-wide one, else None; from
    `robots` (active_robots()) when given."""
    robots = active_robots() if robots is None else robots
    return robots.get(branch_id) if branch_id in robots else robots.get(None)


# --- Preferences ------------------------------------------------------------------

def channels_of(user, kind):
    """The channels `user` chose for `kind`: "both", "email", "robot" or "off"."""
    chosen = (NoticePreference.select(NoticePreference.channels)
              .where(NoticePreference.user == user.id, NoticePreference.kind == kind).scalar())
    return chosen or DEFAULT_CHANNELS.get(kind, "both")


def save_preferences(user, choices):
    """Store the user's channels per kind ({kind: channels}), audited."""
    with write_transaction():
        before = {kind: channels_of(user, kind) for kind in choices}
        for kind, chosen in choices.items():
            if kind not in KINDS or chosen not in CHANNEL_CHOICES:
                raise DomainError(_l("Unknown choice of notice."))
            (NoticePreference.insert(user=user.id, kind=kind, channels=chosen)
             .on_conflict(conflict_target=[NoticePreference.user, NoticePreference.kind],
                          update={NoticePreference.channels: chosen}).execute())
        audit("notice_preferences", user, actor=user, before=before, after=choices)


# --- Writing notices ---------------------------------------------------------------

def absolute_link(path):
    """`path` under PUBLIC_URL (never the request's Host); the path alone without it."""
    if not path or path.startswith(("http://", "https://")):
        return path or ""
    base = (current_app.config.get("PUBLIC_URL") or "").rstrip("/")
    if not base:
        current_app.logger.warning("PUBLIC_URL is not set: notices link to %s without the "
                                   "address people reach Tierdesk at", path)
    return f"{base}{path}"


@functools.lru_cache(maxsize=16)
def _parsed_locale(language):
    """The Locale of an identifier, parsed once per process (Babel's parse takes about
    half a millisecond)."""
    return Locale.parse(language)


def _in_language(language, *texts):
    """`texts` rendered in `language`. Forcing a locale reloads the catalog (about a
    millisecond), so only when the current one differs. Locales are compared, not their
    spellings: a user's stored "zh_CN" is the current locale "zh_Hans_CN"."""
    wanted, current = _parsed_locale(language), get_locale()
    if current == wanted:
        return [str(t) for t in texts]
    with force_locale(wanted):
        return [str(t) for t in texts]


def notify(kind, recipient, subject, body, link, about=None, branch_id=None, cache=None):
    """Write the notices of one event for `recipient`, one per channel they chose for
    `kind`, inside the caller's transaction; returns the ids of the rows written.

    `subject` and `body` may be lazy translations: they are rendered in the recipient's
    language. `link` is a path (made absolute from PUBLIC_URL) or an absolute address.
    `about` is the record that caused it (a model instance, or (type, id)). The robot
    is the branch's (`branch_id`, else the recipient's), else the company-wide one. A
    channel the person cannot be reached by (no address, no robot, no SMTP_HOST) is
    skipped. `cache`
    (a dict) keeps the choices and robots it looked up, for many notices in one
    transaction (a cycle's publication). Raises RuntimeError outside a transaction:
    each row would commit by itself, whether or not the change does.
    """
    if not db.in_transaction():
        raise RuntimeError("notify() writes inside the transaction of the change it tells of")
    cache = {} if cache is None else cache
    if ("channels", recipient.id, kind) not in cache:
        cache["channels", recipient.id, kind] = channels_of(recipient, kind)
    chosen = cache["channels", recipient.id, kind]
    if chosen == "off":
        return []
    about_type, about_id = "", ""
    if isinstance(about, tuple):
        about_type, about_id = about
    elif about is not None:
        about_type, about_id = about._meta.table_name, about._pk
    rows = []
    # No mail server configured (the demo, say): no e-mail to fail five times.
    if chosen in ("email", "both") and recipient.email and current_app.config.get("SMTP_HOST"):
        rows.append(dict(channel="email", robot=None))
    if chosen in ("robot", "both"):
        if "robots" not in cache:  # read once for all the branches of one change
            cache["robots"] = active_robots()
        robot = robot_for(branch_id or recipient.branch_id, cache["robots"])
        if robot is not None:
            rows.append(dict(channel="robot", robot=robot.id))
    if not rows:  # reachable by no channel chosen: nothing to write (or to render)
        return []
    subject, body = _in_language(recipient.language or "zh_CN", subject, body)
    now = utcnow()
    link = absolute_link(link)[:500]
    return [Notice.insert(
        kind=kind, recipient=recipient.id, subject=subject[:255], body=body, link=link,
        state="pending", next_attempt_at=now, delivery_key=secrets.token_hex(16),
        about_type=about_type, about_id=str(about_id), created_at=now, **row).execute()
        for row in rows]


# --- Delivery bookkeeping (the worker's side) ------------------------------------

def due_ids(limit=100, now=None):
    """Ids of pending notices whose time has come, oldest first."""
    now = now or utcnow()
    return [n for (n,) in Notice.select(Notice.id).where(
        Notice.state == "pending", Notice.next_attempt_at <= now)
        .order_by(Notice.next_attempt_at, Notice.id).limit(limit).tuples()]


def claim(notice_id, now=None):
    """Take a pending, due notice for sending: True for exactly one caller however many
    try at once (a conditional UPDATE, checked by its row count), committed at once."""
    now = now or utcnow()
    with db.atomic():
        taken = (Notice.update(state="sending", tries=Notice.tries + 1, claimed_at=now)
                 .where(Notice.id == notice_id, Notice.state == "pending",
                        Notice.next_attempt_at <= now).execute())
    return taken == 1


def mark_sent(notice_id, answer=""):
    """The claimed notice was delivered."""
    with db.atomic():
        Notice.update(state="sent", sent_at=utcnow(), answer=str(answer)[:1000],
                      last_error="").where(Notice.id == notice_id,
                                           Notice.state == "sending").execute()


def retry_delay(tries, base=None):
    """How long to wait after the `tries`-th failed try: base, 4×, 16×, … seconds."""
    base = current_app.config.get("NOTICE_RETRY_SECONDS", RETRY_SECONDS) if base is None \
        else base
    return datetime.timedelta(seconds=base * 4 ** max(tries - 1, 0))


def mark_attempt_failed(notice_id, error):
    """The claimed notice's try failed: pending again after a growing delay, or failed
    for good once it had MAX_TRIES tries. Returns the new state."""
    most = current_app.config.get("NOTICE_MAX_TRIES", MAX_TRIES)
    with write_transaction():  # reads, then writes
        notice = Notice.get_by_id(notice_id)
        if notice.state != "sending":
            return notice.state
        state = "failed" if notice.tries >= most else "pending"
        Notice.update(state=state, last_error=str(error)[:1000],
                      next_attempt_at=utcnow() + retry_delay(notice.tries)).where(
            Notice.id == notice_id, Notice.state == "sending").execute()
    return state


INTERRUPTED = ("The worker stopped while sending: the notice may or may not have been "
               "delivered. Check with the recipient before resending.")


def sweep_interrupted(now=None):
    """Mark failed the notices whose claim is older than the lease (their worker
    stopped between claiming and marking; see the module's docstring). Returns how
    many."""
    now = now or utcnow()
    lease = datetime.timedelta(seconds=current_app.config.get("NOTICE_LEASE_SECONDS",
                                                              LEASE_SECONDS))
    with db.atomic():
        return (Notice.update(state="failed", last_error=INTERRUPTED)
                .where(Notice.state == "sending", Notice.claimed_at < now - lease).execute())


def resend(notice_id, user):
    """Put a failed notice back in the queue, now, audited. Its delivery key stays (an
    e-mail keeps its Message-ID). Raises DomainError for a notice that has not failed."""
    with write_transaction():
        notice = Notice.get_or_none(Notice.id == notice_id)
        if notice is None or notice.state != "failed":
            raise DomainError(_l("Only a failed notice can be sent again."))
        Notice.update(state="pending", tries=0, next_attempt_at=utcnow()).where(
            Notice.id == notice_id, Notice.state == "failed").execute()
        audit("notice_resent", notice, actor=user,
              before={"state": "failed", "last_error": notice.last_error},
              after={"state": "pending", "recipient": notice.recipient_id,
                     "channel": notice.channel})
    return notice


# --- Reading ----------------------------------------------------------------------

def _with_recipient():
    return (Notice.select(Notice, User).join(User, JOIN.INNER,
                                             on=(Notice.recipient == User.id)))


def failed_notices(limit=200):
    """Failed notices, newest first, with their recipient."""
    return list(_with_recipient().where(Notice.state == "failed")
                .order_by(Notice.created_at.desc(), Notice.id.desc()).limit(limit))


def unreachable_users():
    """Active users whom no notice can reach: no e-mail address (or no mail server),
    and no active robot for their branch nor a company-wide one (or every kind turned
    off), by name."""
    mail = bool(current_app.config.get("SMTP_HOST"))
    robots = {r.branch_id for r in Robot.select(Robot.branch).where(Robot.active)}
    people = User.select().where(User.active).order_by(User.username)
    silenced = {u for (u,) in NoticePreference.select(NoticePreference.user).where(
        NoticePreference.channels == "off").tuples()}
    found = []
    for user in people:
        by_robot = None in robots or user.branch_id in robots
        if not (mail and user.email) and not by_robot:
            found.append(user)
        elif user.id in silenced and all(channels_of(user, kind) == "off"
                                         for kind in KINDS if kind != "test"):
            found.append(user)
    return found


def notices_about(obj):
    """The notices a record caused, oldest first, with their recipient: who was told
    by which channel, and when."""
    return list(_with_recipient().where(Notice.about_type == obj._meta.table_name,
                                        Notice.about_id == str(obj._pk))
                .order_by(Notice.created_at, Notice.id))


def last_notices(user, limit=20):
    """The user's own latest notices, newest first."""
    return list(Notice.select().where(Notice.recipient == user.id)
                .order_by(Notice.created_at.desc(), Notice.id.desc()).limit(limit))
