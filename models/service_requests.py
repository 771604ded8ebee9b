"""Service requests (服务请求): a customer's complaint, enquiry or after-sales request,
answered within the response time its tier's policy promises, and for a complaint a
follow-up call (回访) with a satisfaction score once it is resolved.

The response clock runs from `received_at` until the request is resolved: a request
still new or in progress past `due_at` is breached. The due time comes from the tier
the customer held on the day the request was received and that tier's policy in force
that day (response hours: calendar hours, or only the company's working hours when it
has set them, WorkingHours). The follow-up of a resolved
complaint is due the policy's contact interval (`contact_days`) after it was resolved.
Above customers.py, tiers.py and notices.py.
"""
import datetime
from collections import namedtuple

from flask_babel import ngettext
from peewee import (
    JOIN,
    SQL,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
    fn,
)

from i18n import company_zone
from i18n import lazy_gettext as _l

from .audit import audit
from .base import BaseModel, DomainError, utcnow, write_transaction
from .customers import Activity, Customer, TierHistory, normalise_query, search_condition
from .notices import notify
from .people import Branch, User, scoped_to_branch
from .tiers import Tier, current_policy

KINDS = {
    "complaint": _l("Complaint"),
    "enquiry": _l("Enquiry"),
    "after_sales": _l("After-sales"),
    "other": _l("Other"),
}
CHANNELS = {
    "phone": _l("Phone"),
    "email": _l("E-mail"),
    "visit": _l("Visit"),
    "wechat": _l("WeChat"),
    "other": _l("Other"),
}
STATUSES = {
    "new": _l("New"),
    "in_progress": _l("In progress"),
    "resolved": _l("Resolved"),
    "closed": _l("Closed"),
}
OPEN = ("new", "in_progress")
# Where each status may go: started, resolved (resolution text required), reopened,
# closed (a complaint only after its follow-up call).
TRANSITIONS = {
    "new": ("in_progress", "resolved"),
    "in_progress": ("resolved",),
    "resolved": ("in_progress", "closed"),
    "closed": (),
}
# What the buttons say for each move.
MOVE_LABELS = {
    "in_progress": _l("Start work"),
    "resolved": _l("Resolve"),
    "closed": _l("Close"),
}
REOPEN_LABEL = _l("Reopen")
# The response clock's states.
TIMER_STATES = {
    "on_time": _l("On time"),
    "warning": _l("Due soon"),
    "breached": _l("Overdue"),
    "met": _l("Answered in time"),
    "late": _l("Answered late"),
    "no_limit": _l("No response time"),
}
# The share of the response time gone at which a request shows a warning.
WARNING_SHARE = 0.8
SATISFACTION = range(1, 6)
# A receipt time this far ahead of the clock is a typing error, not a skewed clock.
FUTURE_SLACK = datetime.timedelta(minutes=5)
DESCRIPTION_MAX = 2000


def local_date(utc_value):
    """The company's calendar date of a naive UTC time."""
    return utc_value.replace(tzinfo=datetime.UTC).astimezone(company_zone()).date()


def from_local(value):
    """A naive time on the company's clock as naive UTC (the tables' clock)."""
    return value.replace(tzinfo=company_zone()).astimezone(datetime.UTC).replace(tzinfo=None)


# --- The company's working hours ----------------------------------------------------

# Python's weekday numbers (Monday 0).
WEEKDAYS = {0: _l("Monday"), 1: _l("Tuesday"), 2: _l("Wednesday"), 3: _l("Thursday"),
            4: _l("Friday"), 5: _l("Saturday"), 6: _l("Sunday")}

# The working week a response clock counts: weekdays and a daily window, in minutes
# after midnight on the company's clock (i18n.company_zone()).
Schedule = namedtuple("Schedule", "days starts ends")


# The working hours' one row.
SETTING_ID = 1


class WorkingHours(BaseModel):
    """The company's working hours (工作时间): one row while set, and then response times
    count only these hours; none, and they count calendar hours."""
    days = CharField(max_length=20)  # weekday numbers, "0,1,2,3,4" for Monday to Friday
    starts = IntegerField()  # minutes after midnight, company time
    ends = IntegerField()
    updated_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    updated_at = DateTimeField(default=utcnow)

    @property
    def schedule(self):
        return Schedule(tuple(int(d) for d in self.days.split(",")), self.starts, self.ends)

    def audit_dict(self):
        return {"days": self.days, "starts": clock_text(self.starts),
                "ends": clock_text(self.ends)}


def clock_text(minutes):
    """"09:00" for 540 minutes after midnight."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def working_schedule():
    """The company's Schedule, or None when response times count calendar hours."""
    row = WorkingHours.get_or_none(WorkingHours.id == SETTING_ID)
    return row.schedule if row else None


def add_working_time(start, span, schedule, zone):
    """The naive UTC time `span` (a timedelta) of working time after `start` (naive
    UTC), counting only `schedule`'s days and daily window on the clock of `zone`:
    time outside the window (a night, a weekend) does not count, and a clock started
    outside it starts at the next opening. A span that ends exactly at a closing time
    ends then, not at the next opening."""
    moment = start.replace(tzinfo=datetime.UTC).astimezone(zone).replace(tzinfo=None)
    day, left = moment.date(), span
    while True:
        if day.weekday() in schedule.days:
            midnight = datetime.datetime.combine(day, datetime.time())
            opens = midnight + datetime.timedelta(minutes=schedule.starts)
            closes = midnight + datetime.timedelta(minutes=schedule.ends)
            begin = max(moment, opens)
            if begin < closes:
                if begin + left <= closes:
                    return (begin + left).replace(tzinfo=zone).astimezone(
                        datetime.UTC).replace(tzinfo=None)
                left -= closes - begin
        day += datetime.timedelta(days=1)
        moment = datetime.datetime.combine(day, datetime.time())


def save_working_hours(user, days, starts, ends):
    """Set the company's working hours, audited: `days` weekday numbers (Monday 0),
    `starts` and `ends` datetime.time on the company's clock. Requests logged from now
    on count their response time in these hours. Raises DomainError, saving nothing,
    with no working day, a missing time, or a day that ends before it starts."""
    days = sorted({int(d) for d in days or ()})
    if not days or any(d not in WEEKDAYS for d in days):
        raise DomainError(_l("Choose at least one working day."))
    if starts is None or ends is None:
        raise DomainError(_l("Give the time the working day starts and ends."))
    starts, ends = starts.hour * 60 + starts.minute, ends.hour * 60 + ends.minute
    if ends <= starts:
        raise DomainError(_l("The working day must end after it starts."))
    with write_transaction():
        row = WorkingHours.get_or_none(WorkingHours.id == SETTING_ID)
        before = row.audit_dict() if row else None
        creating = row is None
        row = row or WorkingHours(id=SETTING_ID)
        row.days, row.starts, row.ends = ",".join(map(str, days)), starts, ends
        row.updated_by, row.updated_at = user.id, utcnow()
        row.save(force_insert=creating)  # one row: a second admin at once clashes on it
        audit("working_hours_set", row, actor=user, before=before, after=row.audit_dict())
    return row


def clear_working_hours(user):
    """Count response times in calendar hours again, audited (nothing to do when they
    count so already)."""
    with write_transaction():
        row = WorkingHours.get_or_none(WorkingHours.id == SETTING_ID)
        if row is None:
            return
        audit("working_hours_cleared", row, actor=user, before=row.audit_dict())
        row.delete_instance()


class ServiceRequest(BaseModel):
    """One complaint, enquiry or after-sales request of one customer."""
    customer = ForeignKeyField(Customer, backref="service_requests", on_delete="CASCADE")
    kind = CharField(max_length=16)
    channel = CharField(max_length=16)
    description = TextField()
    received_at = DateTimeField()
    owner = ForeignKeyField(User, null=True, on_delete="SET NULL")
    status = CharField(max_length=16, default="new")
    resolution = TextField(default="")
    # The tier held when the request came in, its promised hours, and the clock's marks.
    tier = ForeignKeyField(Tier, null=True, on_delete="SET NULL")
    response_hours = IntegerField(null=True)
    warn_at = DateTimeField(null=True)
    due_at = DateTimeField(null=True)
    resolved_at = DateTimeField(null=True)
    closed_at = DateTimeField(null=True)
    # Kept by database triggers (migration 26) on every write of a request and every
    # move of its customer to another branch: the customer's branch, and the due time
    # while the request is open (NULL once resolved or closed), so that a branch's
    # requests and the open ones past due are each one range of an index.
    branch = IntegerField(null=True, column_name="branch_id")
    open_due_at = DateTimeField(null=True)
    # Set in the transaction that writes the breach notices: they go out once.
    breach_notified_at = DateTimeField(null=True)
    # The follow-up call (回访) of a resolved complaint.
    follow_up_due_at = DateTimeField(null=True)
    followed_up_at = DateTimeField(null=True)
    followed_up_by = ForeignKeyField(User, null=True, on_delete="SET NULL",
                                     backref="follow_ups")
    satisfaction = IntegerField(null=True)
    follow_up_note = TextField(default="")
    created_by = ForeignKeyField(User, null=True, on_delete="SET NULL",
                                 backref="service_requests_logged")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("status", "due_at"), False), (("customer", "received_at"), False),
                   (("followed_up_at",), False), (("received_at",), False))

    @classmethod
    def visible_to(cls, user):
        """Requests of the customers `user` may see (their branch's when branch-scoped),
        without joining the customers."""
        return scoped_to_branch(cls.select(), cls.branch, user)

    @property
    def kind_label(self):
        return KINDS.get(self.kind, self.kind)

    @property
    def channel_label(self):
        return CHANNELS.get(self.channel, self.channel)

    @property
    def status_label(self):
        return STATUSES.get(self.status, self.status)

    @property
    def is_open(self):
        return self.status in OPEN

    @property
    def needs_follow_up(self):
        """A resolved (or closed) complaint whose follow-up call is not recorded yet."""
        return (self.kind == "complaint" and self.status in ("resolved", "closed")
                and self.followed_up_at is None)

    def moves(self):
        """The statuses this request may move to now."""
        return TRANSITIONS.get(self.status, ())

    def audit_dict(self):
        return {"customer": self.customer_id, "kind": self.kind, "channel": self.channel,
                "description": self.description, "received_at": self.received_at,
                "owner": self.owner_id, "status": self.status, "resolution": self.resolution,
                "tier": self.tier_id, "response_hours": self.response_hours,
                "due_at": self.due_at, "satisfaction": self.satisfaction,
                "follow_up_note": self.follow_up_note}


# --- The response clock ------------------------------------------------------------

Timer = namedtuple("Timer", "state minutes")  # minutes: left (+) or past due (-)


def timer(request, now=None):
    """The state of a request's response clock: "on_time", "warning" (80 % of the time
    gone), "breached" (open past due), "met" or "late" (resolved before or after the due
    time), or "no_limit" (its tier promised no response time); with the minutes left
    (negative: past due) while it is open."""
    now = now or utcnow()
    if request.due_at is None:
        return Timer("no_limit", None)
    if request.status not in OPEN:
        done = request.resolved_at or request.closed_at or now
        return Timer("met" if done <= request.due_at else "late", None)
    minutes = int((request.due_at - now).total_seconds() // 60)
    if now >= request.due_at:
        return Timer("breached", minutes)
    if request.warn_at is not None and now >= request.warn_at:
        return Timer("warning", minutes)
    return Timer("on_time", minutes)


def countdown(minutes):
    """"还剩 5 小时" / "已超时 3 小时": the time left, or past due, in whole hours (in
    minutes under an hour)."""
    if minutes is None:
        return ""
    span = abs(minutes)
    hours = span // 60
    if minutes >= 0:
        return (ngettext("%(num)s hour left", "%(num)s hours left", hours) if hours else
                ngettext("%(num)s minute left", "%(num)s minutes left", span))
    return (ngettext("%(num)s hour overdue", "%(num)s hours overdue", hours) if hours else
            ngettext("%(num)s minute overdue", "%(num)s minutes overdue", span))


def tier_on(customer, day):
    """The tier `customer` held on `day`: its tier history's latest entry effective by
    then, else its tier now (a customer graded before the history began)."""
    held = (TierHistory.select(TierHistory.tier).where(TierHistory.customer == customer.id,
                                                      TierHistory.effective_on <= day)
            .order_by(TierHistory.effective_on.desc(), TierHistory.id.desc()).first())
    tier_id = held.tier_id if held else customer.tier_id
    return Tier.get_or_none(Tier.id == tier_id) if tier_id else None


def response_terms(customer, received_at):
    """(tier, policy, response hours, warn at, due at) for a request of `customer`
    received at `received_at` (naive UTC): the tier held on the company's date of
    receipt, its policy in force that day, and the hours it promises (None, and no
    due time, when it promises none). The hours, and the warning's 80 % of them, are
    calendar hours, or working hours when the company has set them."""
    day = local_date(received_at)
    tier = tier_on(customer, day)
    policy = current_policy(tier, day) if tier else None
    hours = policy.response_hours if policy else None
    if not hours:
        return tier, policy, None, None, None
    span = datetime.timedelta(hours=hours)
    schedule = working_schedule()
    if schedule is None:
        return tier, policy, hours, received_at + span * WARNING_SHARE, received_at + span
    zone = company_zone()
    return (tier, policy, hours, add_working_time(received_at, span * WARNING_SHARE,
                                                  schedule, zone),
            add_working_time(received_at, span, schedule, zone))


# --- Writing -------------------------------------------------------------------------

def _text(value, message, limit=DESCRIPTION_MAX):
    text = (value or "").strip()
    if not text:
        raise DomainError(message)
    if len(text) > limit:
        raise DomainError(_l("Keep it under %(n)s characters.", n=limit))
    return text


def _check_owner(owner, customer):
    """The owner must be an active user who may see the customer."""
    if owner is None:
        return
    if not owner.active or (owner.is_branch_scoped and owner.branch_id != customer.branch_id):
        raise DomainError(_l("The owner must be an active colleague who serves this "
                             "customer's branch."))


def log_request(customer, user, *, kind, channel, description, received_at, owner=None,
                now=None):
    """A new request of `customer`, logged by `user`, audited; its due time from the
    tier's policy (see response_terms). `received_at` is naive UTC. Raises DomainError,
    saving nothing, for an unknown kind or channel, an empty description, a receipt in
    the future or an owner who cannot serve the customer."""
    now = now or utcnow()
    if kind not in KINDS:
        raise DomainError(_l("Choose what kind of request it is."))
    if channel not in CHANNELS:
        raise DomainError(_l("Choose how the request came in."))
    description = _text(description, _l("Describe the request."))
    if received_at is None:
        raise DomainError(_l("Give the time the request was received."))
    if received_at > now + FUTURE_SLACK:
        raise DomainError(_l("The request cannot have been received in the future."))
    _check_owner(owner, customer)
    with write_transaction():
        tier, _policy, hours, warn_at, due_at = response_terms(customer, received_at)
        request = ServiceRequest.create(
            customer=customer.id, kind=kind, channel=channel, description=description,
            received_at=received_at, owner=owner.id if owner else None, status="new",
            tier=tier.id if tier else None, response_hours=hours, warn_at=warn_at,
            due_at=due_at, branch=customer.branch_id, open_due_at=due_at,
            created_by=user.id if user else None, created_at=now, updated_at=now)
        audit("service_request_logged", request, actor=user, after=request.audit_dict())
        if kind == "complaint":
            _on_timeline(request, user, "complaint", received_at,
                         _l("Complaint (service request %(number)s): %(text)s",
                            number=request.id, text=description))
    return request


def _on_timeline(request, user, kind, at, notes):
    """The request's complaint or follow-up call on the customer's activity timeline
    (a follow-up call is a call: it counts as the last contact), audited."""
    activity = Activity.create(customer=request.customer_id, user=user.id if user else None,
                               kind=kind, occurred_on=local_date(at), notes=str(notes))
    audit("activity_logged", activity, actor=user, after=activity.audit_dict())


def move_request(request, user, to, resolution="", now=None):
    """Move `request` to status `to`, audited: start work, resolve (with its resolution
    text), reopen a resolved one, close a resolved one. Resolving a complaint sets its
    follow-up's due time. Raises DomainError, saving nothing, for a move the status does
    not allow, a resolution without text, or closing a complaint before its follow-up
    call."""
    now = now or utcnow()
    with write_transaction():
        request = ServiceRequest.get_by_id(request.id)  # as it stands, not as the page saw it
        if to not in request.moves():
            raise DomainError(_l("A request that is %(status)s cannot become %(to)s.",
                                 status=request.status_label,
                                 to=STATUSES.get(to, _l("that"))))
        before = request.audit_dict()
        if to == "resolved":
            request.resolution = _text(resolution, _l("Say how the request was resolved."))
            request.resolved_at = now
            if request.kind == "complaint":
                request.follow_up_due_at = now + datetime.timedelta(
                    days=follow_up_days(request))
        elif to == "in_progress" and request.status == "resolved":  # reopened
            request.resolved_at = None
            request.follow_up_due_at = None
        elif to == "closed":
            if request.kind == "complaint" and request.followed_up_at is None:
                raise DomainError(_l("A complaint is closed after its follow-up call: "
                                     "record the customer's satisfaction first."))
            request.closed_at = now
        request.status = to
        request.open_due_at = request.due_at if to in OPEN else None  # as the trigger keeps it
        request.updated_at = now
        request.save()
        audit("service_request_moved", request, actor=user, before=before,
              after=request.audit_dict())
    return request


# The follow-up's interval when the policy names no contact interval.
DEFAULT_FOLLOW_UP_DAYS = 7


def follow_up_days(request):
    """Days after resolving within which a complaint's follow-up call is due: the contact
    interval (`contact_days`) of the policy that set its response time, else a week."""
    if request.tier_id is None:
        return DEFAULT_FOLLOW_UP_DAYS
    policy = current_policy(request.tier_id, local_date(request.received_at))
    return (policy.contact_days if policy and policy.contact_days
            else DEFAULT_FOLLOW_UP_DAYS)


def record_follow_up(request, user, satisfaction, note="", now=None):
    """Record the follow-up call of a resolved complaint with the customer's satisfaction
    (1–5) and a note, audited. Raises DomainError, saving nothing, for a request that is
    no resolved complaint, one already followed up, or a score outside 1–5."""
    now = now or utcnow()
    if satisfaction not in SATISFACTION:
        raise DomainError(_l("Satisfaction is a score from 1 to 5."))
    note = (note or "").strip()
    if len(note) > DESCRIPTION_MAX:
        raise DomainError(_l("Keep it under %(n)s characters.", n=DESCRIPTION_MAX))
    with write_transaction():
        request = ServiceRequest.get_by_id(request.id)
        if request.kind != "complaint" or request.status not in ("resolved", "closed"):
            raise DomainError(_l("A follow-up call is made once a complaint is resolved."))
        if request.followed_up_at is not None:
            raise DomainError(_l("The follow-up call is recorded already."))
        before = request.audit_dict()
        request.satisfaction, request.follow_up_note = satisfaction, note
        request.followed_up_at, request.followed_up_by = now, user.id
        request.updated_at = now
        request.save()
        audit("service_request_followed_up", request, actor=user, before=before,
              after=request.audit_dict())
        _on_timeline(request, user, "call", now, _l(
            "Follow-up call (service request %(number)s), satisfaction %(score)s/5: %(note)s",
            number=request.id, score=satisfaction, note=note) if note else _l(
            "Follow-up call (service request %(number)s), satisfaction %(score)s/5",
            number=request.id, score=satisfaction))
    return request


# --- Reading -------------------------------------------------------------------------

def find_requests(user, status=None, kind=None, timer_state=None, branch_id=None, q="",
                  customer_id=None, now=None):
    """Requests visible to `user` matching the filters, newest first. `timer_state`
    "breached" or "warning" keeps the open ones past due or past 80 % of their time;
    `q` matches the customer's code, name or pinyin initials."""
    now = now or utcnow()
    query = ServiceRequest.visible_to(user)
    if status in STATUSES:
        query = query.where(ServiceRequest.status == status)
    if kind in KINDS:
        query = query.where(ServiceRequest.kind == kind)
    if timer_state == "breached":
        query = query.where(ServiceRequest.open_due_at <= now)
    elif timer_state == "warning":
        query = query.where(ServiceRequest.open_due_at > now, ServiceRequest.warn_at <= now)
    if branch_id:
        query = query.where(ServiceRequest.branch == branch_id)
    if customer_id:
        query = query.where(ServiceRequest.customer == customer_id)
    q = normalise_query(q)
    if q:  # only a search needs the customers joined
        query = (query.join(Customer, on=(ServiceRequest.customer == Customer.id))
                 .where(search_condition(q)))
    return query


# A row of request_rows(), made once (as the customer list's rows are): a page of model
# instances with their joined customer, branch and owner took a third of the page.
RequestRow = namedtuple("RequestRow", "id kind status received_at due_at warn_at resolved_at "
                                      "closed_at customer_id code name branch_name owner_id "
                                      "owner_name")


def request_rows(query):
    """The RequestRows of a find_requests() query, with the customer's code and name, its
    branch's name and the owner's, newest received first."""
    Owner, Shown = User.alias(), Customer.alias()  # a search has joined Customer already
    return (query.select(ServiceRequest.id, ServiceRequest.kind, ServiceRequest.status,
                         ServiceRequest.received_at, ServiceRequest.due_at,
                         ServiceRequest.warn_at, ServiceRequest.resolved_at,
                         ServiceRequest.closed_at, ServiceRequest.customer.alias("customer_id"),
                         Shown.code, Shown.name, Branch.name.alias("branch_name"),
                         ServiceRequest.owner.alias("owner_id"),
                         Owner.display_name.alias("owner_name"))
            .switch(ServiceRequest)
            .join(Shown, on=(ServiceRequest.customer == Shown.id))
            .switch(ServiceRequest).join(Branch, on=(ServiceRequest.branch == Branch.id))
            .switch(ServiceRequest).join(Owner, JOIN.LEFT_OUTER,
                                         on=(ServiceRequest.owner == Owner.id))
            .order_by(ServiceRequest.received_at.desc(), ServiceRequest.id.desc())
            .objects(RequestRow))


def of_customer(customer_id, limit=5):
    """(how many, the latest `limit`) of one customer's requests, for its page."""
    query = ServiceRequest.select().where(ServiceRequest.customer == customer_id)
    rows = list(query.order_by(ServiceRequest.received_at.desc(), ServiceRequest.id.desc())
                .limit(limit))
    return (len(rows) if len(rows) < limit else query.count()), rows


def breached(user, now=None, limit=None):
    """(count, first `limit` rows) of the open requests visible to `user` past their due
    time, longest overdue first: the compliance page's list."""
    query = find_requests(user, timer_state="breached", now=now)
    rows = (list(request_rows(query).order_by(ServiceRequest.open_due_at, ServiceRequest.id)
                 .limit(limit)) if limit else [])
    return query.count(), rows


def satisfaction_by(user, year, group):
    """[(key, follow-ups, average satisfaction, satisfied 4–5)] of the follow-up calls
    recorded in `year` (the company's calendar year) of requests visible to `user`,
    grouped by "tier" (the tier at receipt), "branch" or "owner", largest first. The
    key is the tier's, branch's or owner's id (None: none)."""
    start = from_local(datetime.datetime(year, 1, 1))
    end = from_local(datetime.datetime(year + 1, 1, 1))
    column = {"tier": ServiceRequest.tier, "branch": ServiceRequest.branch,
              "owner": ServiceRequest.owner}[group]
    satisfied = fn.SUM(SQL("CASE WHEN satisfaction >= 4 THEN 1 ELSE 0 END"))
    rows = (ServiceRequest.visible_to(user)
            .select(column.alias("key"), fn.COUNT(ServiceRequest.id),
                    fn.AVG(ServiceRequest.satisfaction), satisfied)
            .where(ServiceRequest.followed_up_at >= start, ServiceRequest.followed_up_at < end,
                   ServiceRequest.satisfaction.is_null(False))
            .group_by(column).tuples())
    found = [(key, count, float(average or 0), int(happy or 0))
             for key, count, average, happy in rows]
    return sorted(found, key=lambda r: (-r[1], r[0] or 0))


# --- Breach notices ------------------------------------------------------------------

def notify_breaches(now=None):
    """Tell the owner and the branch managers of each open request that went past its
    due time, once: the request is marked notified (a conditional UPDATE) in the same
    transaction as its notices, so a second run, or a second worker, writes none.
    Returns the ids of the requests told of."""
    now = now or utcnow()
    told = []
    candidates = [r.id for r in ServiceRequest.select(ServiceRequest.id).where(
        ServiceRequest.status.in_(OPEN), ServiceRequest.due_at <= now,
        ServiceRequest.breach_notified_at.is_null())]
    for request_id in candidates:
        with write_transaction():
            marked = (ServiceRequest.update(breach_notified_at=now)
                      .where(ServiceRequest.id == request_id,
                             ServiceRequest.breach_notified_at.is_null(),
                             ServiceRequest.status.in_(OPEN)).execute())
            if not marked:  # another run got there first, or it was resolved meanwhile
                continue
            request = ServiceRequest.get_by_id(request_id)
            customer = Customer.get_by_id(request.customer_id)
            people = {u.id: u for u in User.with_role("branch_manager").where(
                User.branch == customer.branch_id, User.active == True)}  # noqa: E712
            if request.owner_id:
                owner = User.get_or_none(User.id == request.owner_id, User.active == True)  # noqa: E712
                if owner:
                    people[owner.id] = owner
            for person in people.values():
                notify("service_breach", person,
                       _l("Service request overdue: %(customer)s", customer=customer.name),
                       _l("The %(kind)s of %(customer)s (%(code)s), received %(received)s, "
                          "was due within %(hours)s hours and is still not resolved.",
                          kind=request.kind_label, customer=customer.name, code=customer.code,
                          received=_LocalTime(request.received_at), hours=request.response_hours),
                       f"/service-requests/{request.id}", about=request,
                       branch_id=customer.branch_id)
            audit("service_request_breached", request, actor=None,
                  after={"due_at": request.due_at, "told": sorted(people)})
            told.append(request_id)
    return told


class _LocalTime:
    """A UTC time printed on the company's clock when the notice is rendered."""

    def __init__(self, value):
        self.value = value

    def __str__(self):
        local = self.value.replace(tzinfo=datetime.UTC).astimezone(company_zone())
        return local.strftime("%Y-%m-%d %H:%M")
