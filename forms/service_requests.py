"""Forms of service requests (服务请求): the list's filters, logging a request, moving it
on, its follow-up call, and the satisfaction page's year."""
import datetime
import unicodedata

from wtforms import (
    DateTimeLocalField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    TimeField,
    widgets,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from forms import Form, choices, chosen_id
from i18n import company_zone
from i18n import lazy_gettext as _l
from models import Branch, Customer, User
from models.people import managers_of
from models.service_requests import (
    CHANNELS,
    DESCRIPTION_MAX,
    KINDS,
    STATUSES,
    WEEKDAYS,
    clock_text,
    from_local,
)

ANY = ("", _l("All"))
TIMERS = {"breached": _l("Overdue"), "warning": _l("Due soon")}
SATISFACTION_LABELS = {"5": _l("5 · very satisfied"), "4": _l("4 · satisfied"),
                       "3": _l("3 · neutral"), "2": _l("2 · dissatisfied"),
                       "1": _l("1 · very dissatisfied")}


class ServiceRequestFilterForm(Form):
    """The list's search and filters, from the query string: no CSRF. The branch is
    offered only to users who see every branch."""
    class Meta:
        csrf = False

    q = StringField(_l("Search"), validators=[Optional(), Length(max=100)],
                    render_kw={"placeholder": _l("Customer code, name or pinyin initials"),
                               "autocomplete": "off", "type": "search"})
    status = SelectField(_l("Status"), choices=choices([ANY, *STATUSES.items()]),
                         validators=[Optional()])
    kind = SelectField(_l("Request kind"), choices=choices([ANY, *KINDS.items()]),
                       validators=[Optional()])
    timer = SelectField(_l("Response time"), choices=choices([ANY, *TIMERS.items()]),
                        validators=[Optional()])
    branch = SelectField(_l("Branch"), validators=[Optional()], coerce=str)
    page = IntegerField(default=1, validators=[Optional(), NumberRange(min=1, max=100000)])

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.branch_scoped = user.is_branch_scoped
        self.branch.choices = choices([ANY] + [(str(id_), name)
                                               for id_, name in Branch.names_for(user)])

    def _chosen(self, field):
        return field.data or None if not field.errors else None

    def filters(self):
        """The valid filters as keyword arguments of find_requests()."""
        return {
            "q": (self.q.data or "") if not self.q.errors else "",
            "status": self._chosen(self.status), "kind": self._chosen(self.kind),
            "timer_state": self._chosen(self.timer),
            "branch_id": None if self.branch_scoped else chosen_id(self.branch),
        }

    def current_page(self):
        return self.page.data if self.page.data and not self.page.errors else 1


def _nfkc(text):
    return unicodedata.normalize("NFKC", text or "").strip()


def now_on_company_clock():
    """Now on the company's clock, to the minute, naive (the form's default)."""
    return datetime.datetime.now(company_zone()).replace(tzinfo=None, second=0,
                                                         microsecond=0)


class ServiceRequestForm(Form):
    """A new request: its customer (by code, within the user's branch), kind, channel,
    when it came in (on the company's clock), owner and description."""
    customer_code = StringField(_l("Customer code"), filters=[_nfkc],
                                validators=[DataRequired(), Length(max=32)],
                                render_kw={"autocomplete": "off"})
    kind = SelectField(_l("Request kind"), choices=choices(KINDS), default="complaint")
    channel = SelectField(_l("Channel"), choices=choices(CHANNELS), default="phone")
    received_at = DateTimeLocalField(_l("Received at"), format="%Y-%m-%dT%H:%M",
                                     default=now_on_company_clock,
                                     validators=[DataRequired()])
    owner = SelectField(_l("Owner"), coerce=str, validators=[Optional()])
    description = TextAreaField(_l("What the customer asks or complains of"),
                                validators=[DataRequired(), Length(max=DESCRIPTION_MAX)],
                                render_kw={"rows": 4})

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.customer = None
        branch_ids = [id_ for id_, _name in Branch.names_for(user)]
        people = managers_of(branch_ids) if user.is_branch_scoped else \
            User.select().where(User.active).order_by(User.branch, User.display_name)
        self.owner.choices = choices([("", _l("— nobody yet —"))]
                                     + [(str(p.id), p.display_name) for p in people])

    def validate_customer_code(self, field):
        customer = Customer.visible_to(self.user).where(Customer.code == field.data).first()
        if customer is None:
            raise ValidationError(_l("No customer you may see has this code."))
        self.customer = customer

    def chosen_owner(self):
        owner_id = chosen_id(self.owner)
        return User.get_or_none(User.id == owner_id) if owner_id else None

    def values(self):
        """The form's data as keyword arguments of log_request()."""
        return {"kind": self.kind.data, "channel": self.channel.data,
                "description": self.description.data,
                "received_at": from_local(self.received_at.data),
                "owner": self.chosen_owner()}


class MoveRequestForm(Form):
    """Move a request on: start, resolve (with how), reopen, close."""
    to = SelectField(choices=choices([(k, k) for k in STATUSES]))
    resolution = TextAreaField(_l("How it was resolved"),
                               validators=[Optional(), Length(max=DESCRIPTION_MAX)],
                               render_kw={"rows": 3})


class FollowUpForm(Form):
    """The follow-up call of a resolved complaint."""
    satisfaction = SelectField(_l("Satisfaction"), choices=choices(SATISFACTION_LABELS),
                               validators=[DataRequired()])
    note = TextAreaField(_l("What the customer said"),
                         validators=[Optional(), Length(max=DESCRIPTION_MAX)],
                         render_kw={"rows": 2})

    def score(self):
        return int(self.satisfaction.data)


class SatisfactionFilterForm(Form):
    """The satisfaction page's year, from the query string."""
    class Meta:
        csrf = False

    year = IntegerField(_l("Year"), validators=[Optional(), NumberRange(min=2000, max=2100)])

    def chosen_year(self):
        if self.year.data and not self.year.errors:
            return self.year.data
        return now_on_company_clock().year


class WorkingHoursForm(Form):
    """How response times count: calendar hours, or only the working days and daily
    window given (the rules on them are save_working_hours()'s)."""
    counted = RadioField(_l("Response times count"), default="calendar", choices=choices([
        ("calendar", _l("Calendar hours, round the clock")),
        ("working", _l("Working hours only"))]), validators=[DataRequired()])
    days = SelectMultipleField(_l("Working days"), coerce=int,
                               choices=choices(WEEKDAYS),
                               widget=widgets.ListWidget(prefix_label=False),
                               option_widget=widgets.CheckboxInput())
    starts = TimeField(_l("The working day starts"), validators=[Optional()])
    ends = TimeField(_l("The working day ends"), validators=[Optional()])

    def fill(self, hours):
        """The form as `hours` (a WorkingHours row, or None: calendar hours) stand."""
        if hours is None:
            self.days.data = [0, 1, 2, 3, 4]
            self.starts.data = datetime.time(9)
            self.ends.data = datetime.time(18)
            return
        self.counted.data = "working"
        self.days.data = list(hours.schedule.days)
        self.starts.data = datetime.time.fromisoformat(clock_text(hours.starts))
        self.ends.data = datetime.time.fromisoformat(clock_text(hours.ends))
