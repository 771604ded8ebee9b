"""The weekly sales funnel (潜在客户管理系统): opportunities, their stage history,
the stage rules, staleness and the weekly rollover, and the sums the team's
tracking table and the conversion chart are drawn from.

Every move is one StageMove row holding the stage an opportunity entered and
the days it sat there: [moved_on, left_on). An opportunity still in its stage
has left_on = OPEN_END (a real date rather than NULL, so that an index serves
"what was open at the end of week W"). Won and lost are terminal: their rows
close on the day they open, since nothing "sits" in them; they count as
flows (won this week), never as a stock.
"""
import datetime
import unicodedata
from decimal import Decimal

from peewee import (
    SQL,
    BooleanField,
    Case,
    CharField,
    DateField,
    DateTimeField,
    DecimalField,
    ForeignKeyField,
    TextField,
    fn,
)

from i18n import lazy_gettext as _l

from .audit import audit
from .base import BaseModel, DomainError, as_date, raw_sql, utcnow, write_transaction
from .customers import Customer, save_customer
from .notices import notify
from .people import Branch, User, scoped_to_branch

STAGES = {
    "opportunity": _l("Opportunity"),
    "meeting": _l("First meeting booked"),
    "p25": _l("25%"),
    "p50": _l("50%"),
    "p90": _l("90%"),
    "won": _l("Won"),
    "lost": _l("Lost"),
}
# The way forward; lost sits beside it, reachable from any open stage.
LADDER = ["opportunity", "meeting", "p25", "p50", "p90", "won"]
OPEN_STAGES = LADDER[:-1]
TERMINAL = ("won", "lost")
# Stages an opportunity can go stale in: the rollover sends them back to the first.
STALE_STAGES = ("meeting", "p25", "p50", "p90")
OPEN_END = datetime.date(9999, 12, 31)
DEFAULT_CYCLE_DAYS = 28
MAX_AMOUNT = Decimal("999999999999.99")

# The five checks of the 50% stage, in the order the paper form asks them.
# The signing date is a check of its own: set, and inside the sales cycle.
CHECKS = {
    "decision_maker_met": _l("The decision maker was met"),
    "plan_fits_need": _l("The plan fits the need"),
    "budget_discussed": _l("The budget was discussed"),
    "signing_date": _l("A signing date inside the sales cycle was set"),
    "next_step_agreed": _l("The next step was agreed"),
}
CHECK_FLAGS = ("decision_maker_met", "plan_fits_need", "budget_discussed", "next_step_agreed")
MOVE_KINDS = {"create": _l("Added"), "move": _l("Moved"), "rollover": _l("Weekly rollover")}


class Opportunity(BaseModel):
    """A prospect worked through the funnel by its owner (销售机会)."""
    customer = ForeignKeyField(Customer, backref="opportunities", on_delete="RESTRICT")
    # The customer's branch, kept here so that scoping and the team table need no join.
    branch = ForeignKeyField(Branch, on_delete="RESTRICT")
    owner = ForeignKeyField(User, backref="opportunities", on_delete="RESTRICT")
    stage = CharField(max_length=16, default="opportunity")
    stage_entered_on = DateField()
    # Amounts in 元: 预收保费 premium received, 承保标保 standard premium.
    premium_received = DecimalField(max_digits=14, decimal_places=2, default=0)
    standard_premium = DecimalField(max_digits=14, decimal_places=2, default=0)
    expected_amount = DecimalField(max_digits=14, decimal_places=2, null=True)
    signing_date = DateField(null=True)
    decision_maker_met = BooleanField(default=False)
    plan_fits_need = BooleanField(default=False)
    budget_discussed = BooleanField(default=False)
    next_step_agreed = BooleanField(default=False)
    contract_signed = BooleanField(default=False)
    payment_received = BooleanField(default=False)
    lost_reason = TextField(default="")
    closed_on = DateField(null=True)
    created_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("branch", "stage"), False), (("owner", "stage"), False),
                   (("customer", "stage"), False))

    def __str__(self):
        return self.customer.name

    @classmethod
    def visible_to(cls, user):
        """Opportunities the user may see: a branch-scoped user sees only the branch."""
        return scoped_to_branch(cls.select(), cls.branch, user)

    @property
    def is_closed(self):
        return self.stage in TERMINAL

    def is_stale(self, cycle_days=None, on=None):
        """Sat in its stage longer than the owner's sales cycle."""
        if cycle_days is None:
            cycle_days = self.owner.sales_cycle_days or DEFAULT_CYCLE_DAYS
        return is_stale(self.stage, self.stage_entered_on, cycle_days, on)

    def missing_checks(self, on=None, cycle_days=None):
        """Labels of the 50% checks not recorded yet (empty when all five are in)."""
        if cycle_days is None:
            cycle_days = self.owner.sales_cycle_days or DEFAULT_CYCLE_DAYS
        on = on or datetime.date.today()
        missing = [CHECKS[name] for name in CHECK_FLAGS[:3] if not getattr(self, name)]
        if not signing_date_fits(self.signing_date, on, cycle_days):
            missing.append(CHECKS["signing_date"])
        if not self.next_step_agreed:
            missing.append(CHECKS["next_step_agreed"])
        return missing

    def can_change(self, user):
        """The owner and the branch's manager may change it; others read it (the move
        and close routes are the funnel roles', and this says the same)."""
        if self.owner_id == user.id:
            return True
        return user.has_role("branch_manager") and user.branch_id == self.branch_id

    def audit_dict(self):
        return {
            "customer": self.customer_id, "owner": self.owner_id, "stage": self.stage,
            "stage_entered_on": self.stage_entered_on,
            "premium_received": self.premium_received,
            "standard_premium": self.standard_premium,
            "expected_amount": self.expected_amount, "signing_date": self.signing_date,
            **{name: getattr(self, name) for name in CHECK_FLAGS},
            "contract_signed": self.contract_signed, "payment_received": self.payment_received,
            "lost_reason": self.lost_reason,
        }


class StageMove(BaseModel):
    """One step in an opportunity's history: who moved it from where to where, when,
    and how long it then sat there ([moved_on, left_on))."""
    opportunity = ForeignKeyField(Opportunity, backref="moves", on_delete="CASCADE")
    branch = ForeignKeyField(Branch, on_delete="RESTRICT")
    owner = ForeignKeyField(User, on_delete="RESTRICT")
    from_stage = CharField(max_length=16, null=True)
    to_stage = CharField(max_length=16)
    moved_on = DateField()
    left_on = DateField(default=OPEN_END)
    kind = CharField(max_length=16, default="move")
    # The amounts when it moved: a won row keeps what was booked.
    premium_received = DecimalField(max_digits=14, decimal_places=2, default=0)
    standard_premium = DecimalField(max_digits=14, decimal_places=2, default=0)
    # None for the weekly rollover, which nobody clicked.
    moved_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    moved_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("branch", "left_on", "moved_on"), False),
                   (("owner", "left_on", "moved_on"), False),
                   (("opportunity", "left_on"), False))

    @property
    def kind_label(self):
        return MOVE_KINDS.get(self.kind, self.kind)


# --- Rules ---------------------------------------------------------------------

def stage_label(code):
    return STAGES.get(code, code) if code else ""


def is_stale(stage, entered_on, cycle_days, on=None):
    """A stage other than the first and the closed ones, held longer than `cycle_days`."""
    if stage not in STALE_STAGES:
        return False
    return ((on or datetime.date.today()) - entered_on).days > (cycle_days or DEFAULT_CYCLE_DAYS)


def signing_date_fits(signing_date, on, cycle_days):
    """A signing date set, not past, and inside the sales cycle from `on`."""
    if signing_date is None:
        return False
    return on <= signing_date <= on + datetime.timedelta(days=cycle_days or DEFAULT_CYCLE_DAYS)


def check_amount(value, label):
    """The amount as a Decimal of 元; DomainError when negative, too large or no number."""
    if value is None or value == "":
        return None
    try:
        amount = Decimal(unicodedata.normalize("NFKC", str(value)).replace(",", "").strip())
    except ArithmeticError:
        raise DomainError(_l("%(field)s: enter an amount in 元, like 12000 or 12000.50.",
                             field=label)) from None
    if not amount.is_finite():
        raise DomainError(_l("%(field)s: enter an amount in 元, like 12000 or 12000.50.",
                             field=label))
    if amount < 0:
        raise DomainError(_l("%(field)s cannot be negative.", field=label))
    if amount > MAX_AMOUNT:
        raise DomainError(_l("%(field)s is too large.", field=label))
    return amount.quantize(Decimal("0.01"))


AMOUNT_LABELS = {
    "premium_received": _l("Premium received"),
    "standard_premium": _l("Standard premium"),
    "expected_amount": _l("Expected amount"),
}


def _check_entry(opportunity, to_stage, on):
    """Raise DomainError naming what is missing to enter `to_stage`."""
    if to_stage == "p50":
        missing = opportunity.missing_checks(on=on)
        if missing:
            raise DomainError(_l("50%% needs all five checks. Missing: %(missing)s.",
                                 missing="; ".join(str(m) for m in missing)))
    if to_stage == "p90":
        missing = []
        if not opportunity.contract_signed:
            missing.append(_l("the contract is signed"))
        if not opportunity.payment_received:
            missing.append(_l("the payment is received"))
        if missing:
            raise DomainError(_l("90%% needs the contract signed and the payment received. "
                                 "Missing: %(missing)s.",
                                 missing="; ".join(str(m) for m in missing)))


def _record_move(opportunity, to_stage, on, user, kind):
    """Close the current history row and open one for `to_stage` (in a transaction)."""
    StageMove.update(left_on=on).where(StageMove.opportunity == opportunity.id,
                                       StageMove.left_on == OPEN_END).execute()
    StageMove.create(opportunity=opportunity.id, branch=opportunity.branch_id,
                     owner=opportunity.owner_id, from_stage=opportunity.stage if kind != "create"
                     else None, to_stage=to_stage, moved_on=on,
                     left_on=on if to_stage in TERMINAL else OPEN_END, kind=kind,
                     premium_received=opportunity.premium_received or 0,
                     standard_premium=opportunity.standard_premium or 0,
                     moved_by=user.id if user else None)


def move(opportunity, user, to_stage, *, expected_stage=None, on=None, lost_reason="",
         kind="move"):
    """Move the opportunity to `to_stage`, one step along the ladder (forward or
    back) or to lost, recorded in its history and audited. Returns it, reloaded.

    Raises DomainError when it is won or lost already, when the step skips a
    stage, when a check of the target stage is missing (naming it), when it
    moved meanwhile (`expected_stage` differs), when the date lies before it
    entered its stage, or when `user` may not change it.
    """
    on = on or datetime.date.today()
    if to_stage not in STAGES:
        raise DomainError(_l("Unknown stage."))
    with write_transaction():
        current = Opportunity.get_by_id(opportunity.id)
        if user is not None and not current.can_change(user):
            raise DomainError(_l("Only the owner or the branch manager can move this "
                                 "opportunity."))
        if current.stage in TERMINAL:
            raise DomainError(_l("This opportunity is %(stage)s already; it can no longer "
                                 "move.", stage=stage_label(current.stage)))
        if expected_stage and expected_stage != current.stage:
            raise DomainError(_l("This opportunity was moved meanwhile (it is now at "
                                 "%(stage)s). Look again before moving it.",
                                 stage=stage_label(current.stage)))
        if to_stage == current.stage:
            raise DomainError(_l("The opportunity is at %(stage)s already.",
                                 stage=stage_label(to_stage)))
        if on < current.stage_entered_on:
            raise DomainError(_l("A move cannot be dated before the opportunity entered "
                                 "its stage."))
        if to_stage == "lost":
            lost_reason = (lost_reason or "").strip()
            if not lost_reason:
                raise DomainError(_l("Say why the opportunity was lost."))
        else:
            step = LADDER.index(to_stage) - LADDER.index(current.stage)
            # People move one stage at a time; the weekly rollover sends a stale one
            # straight back to the start, whatever stage it sat in.
            if abs(step) != 1 and kind != "rollover":
                raise DomainError(_l("Move one stage at a time."))
            if step > 0:
                _check_entry(current, to_stage, on)
        before = current.audit_dict()
        _record_move(current, to_stage, on, user, kind)
        current.stage = to_stage
        current.stage_entered_on = on
        current.updated_at = utcnow()
        if to_stage in TERMINAL:
            current.closed_on = on
            current.lost_reason = lost_reason if to_stage == "lost" else ""
        current.save()
        audit("opportunity_rollover" if kind == "rollover" else "opportunity_moved", current,
              actor=user, before=before, after=current.audit_dict())
    return current


def forward(opportunity, user, **kwargs):
    """One stage up the ladder (see move())."""
    if opportunity.stage in TERMINAL:
        return move(opportunity, user, "won", **kwargs)  # move() says why not
    position = LADDER.index(opportunity.stage)
    return move(opportunity, user, LADDER[position + 1], **kwargs)


def back(opportunity, user, **kwargs):
    """One stage down the ladder (see move()); refused at the first stage."""
    if opportunity.stage in TERMINAL:
        return move(opportunity, user, "opportunity", **kwargs)  # move() says why not
    position = LADDER.index(opportunity.stage)
    if position == 0:
        raise DomainError(_l("The opportunity is at the first stage already."))
    return move(opportunity, user, LADDER[position - 1], **kwargs)


def next_prospect_code():
    """A free customer code for a prospect created on the spot: P000001, P000002…"""
    last = (Customer.select(fn.MAX(Customer.code)).where(Customer.code.startswith("P"),
                                                         fn.LENGTH(Customer.code) == 7)
            .scalar())
    number = int(last[1:]) + 1 if last and last[1:].isdigit() else 1
    while Customer.select().where(Customer.code == f"P{number:06d}").exists():
        number += 1
    return f"P{number:06d}"


def create_opportunity(user, *, customer=None, new_name="", stage="opportunity", on=None,
                       owner=None, **values):
    """Open an opportunity for an existing prospect, or for a prospect created on the
    spot from `new_name` in the owner's branch. `stage` is where it starts: the
    first stage, or first meeting booked. Audited. Returns it.

    Raises DomainError when neither or both of customer and name are given, the
    customer is no prospect, lies outside the user's branch or has an open
    opportunity already, or an amount is wrong.
    """
    on = on or datetime.date.today()
    owner = owner or user
    if stage not in ("opportunity", "meeting"):
        raise DomainError(_l("A new opportunity starts as an opportunity or with a first "
                             "meeting booked."))
    if owner.branch_id is None:
        raise DomainError(_l("The owner needs a branch."))
    new_name = (new_name or "").strip()
    if bool(customer) == bool(new_name):
        raise DomainError(_l("Choose a prospect or type the name of a new one."))
    amounts = {name: check_amount(values.get(name), label)
               for name, label in AMOUNT_LABELS.items() if name in values}
    with write_transaction():
        if customer is not None:
            if customer.kind != "prospect":
                raise DomainError(_l("%(name)s is an existing customer, not a prospect.",
                                     name=customer.name))
            if customer.branch_id != owner.branch_id:
                raise DomainError(_l("The prospect belongs to another branch."))
            if Opportunity.select().where(Opportunity.customer == customer.id,
                                          Opportunity.stage.in_(OPEN_STAGES)).exists():
                raise DomainError(_l("%(name)s is in the funnel already.", name=customer.name))
        else:
            customer = save_customer(None, user, code=next_prospect_code(), name=new_name,
                                     kind="prospect", branch=owner.branch_id,
                                     account_manager=owner.id)
        opportunity = Opportunity.create(
            customer=customer.id, branch=customer.branch_id, owner=owner.id, stage=stage,
            stage_entered_on=on, created_by=user.id,
            **{k: (v if v is not None or k == "expected_amount" else Decimal(0))
               for k, v in amounts.items()})
        _record_move(opportunity, stage, on, user, "create")
        audit("opportunity_created", opportunity, actor=user,
              after=opportunity.audit_dict())
    return opportunity


DETAIL_FIELDS = ("premium_received", "standard_premium", "expected_amount", "signing_date",
                 *CHECK_FLAGS, "contract_signed", "payment_received")


def update_details(opportunity, user, **values):
    """Record amounts, the signing date and the checks, audited. Only DETAIL_FIELDS
    are taken. Raises DomainError for a closed opportunity, a bad amount, or a
    user who may not change it."""
    values = {k: v for k, v in values.items() if k in DETAIL_FIELDS}
    for name, label in AMOUNT_LABELS.items():
        if name in values:
            values[name] = check_amount(values[name], label)
            if values[name] is None and name != "expected_amount":
                values[name] = Decimal(0)
    with write_transaction():
        current = Opportunity.get_by_id(opportunity.id)
        if not current.can_change(user):
            raise DomainError(_l("Only the owner or the branch manager can change this "
                                 "opportunity."))
        if current.is_closed:
            raise DomainError(_l("This opportunity is %(stage)s already; it can no longer "
                                 "change.", stage=stage_label(current.stage)))
        before = current.audit_dict()
        for key, value in values.items():
            setattr(current, key, value)
        after = current.audit_dict()
        if after != before:
            current.updated_at = utcnow()
            current.save()
            audit("opportunity_updated", current, actor=user, before=before, after=after)
    return current


def rollover(on=None):
    """The weekly rollover: every opportunity that sat in a stage longer than its
    owner's sales cycle goes back to the first stage, recorded in its history
    (kind "rollover", moved by nobody) and audited. Returns the ids moved."""
    on = on or datetime.date.today()
    candidates = (Opportunity.select(Opportunity.id, Opportunity.stage,
                                     Opportunity.stage_entered_on, User.sales_cycle_days)
                  .join(User, on=(Opportunity.owner == User.id))
                  .where(Opportunity.stage.in_(STALE_STAGES)).namedtuples())
    moved = []
    for row in candidates:
        if not is_stale(row.stage, row.stage_entered_on, row.sales_cycle_days, on):
            continue
        opportunity = Opportunity.get_by_id(row.id)
        try:
            move(opportunity, None, "opportunity", expected_stage=row.stage, on=on,
                 kind="rollover")
        except DomainError:
            continue  # moved by someone meanwhile: not stale any more
        moved.append(row.id)
    return moved


def next_monday(day):
    """The Monday after `day` (a week on, for a Monday): the next weekly rollover."""
    return day + datetime.timedelta(days=7 - day.weekday())


class _StaleLines:
    """A notice's list of opportunities, printed in the language the notice is rendered
    in (notify() renders a lazy body in the recipient's): one line each."""

    def __init__(self, rows, on):
        self.rows, self.on = rows, on

    def __str__(self):
        return "\n".join(str(_l("- %(customer)s: %(stage)s for %(days)s days",
                                 customer=name, stage=STAGES[stage],
                                 days=(self.on - entered_on).days))
                          for name, stage, entered_on in self.rows)


def notify_stale(on=None):
    """Before the weekly rollover: tell each active rep, in one notice, which of their
    opportunities the rollover on the next Monday will send back to the first stage
    unless they move it first. Returns {owner id: number of opportunities}."""
    on = on or datetime.date.today()
    monday = next_monday(on)
    rows = (Opportunity.select(Opportunity.owner, Customer.name, Opportunity.stage,
                               Opportunity.stage_entered_on, User.sales_cycle_days)
            .join(User, on=(Opportunity.owner == User.id))
            .switch(Opportunity).join(Customer, on=(Opportunity.customer == Customer.id))
            .where(Opportunity.stage.in_(STALE_STAGES), User.active == True)  # noqa: E712
            .order_by(Opportunity.owner, Opportunity.stage_entered_on, Customer.name).tuples())
    by_owner = {}
    for owner_id, name, stage, entered_on, cycle_days in rows:
        if is_stale(stage, entered_on, cycle_days, monday):
            by_owner.setdefault(owner_id, []).append((name, stage, entered_on))
    with write_transaction():
        for owner in User.select().where(User.id.in_(list(by_owner))):
            found = by_owner[owner.id]
            notify("funnel_stale", owner,
                   _l("Your opportunities going back to the first stage next Monday: %(n)s",
                      n=len(found)),
                   _l("Next Monday's weekly rollover sends these opportunities back to "
                      "the first stage: they sat in their stage longer than your sales "
                      "cycle. Move them on (or close them) before then to keep them where "
                      "they are.\n\n%(lines)s", lines=_StaleLines(found, on)),
                   "/funnel", about=("user", owner.id))
    return {owner_id: len(found) for owner_id, found in by_owner.items()}


# --- Weeks ---------------------------------------------------------------------

def week_of(day):
    """The ISO week of `day` as "2027-W12"."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def parse_week(text):
    """Monday of the ISO week "2027-W12"; ValueError for anything that is not a
    week that exists (W53 only in years that have one)."""
    text = (text or "").strip().upper()
    if len(text) != 8 or text[4:6] != "-W" or not (text[:4] + text[6:]).isdigit():
        raise ValueError(text)
    year, week = int(text[:4]), int(text[6:])
    if year < 2000:
        raise ValueError(text)
    return datetime.date.fromisocalendar(year, week, 1)


def monday_of(day):
    return day - datetime.timedelta(days=day.weekday())


# --- My week -------------------------------------------------------------------

# My week's one query, written out for the same reason as the team table's (below).
_BOARD_SQL = """
SELECT m.opportunity_id, m.to_stage, m.moved_on, m.left_on, c.name, c.id,
       o.premium_received, o.standard_premium, o.stage, m.premium_received,
       m.standard_premium
FROM stage_move m
JOIN opportunity o ON o.id = m.opportunity_id
JOIN customer c ON c.id = o.customer_id
WHERE m.owner_id = {p} AND m.left_on >= {p} AND m.moved_on <= {p}
ORDER BY m.moved_on, m.id"""


def week_board(owner, monday, today=None):
    """The owner's action table for the week starting `monday`: {stage: [item]}
    with every opportunity where it stood at the week's end (or today, for the
    current week), plus those won or lost during the week. Each item is a named
    tuple with the opportunity, customer name, stage, entered date, amounts,
    `moved_this_week` and `stale`. One query."""
    today = today or datetime.date.today()
    sunday = monday + datetime.timedelta(days=6)
    as_of = min(sunday, today)
    rows = raw_sql(_BOARD_SQL,
                          [owner.id, monday.isoformat(), as_of.isoformat()])
    board = {stage: [] for stage in STAGES}
    cycle = owner.sales_cycle_days or DEFAULT_CYCLE_DAYS
    current_week = monday <= today <= sunday
    for (opportunity_id, to_stage, moved_on, left_on, name, customer_id, premium, standard,
         current_stage, moved_premium, moved_standard) in rows:
        moved_on, left_on = as_date(moved_on), as_date(left_on)
        terminal = to_stage in TERMINAL
        if terminal and not (monday <= moved_on <= as_of):
            continue
        if not terminal and left_on <= as_of:
            continue  # left that stage before the week's end
        board[to_stage].append(BoardItem(
            id=opportunity_id, customer_id=customer_id, name=name, stage=to_stage,
            entered_on=moved_on,
            premium_received=_money(moved_premium if terminal else premium),
            standard_premium=_money(moved_standard if terminal else standard),
            moved_this_week=moved_on >= monday,
            stale=is_stale(to_stage, moved_on, cycle, as_of),
            movable=current_week and current_stage not in TERMINAL))
    for items in board.values():
        items.sort(key=lambda item: (item.entered_on, item.name))
    return board


_FREE_PROSPECTS_SQL = """
SELECT id, name, code FROM customer
WHERE account_manager_id = {p} AND kind = 'prospect' AND id NOT IN (
    SELECT customer_id FROM opportunity WHERE stage NOT IN ('won', 'lost'))
ORDER BY name_initials LIMIT 200"""


def free_prospects(user):
    """[(id, "name (code)")] of the prospects on file the user is account manager of
    that are in nobody's funnel now (quick add refuses those), for quick add; someone
    else's prospect is typed in by name. Written out: it is on the page reps open most."""
    rows = raw_sql(_FREE_PROSPECTS_SQL, [user.id])
    return [(customer_id, f"{name} ({code})") for customer_id, name, code in rows]


class BoardItem:
    __slots__ = ("id", "customer_id", "name", "stage", "entered_on", "premium_received",
                 "standard_premium", "moved_this_week", "stale", "movable")

    def __init__(self, **values):
        for key, value in values.items():
            setattr(self, key, value)


def my_summary(owner, today=None):
    """The dashboard's view of the owner's funnel: ({stage: open count}, stale count)."""
    rows = (Opportunity.select(Opportunity.stage, Opportunity.stage_entered_on)
            .where(Opportunity.owner == owner.id, Opportunity.stage.in_(OPEN_STAGES)).tuples())
    counts = dict.fromkeys(OPEN_STAGES, 0)
    stale = 0
    for stage, entered_on in rows:
        counts[stage] += 1
        stale += is_stale(stage, entered_on, owner.sales_cycle_days, today)
    return counts, stale


# --- The team's tracking table ---------------------------------------------------

TEAM_COLUMNS = ("booked", "p25", "p50", "p90", "won", "premium_received", "standard_premium")
TEAM_COLUMN_LABELS = {
    "booked": _l("New first meetings"),
    "p25": _l("At 25%"),
    "p50": _l("At 50%"),
    "p90": _l("At 90%"),
    "won": _l("Won"),
    "premium_received": _l("Premium received"),
    "standard_premium": _l("Standard premium"),
}


# The team table's one scan, written out rather than built per request: fifty members
# of a page everyone opens on Monday mornings, and peewee's query builder took a third
# of the time. {p} is the driver's placeholder; _team_params() gives the values in order.
_WEEK_COLUMNS = """
    COUNT(DISTINCT CASE WHEN to_stage = 'meeting'
                             AND (from_stage IS NULL OR from_stage = 'opportunity')
                             AND moved_on >= {p} AND moved_on <= {p}
                   THEN opportunity_id END),
    SUM(CASE WHEN to_stage = 'p25' AND moved_on <= {p} AND left_on > {p} THEN 1 ELSE 0 END),
    SUM(CASE WHEN to_stage = 'p50' AND moved_on <= {p} AND left_on > {p} THEN 1 ELSE 0 END),
    SUM(CASE WHEN to_stage = 'p90' AND moved_on <= {p} AND left_on > {p} THEN 1 ELSE 0 END),
    COUNT(DISTINCT CASE WHEN to_stage = 'won' AND moved_on >= {p} AND moved_on <= {p}
                   THEN opportunity_id END),
    SUM(CASE WHEN to_stage = 'won' AND moved_on >= {p} AND moved_on <= {p}
             THEN premium_received ELSE 0 END),
    SUM(CASE WHEN to_stage = 'won' AND moved_on >= {p} AND moved_on <= {p}
             THEN standard_premium ELSE 0 END)"""
_TEAM_SQL = ("SELECT owner_id," + _WEEK_COLUMNS + "," + _WEEK_COLUMNS + """
FROM stage_move
WHERE branch_id = {p} AND left_on >= {p} AND moved_on <= {p}
GROUP BY owner_id""")


def _week_params(monday):
    sunday = monday + datetime.timedelta(days=6)
    return [monday, sunday] + [sunday, sunday] * 3 + [monday, sunday] * 3


def _team_rows(branch_id, monday):
    """{owner id: (this week's TEAM_COLUMNS..., the previous week's...)}."""
    previous = monday - datetime.timedelta(days=7)
    params = _week_params(monday) + _week_params(previous) + [
        branch_id, previous, monday + datetime.timedelta(days=6)]
    params = [p.isoformat() if isinstance(p, datetime.date) else p for p in params]
    return {row[0]: row[1:] for row in raw_sql(_TEAM_SQL, params)}


# The branch's people, for the team table: its active sales reps and whoever else owns
# opportunities there (a manager's own, a rep since deactivated). Filtered in Python.
_MEMBERS_SQL = """
SELECT id, display_name, roles_text, active FROM "user"
WHERE branch_id = {p} ORDER BY display_name, id"""


class Member:
    """A team table row's person: enough to name and link them."""
    __slots__ = ("id", "display_name")

    def __init__(self, user_id, display_name):
        self.id, self.display_name = user_id, display_name


def _money(value):
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def team_table(branch_id, monday):
    """The tracking table of a branch for the week starting `monday`.

    Returns (rows, total, previous_total): a row per team member (the branch's
    sales reps, and anyone else owning opportunities there) as a dict with
    `user` and TEAM_COLUMNS plus `previous` (the same numbers a week before);
    "booked" and "won" count this week's moves, the stages count what sat
    there at the week's end, the amounts are those of this week's won deals.
    Two queries, however long the history.
    """
    figures = _team_rows(branch_id, monday)
    members = [Member(user_id, name) for user_id, name, roles, active in raw_sql(
        _MEMBERS_SQL, [branch_id])
        if (active and ",sales_rep," in roles) or user_id in figures]
    rows = []
    total = dict.fromkeys(TEAM_COLUMNS, 0)
    previous_total = dict.fromkeys(TEAM_COLUMNS, 0)
    width = len(TEAM_COLUMNS)
    for member in members:
        found = figures.get(member.id) or (0,) * (2 * width)
        row = {"user": member, "previous": {}}
        for index, column in enumerate(TEAM_COLUMNS):
            convert = _money if column in ("premium_received", "standard_premium") else \
                (lambda v: int(v or 0))
            row[column] = convert(found[index])
            row["previous"][column] = convert(found[width + index])
            total[column] += row[column]
            previous_total[column] += row["previous"][column]
        rows.append(row)
    return rows, total, previous_total


def member_prospects(owner, monday, today=None):
    """The member's opportunities at the week's end, stage by stage, as a flat list
    for the team table's expanded row (terminal ones only if closed that week)."""
    board = week_board(owner, monday, today)
    return [item for stage in STAGES for item in board[stage]]


# --- Conversion ------------------------------------------------------------------

def conversion(start, end, *, branch_id=None, owner_id=None):
    """How far the opportunities got between `start` and `end` (inclusive):
    [(stage, count reached, ratio to the stage before)] along the ladder, where
    "reached" means it entered that stage or a later one in the period (a
    rollover is no progress). One query."""
    rank = Case(StageMove.to_stage, [(s, i) for i, s in enumerate(LADDER)], -1)
    furthest = (StageMove.select(StageMove.opportunity, fn.MAX(rank).alias("furthest"))
                .where(StageMove.moved_on.between(start, end), StageMove.kind != "rollover",
                       StageMove.to_stage != "lost"))
    if branch_id is not None:
        furthest = furthest.where(StageMove.branch == branch_id)
    if owner_id is not None:
        furthest = furthest.where(StageMove.owner == owner_id)
    furthest = furthest.group_by(StageMove.opportunity).alias("furthest_stage")
    counts = dict.fromkeys(range(len(LADDER)), 0)
    query = (StageMove.select(furthest.c.furthest, fn.COUNT(SQL("*")))
             .from_(furthest).group_by(furthest.c.furthest).tuples())
    for position, count in query:
        if position is not None and 0 <= int(position) < len(LADDER):
            counts[int(position)] += count
    reached = []
    running = 0
    for position in reversed(range(len(LADDER))):
        running += counts[position]
        reached.append(running)
    reached.reverse()
    steps = []
    for position, stage in enumerate(LADDER):
        before = reached[position - 1] if position else None
        ratio = (reached[position] / before) if before else None
        steps.append((stage, reached[position], ratio))
    return steps


def stock(on, *, branch_id=None, owner_id=None):
    """How many open opportunities sat in each stage on `on`: {stage: count}."""
    query = (StageMove.select(StageMove.to_stage, fn.COUNT(StageMove.id))
             .where(StageMove.moved_on <= on, StageMove.left_on > on,
                    StageMove.to_stage.in_(OPEN_STAGES)))
    if branch_id is not None:
        query = query.where(StageMove.branch == branch_id)
    if owner_id is not None:
        query = query.where(StageMove.owner == owner_id)
    found = dict(query.group_by(StageMove.to_stage).tuples())
    return {stage: found.get(stage, 0) for stage in OPEN_STAGES}


def hints(steps, stock_now):
    """Plain-language advice drawn from the funnel's shape (a list of strings)."""
    reached = {stage: count for stage, count, _ in steps}
    advice = []
    if not reached["opportunity"]:
        return [_l("Nothing moved in this period: add the prospects you are talking to.")]
    if reached["meeting"] < reached["opportunity"] * 0.25:
        advice.append(_l("Few opportunities turn into first meetings: call your contacts "
                         "and book meetings."))
    if reached["p25"] < max(2, reached["meeting"] * 0.5):
        advice.append(_l("Few at 25%: book more first meetings."))
    if stock_now["p50"] > max(3, stock_now["p25"]):
        advice.append(_l("Many waiting at 50%: proposals are pending; agree the signing "
                         "dates."))
    if reached["p90"] and reached["won"] < reached["p90"] * 0.7:
        advice.append(_l("Signed deals are slow to close: follow up the payments."))
    if reached["won"]:
        per_deal = reached["opportunity"] / reached["won"]
        if per_deal > 20:
            advice.append(_l("%(n)s opportunities per deal, more than the rule of thumb of "
                             "20: qualify prospects earlier.", n=round(per_deal)))
        else:
            advice.append(_l("%(n)s opportunities per deal, within the rule of thumb of 20 "
                             "contacts : 5 prospects : 1 deal.", n=round(per_deal)))
    elif reached["p50"]:
        advice.append(_l("No deal closed yet: push the proposals at 50% towards signing."))
    return advice
