"""Tier change requests (等级变更申请), their approval steps, and the rules that make
the steps.

A request is filed with the steps its rule names, the first one pending and the
rest waiting. Each decision is a conditional UPDATE of a pending step inside a
write transaction: of two approvers deciding the same step at once one wins, the
other is told. Approval of the last step writes the customer's tier history and
moves the customer's tier, provided the tier is still the one the request started
from.
"""
import datetime
import functools
import operator
from collections import namedtuple

from flask import current_app
from flask_babel import force_locale
from peewee import (
    JOIN,
    SQL,
    Case,
    CharField,
    DateField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    IntegrityError,
    Select,
    TextField,
    fn,
)

from i18n import LazyDate
from i18n import lazy_gettext as _l

from .audit import AuditEvent, audit
from .base import BaseModel, DomainError, NotFound, db, utcnow, write_transaction
from .customers import Customer, TierHistory, search_condition
from .cycles import Assessment, GradingCycle
from .delegations import delegates_of, standing_in_for, stands_in
from .notices import notify
from .people import ROLES, Branch, User, scoped_to_branch
from .tiers import Tier

SOURCES = {
    "mid_year": _l("Mid-year adjustment"),
    "cycle": _l("Grading cycle result"),
    "provisional": _l("Provisional customer due"),
}
STATUSES = {
    "open": _l("Open"),
    "approved": _l("Approved"),
    "rejected": _l("Rejected"),
    "withdrawn": _l("Withdrawn"),
    "returned": _l("Returned for changes"),
}
STEP_STATUSES = {
    "waiting": _l("Waiting for an earlier step"),
    "pending": _l("Awaiting decision"),
    "approved": _l("Approved"),
    "rejected": _l("Rejected"),
    "cancelled": _l("Not needed"),
    "skipped": _l("Passed up: waited past its limit"),
    "returned": _l("Returned for changes"),
}
DIRECTIONS = {"any": _l("Any change of tier"), "up": _l("Any promotion"),
              "down": _l("Any downgrade")}
# Roles an approval step may ask for.
APPROVER_ROLES = ("branch_manager", "sales_director", "general_manager", "committee_chair",
                  "admin")
# Who files a mid-year adjustment: the account manager or the branch manager.
FILER_ROLES = ("branch_manager", "sales_rep")
# A provisional (new) customer is graded for good after six months of cooperation.
PROVISIONAL_DAYS = 183


class AlreadyDecided(DomainError):
    """Someone else decided the step first."""


class ApprovalRule(BaseModel):
    """The ordered roles that approve a change: per target tier ("tier-<id>") or per
    direction ("up", "down", "any")."""
    key = CharField(max_length=32, unique=True)
    target_tier = ForeignKeyField(Tier, null=True, on_delete="CASCADE")
    direction = CharField(max_length=8, default="")
    # ",branch_manager,sales_director," in order.
    roles_text = CharField(max_length=255)
    # A step waiting this many days reminds its deciders; this many, it goes to
    # `escalate_to` (a role; empty: the role above, ESCALATION). None: never.
    remind_days = IntegerField(null=True)
    escalate_days = IntegerField(null=True)
    escalate_to = CharField(max_length=32, default="")
    updated_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    updated_at = DateTimeField(default=utcnow)

    @property
    def roles(self):
        return [r for r in self.roles_text.split(",") if r]


class TierChangeRequest(BaseModel):
    customer = ForeignKeyField(Customer, backref="tier_change_requests", on_delete="CASCADE")
    from_tier = ForeignKeyField(Tier, null=True, on_delete="RESTRICT")
    to_tier = ForeignKeyField(Tier, on_delete="RESTRICT")
    source = CharField(max_length=16)
    reason = TextField(default="")
    cycle = ForeignKeyField(GradingCycle, null=True, on_delete="SET NULL")
    assessment = ForeignKeyField(Assessment, null=True, on_delete="SET NULL")
    effective_on = DateField()
    status = CharField(max_length=16, default="open")
    requested_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)
    closed_at = DateTimeField(null=True)
    closing_comment = TextField(default="")
    # Copied from the customer when filed: the branch whose manager decides.
    branch = ForeignKeyField(Branch, on_delete="RESTRICT")
    # The pending step (an ApprovalStep id) and its role while the request is open, None
    # once closed: a queue reads this one indexed table.
    waiting_step = IntegerField(null=True)
    waiting_role = CharField(max_length=32, null=True)
    step_count = IntegerField(default=1)
    # The rule it was filed under (its limits chase the waiting step).
    rule_key = CharField(max_length=32, default="")

    class Meta:
        indexes = ((("status", "created_at"), False),
                   (("waiting_role", "branch", "created_at", "requested_by"), False),
                   (("waiting_role", "created_at", "requested_by"), False))

    def __str__(self):
        return str(_l("Tier change request no. %(id)s", id=self.id))

    @property
    def source_label(self):
        return SOURCES.get(self.source, self.source)

    @property
    def status_label(self):
        return STATUSES.get(self.status, self.status)

    @classmethod
    def visible_to(cls, user):
        """Requests of the user's branch when the user is branch-scoped."""
        return scoped_to_branch(cls.select(), cls.branch, user)

    def steps(self):
        """Its steps in order, with who decided each and for whom (a delegate)."""
        Absent = User.alias()
        return list(ApprovalStep.select(ApprovalStep, User, Absent)
                    .join(User, JOIN.LEFT_OUTER, on=(ApprovalStep.decided_by == User.id))
                    .switch(ApprovalStep)
                    .join(Absent, JOIN.LEFT_OUTER, on=(ApprovalStep.on_behalf_of == Absent.id),
                          attr="on_behalf_of")
                    .where(ApprovalStep.request == self).order_by(ApprovalStep.position))

    def pending_step(self):
        return ApprovalStep.get_or_none(ApprovalStep.request == self,
                                        ApprovalStep.status == "pending")

    def audit_dict(self):
        return {"customer": self.customer_id,
                "from_tier": self.from_tier.code if self.from_tier_id else None,
                "to_tier": self.to_tier.code, "source": self.source, "reason": self.reason,
                "effective_on": self.effective_on, "status": self.status}


class ApprovalStep(BaseModel):
    request = ForeignKeyField(TierChangeRequest, backref="approval_steps", on_delete="CASCADE")
    position = IntegerField()
    role = CharField(max_length=32)
    status = CharField(max_length=16)
    decided_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
    decided_at = DateTimeField(null=True)
    comment = TextField(default="")
    # Since when it waits for a decision, when the rule's limits last chased it, the role
    # it waited for before it was escalated, and the person its decider stood in for.
    waiting_since = DateTimeField(null=True)
    chased_at = DateTimeField(null=True)
    escalated_from = CharField(max_length=32, default="")
    on_behalf_of = ForeignKeyField(User, null=True, on_delete="SET NULL", backref="+")

    class Meta:
        indexes = ((("request", "position"), True), (("status", "role"), False))

    @property
    def role_label(self):
        return ROLES.get(self.role, self.role)

    @property
    def status_label(self):
        return STEP_STATUSES.get(self.status, self.status)

    @property
    def escalated_from_label(self):
        return ROLES.get(self.escalated_from, self.escalated_from)


# --- Rules --------------------------------------------------------------------

def default_roles(key):
    """The rule that holds when an admin has stored none: every change needs the
    branch manager; a promotion into the top tier needs branch manager → sales
    director → general manager (DESIGN.md)."""
    if key == "any":
        return ["branch_manager"]
    top = Tier.top()
    if top is not None and key == f"tier-{top.id}":
        return ["branch_manager", "sales_director", "general_manager"]
    return None


def rule_keys():
    """[(key, label)] of every rule an admin can set, general ones first."""
    return [*DIRECTIONS.items()] + [
        (f"tier-{t.id}", _l("Change to %(tier)s", tier=t.display_name)) for t in Tier.ordered()]


def rule_table():
    """[(key, label, roles, stored, (remind days, escalate days, escalate to))] for the
    rules page: the stored rule or the default (which chases nothing)."""
    stored = {r.key: r for r in ApprovalRule.select()}
    return [(key, label, stored[key].roles if key in stored else default_roles(key) or [],
             key in stored, (stored[key].remind_days, stored[key].escalate_days,
                             stored[key].escalate_to) if key in stored else (None, None, ""))
            for key, label in rule_keys()]


def roles_for(from_tier, to_tier):
    """(rule key, [roles]) that approve a change from `from_tier` to `to_tier`: the
    target tier's rule, else the direction's, else the general one."""
    stored = {r.key: r.roles for r in ApprovalRule.select()}
    direction = "up" if from_tier is None or to_tier.rank < from_tier.rank else "down"
    for key in (f"tier-{to_tier.id}", direction, "any"):
        roles = stored.get(key) or default_roles(key)
        if roles:
            return key, roles
    return "any", ["branch_manager"]


def save_rule(key, user, roles, remind_days=None, escalate_days=None, escalate_to=""):
    """Store the ordered approver roles of rule `key` and its limits (days a step waits
    before its deciders are reminded, before it goes to `escalate_to`, a role, or the
    role above when empty), audited. Requests filed before keep the steps they were
    made with; the limits chase them too. Raises DomainError for an unknown key or
    role, a rule with no steps, a role named twice, or limits out of order."""
    keys = dict(rule_keys())
    if key not in keys:
        raise DomainError(_l("There is no such approval rule."))
    roles = [r for r in roles if r]
    if not roles:
        raise DomainError(_l("A rule needs at least one approval step."))
    if set(roles) - set(APPROVER_ROLES):
        raise DomainError(_l("Unknown approver role."))
    if len(set(roles)) != len(roles):
        raise DomainError(_l("Each role approves once in a rule."))
    if escalate_to and escalate_to not in APPROVER_ROLES:
        raise DomainError(_l("Unknown approver role."))
    if any(days is not None and not 1 <= days <= 90 for days in (remind_days, escalate_days)):
        raise DomainError(_l("A limit is between 1 and 90 days."))
    if remind_days and escalate_days and escalate_days <= remind_days:
        raise DomainError(_l("Escalate later than the reminder."))
    limits = {"remind_days": remind_days, "escalate_days": escalate_days,
              "escalate_to": escalate_to or ""}
    with write_transaction():
        rule = ApprovalRule.get_or_none(ApprovalRule.key == key)
        before = rule.roles if rule else default_roles(key)
        before_limits = ({"remind_days": rule.remind_days, "escalate_days": rule.escalate_days,
                          "escalate_to": rule.escalate_to} if rule else {})
        if rule is None:
            rule = ApprovalRule(key=key, direction=key if key in DIRECTIONS else "",
                                target_tier=int(key[5:]) if key.startswith("tier-") else None)
        rule.roles_text = "," + ",".join(roles) + ","
        rule.remind_days, rule.escalate_days = remind_days, escalate_days
        rule.escalate_to = escalate_to or ""
        rule.updated_by, rule.updated_at = user, utcnow()
        rule.save()
        audit("approval_rule_saved", rule, before={"key": key, "roles": before, **before_limits},
              after={"key": key, "roles": roles, **limits})
    return rule


def reset_rule(key, user):
    """Drop the stored rule `key` so that the default holds again, audited."""
    with write_transaction():
        rule = ApprovalRule.get_or_none(ApprovalRule.key == key)
        if rule is None:
            raise DomainError(_l("This rule is the default already."))
        audit("approval_rule_reset", rule, before={"key": key, "roles": rule.roles},
              after={"key": key, "roles": default_roles(key)})
        rule.delete_instance()


# --- Filing -------------------------------------------------------------------

def may_file(customer, user):
    """A mid-year change is filed by the customer's account manager or its branch's
    branch manager."""
    if user.has_role("branch_manager") and user.branch_id == customer.branch_id:
        return True
    return user.has_role("sales_rep") and customer.account_manager_id == user.id


class OpenRequestExists(DomainError):
    """The customer has an open tier change request already."""


# A step the requester would decide themselves goes to the role above.
ESCALATION = {"branch_manager": "sales_director", "sales_director": "general_manager"}


def steps_for(roles, requester, branch_id):
    """The rule's roles as the request's steps. A step nobody could decide goes to the
    role above: one for the requester's own role (nobody decides their own request: a
    branch manager's request at the branch manager step), or for a role nobody else
    holds (a branch without a branch manager). A role then named twice approves once."""
    def undecidable(role):
        holders = User.with_role(role).where(User.active)
        if role == "branch_manager":
            holders = holders.where(User.branch == branch_id)
        if requester is not None:
            holders = holders.where(User.id != requester.id)
        return not holders.exists()
    steps = []
    for role in roles:
        while role in ESCALATION and undecidable(role):
            role = ESCALATION[role]
        if role not in steps:
            steps.append(role)
    return steps


def _file(customer, user, to_tier, reason, source, effective_on, cycle=None, assessment=None,
          rules=None, steps=None, notices=None):
    """File one request inside the caller's transaction; returns it. A grading cycle's
    requests are the committee's, not the person's who published it (who may well
    decide them later): they have no requester."""
    if to_tier is None:
        raise DomainError(_l("Choose the tier to change to."))
    if customer.tier_id == to_tier.id and source != "provisional":
        raise DomainError(_l("The customer holds %(tier)s already: a change needs another tier.",
                             tier=to_tier.display_name))
    busy = OpenRequestExists(_l("%(customer)s has an open tier change request already: "
                                "decide or withdraw that one first.", customer=customer.name))
    if TierChangeRequest.select().where(TierChangeRequest.customer == customer.id,
                                        TierChangeRequest.status == "open").exists():
        raise busy
    from_tier = Tier.get_by_id(customer.tier_id) if customer.tier_id else None
    requester = None if source == "cycle" else user
    key, rule_roles = (rules or roles_for)(from_tier, to_tier)
    roles = (steps or steps_for)(rule_roles, requester, customer.branch_id)
    try:
        with db.atomic():
            request = TierChangeRequest.create(
                customer=customer.id, from_tier=customer.tier_id, to_tier=to_tier.id,
                source=source, reason=reason, cycle=cycle, assessment=assessment,
                effective_on=effective_on, requested_by=requester, branch=customer.branch_id,
                waiting_role=roles[0], step_count=len(roles), rule_key=key)
    except IntegrityError as error:  # the one-open-request index: a request filed meanwhile
        raise busy from error
    first = ApprovalStep.create(request=request.id, position=1, role=roles[0], status="pending",
                                waiting_since=request.created_at)
    if len(roles) > 1:
        ApprovalStep.insert_many([dict(request=request.id, position=n, role=role,
                                       status="waiting")
                                  for n, role in enumerate(roles[1:], start=2)]).execute()
    TierChangeRequest.update(waiting_step=first.id).where(
        TierChangeRequest.id == request.id).execute()
    request.waiting_step = first.id
    request.from_tier, request.to_tier = from_tier, to_tier
    audit("tier_change_filed", request, actor=user,
          after={**request.audit_dict(), "rule": key, "steps": roles})
    _notify_waiting(request, first, customer, notices)
    return request


def provisional_due(customer, today=None):
    """Whether a provisional customer has worked with us six months: its provisional
    tier is due to be confirmed or changed."""
    today = today or datetime.date.today()
    return bool(customer.provisional and customer.cooperation_since
                and customer.cooperation_since <= today - datetime.timedelta(
                    days=PROVISIONAL_DAYS))


def file_request(customer, user, to_tier, reason, effective_on=None, source="mid_year"):
    """File a tier change for `customer`, audited; returns the request. The source is a
    mid-year adjustment, or a provisional customer due (which may keep its tier: the
    approval then confirms it and ends the provisional status).

    Raises DomainError when the user may not file it, no reason is given, the
    tier is the customer's own (mid-year), the customer is not a provisional one due,
    the customer has an open request already, or the effective date lies before the
    customer's latest tier.
    """
    if source not in ("mid_year", "provisional"):
        raise DomainError(_l("Unknown source of a tier change."))
    if source == "provisional" and not provisional_due(customer):
        raise DomainError(_l("Only a provisional customer with six months of cooperation is "
                             "due for its tier."))
    if not may_file(customer, user):
        raise DomainError(_l("A tier change is filed by the customer's account manager or the "
                             "branch manager."))
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(_l("Give the reason for the change."))
    effective_on = effective_on or datetime.date.today()
    with write_transaction():
        customer = Customer.get_by_id(customer.id)
        latest = (TierHistory.select(fn.MAX(TierHistory.effective_on))
                  .where(TierHistory.customer == customer.id).scalar())
        if latest and effective_on < latest:
            raise DomainError(_l("The change cannot take effect before the customer's current "
                                 "tier did (%(date)s).", date=latest.isoformat()))
        return _file(customer, user, to_tier, reason, source, effective_on)


def file_cycle_requests(cycle, user, effective_on=None):
    """File one request per assessment of `cycle` whose final grade differs from the
    customer's current tier (source "cycle"), in one transaction; the grading
    cycle's publication calls this. Customers with an open request already are
    skipped. Returns (filed requests, skipped assessments)."""
    effective_on = effective_on or datetime.date.today()
    filed, skipped = [], []
    cache = {}

    def rules(from_tier, to_tier):  # the rules do not change within one filing
        key = (from_tier.id if from_tier else None, to_tier.id)
        if key not in cache:
            cache[key] = roles_for(from_tier, to_tier)
        return cache[key]

    step_cache = {}

    def steps(roles, requester, branch_id):  # nor who may decide them
        key = (tuple(roles), branch_id)
        if key not in step_cache:
            step_cache[key] = steps_for(roles, requester, branch_id)
        return step_cache[key]

    tiers = Tier.by_id()
    notices = {}  # who decides a first step, their channels, the robots: the same throughout
    with write_transaction():
        busy = {r.customer_id for r in TierChangeRequest.select(TierChangeRequest.customer)
                .where(TierChangeRequest.status == "open")}
        changed = (Assessment.select(Assessment, Customer)
                   .join(Customer, on=(Assessment.customer == Customer.id))
                   .where(Assessment.cycle == cycle, Assessment.final_tier.is_null(False),
                          Customer.tier.is_null() | (Customer.tier != Assessment.final_tier))
                   .order_by(Assessment.agenda_position, Assessment.id))
        for assessment in changed:
            if assessment.customer_id in busy:
                skipped.append(assessment)
                continue
            reason = assessment.rationale or str(_l("Result of %(cycle)s", cycle=cycle.name))
            try:
                filed.append(_file(assessment.customer, user, tiers[assessment.final_tier_id],
                                   reason, "cycle", effective_on, cycle=cycle.id,
                                   assessment=assessment.id, rules=rules, steps=steps,
                                   notices=notices))
            except OpenRequestExists:  # filed mid-year a moment ago: the publication goes on
                skipped.append(assessment)
    return filed, skipped


# --- Deciding -----------------------------------------------------------------

def _own_refusal(step, user, request):
    """Why `user` may not decide `step` of `request` in their own right, or None: nobody
    decides their own request, the step is for its role (a branch manager step for the
    manager of the request's branch), and one person decides one step of a request."""
    if request.requested_by_id == user.id:
        return _l("Nobody decides their own request.")
    if step.role == "branch_manager":
        holds = user.has_role(step.role) and user.branch_id == request.branch_id
    else:
        holds = user.has_role(step.role) and (not user.is_branch_scoped
                                              or user.branch_id == request.branch_id)
    if not holds:
        return _l("This step is for a %(role)s of the customer's branch.",
                  role=step.role_label)
    if _decided_a_step(user, request):
        return _l("You decided an earlier step of this request: another person decides "
                  "this one.")
    return None


def _decided_a_step(user, request):
    return ApprovalStep.select().where(ApprovalStep.request == request.id,
                                       ApprovalStep.decided_by == user.id).exists()


def decision_right(step, user, request):
    """(refusal, on behalf of): why `user` may not decide `step` of `request` (None when
    they may), and, when they decide as the delegate of someone away, that person.
    A delegate decides what the absent person could (_own_refusal), never a request of
    their own or of the absent person, nor a second step of one request."""
    refusal = _own_refusal(step, user, request)
    if refusal is None or request.requested_by_id == user.id:
        return refusal, None
    for absent in standing_in_for(user):
        if (absent.id != request.requested_by_id and not _decided_a_step(user, request)
                and _own_refusal(step, absent, request) is None):
            return None, absent
    return refusal, None


def decider_refusal(step, user, request):
    """Why `user` may not decide `step` of `request`, or None when they may (in their own
    right or as a delegate: decision_right). The request page shows the decision form
    by it; deciding refuses by it."""
    return decision_right(step, user, request)[0]


def _decide(step_id, user, decision, comment):
    """One decision inside the caller's transaction; returns the request."""
    comment = (comment or "").strip()
    step = ApprovalStep.get_or_none(ApprovalStep.id == step_id)
    if step is None:
        raise NotFound(_l("There is no such approval step."))
    request = TierChangeRequest.get_by_id(step.request_id)
    if request.status != "open":
        # Read after the step: on PostgreSQL a decision committed in between closes the
        # request, and the step read again says who made it.
        step = ApprovalStep.get_by_id(step.id)
    customer = Customer.get_by_id(request.customer_id)
    if user.is_branch_scoped and request.branch_id != user.branch_id:
        raise NotFound(_l("There is no such approval step."))
    if step.status in ("approved", "rejected"):
        raise AlreadyDecided(_l("%(name)s decided this step already: nothing was saved.",
                                name=step.decided_by.display_name if step.decided_by_id
                                else "—"))
    if request.status != "open":
        raise DomainError(_l("This request is closed (%(status)s): nothing was saved.",
                             status=request.status_label))
    if step.status != "pending":
        raise DomainError(_l("An earlier step has to be decided first."))
    refusal, on_behalf_of = decision_right(step, user, request)
    if refusal:
        raise DomainError(refusal)
    if decision not in ("approve", "reject", "return"):
        raise DomainError(_l("Approve or reject."))
    if decision == "reject" and not comment:
        raise DomainError(_l("Give the reason for the rejection."))
    if decision == "return" and not request.requested_by_id:
        raise DomainError(_l("The grading committee's request has nobody to return it to: "
                             "approve or reject it."))
    if decision == "return" and not comment:
        raise DomainError(_l("Say what the requester should change."))
    if decision == "approve" and customer.tier_id != request.from_tier_id:
        raise DomainError(_l("The customer's tier changed since this request was filed: reject "
                             "it, or let the requester withdraw it and file a new one."))
    now = utcnow()
    outcome = {"approve": "approved", "reject": "rejected", "return": "returned"}[decision]
    won = (ApprovalStep.update(status=outcome,
                               decided_by=user.id, decided_at=now, comment=comment,
                               on_behalf_of=on_behalf_of.id if on_behalf_of else None)
           .where(ApprovalStep.id == step.id, ApprovalStep.status == "pending").execute())
    if not won:
        decided = ApprovalStep.get_by_id(step.id)
        raise AlreadyDecided(_l("%(name)s decided this step already: nothing was saved.",
                                name=decided.decided_by.display_name if decided.decided_by_id
                                else "—"))
    after = {"request": request.id, "step": step.position, "role": step.role,
             "decision": decision, "comment": comment}
    if on_behalf_of:
        after["on_behalf_of"] = on_behalf_of.username
    if decision in ("reject", "return"):
        _close(request, outcome, comment, now)
        audit(f"tier_change_{outcome}", request, actor=user, after=after)
        _notify_decided(request, customer, user, comment)
        return request
    following = (ApprovalStep.select().where(ApprovalStep.request == request.id,
                                             ApprovalStep.position > step.position)
                 .order_by(ApprovalStep.position).first())
    if following is not None:
        _pass_to(request, following, now)
        audit("tier_change_step_approved", request, actor=user, after=after)
        _notify_waiting(request, following, customer)
        return request
    # The last step: the customer's tier moves, if it is still the one we started from.
    same_tier = (Customer.tier.is_null() if request.from_tier_id is None
                 else Customer.tier == request.from_tier_id)
    changes = {"tier": request.to_tier_id, "updated_at": now}
    if request.source == "provisional":  # the grade is confirmed: no longer provisional
        changes["provisional"] = False
    moved = Customer.update(**changes).where(Customer.id == customer.id, same_tier).execute()
    if not moved:
        raise DomainError(_l("The customer's tier changed since this request was filed: reject "
                             "it, or let the requester withdraw it and file a new one."))
    TierHistory.create(customer=customer.id, tier=request.to_tier_id,
                       effective_on=request.effective_on, source="approval",
                       reference=_reference(request), created_by=user.id)
    _close(request, "approved", comment, now)
    audit("tier_change_approved", request, actor=user, after={
        **after, "from_tier": request.from_tier_id, "to_tier": request.to_tier_id,
        "effective_on": request.effective_on})
    _notify_decided(request, customer, user, comment)
    _notify_tier_changed(request, customer, user)
    return request


def _pass_to(request, step, now):
    """The request now waits for its `step` (inside the caller's transaction)."""
    ApprovalStep.update(status="pending", waiting_since=now, chased_at=None).where(
        ApprovalStep.id == step.id).execute()
    TierChangeRequest.update(waiting_step=step.id, waiting_role=step.role).where(
        TierChangeRequest.id == request.id).execute()
    step.status, step.waiting_since, step.chased_at = "pending", now, None


# --- Notices -------------------------------------------------------------------

def deciders(step, request):
    """The active users who may decide `step` of `request` now: its role's holders, of
    the request's branch where the role or the person is branch-scoped, each replaced by
    their delegate while they are away (when the delegate may decide it)."""
    candidates = User.with_role(step.role).where(User.active)
    if step.role == "branch_manager":
        candidates = candidates.where(User.branch == request.branch_id)
    holders = [u for u in candidates.order_by(User.id)
               if _own_refusal(step, u, request) is None]
    stand_ins = delegates_of([u.id for u in holders])
    people = {}
    for holder in holders:
        delegate = stand_ins.get(holder.id)
        if delegate is not None and decision_right(step, delegate, request)[0] is None:
            holder = delegate
        people.setdefault(holder.id, holder)
    return list(people.values())


def _tiers_text(request):
    """(from, to) tier names of a request: from the tiers _file() set on it, else read."""
    if "to_tier" in request.__rel__:
        to_tier, from_tier = request.to_tier, request.__rel__.get("from_tier")
    else:
        tiers = Tier.by_id()
        to_tier, from_tier = tiers[request.to_tier_id], tiers.get(request.from_tier_id)
    return (from_tier.display_name if from_tier else "—"), to_tier.display_name


def _notify_waiting(request, step, customer, cache=None, reminder=False):
    """Tell each person who may decide `step` that it waits for them (inside the
    caller's transaction, like the step itself). `cache` (a dict) keeps the deciders
    of a first step of a committee's request (no requester, nobody decided yet: they
    depend on the role and branch alone), and notify()'s lookups, across one filing."""
    from_name, to_name = _tiers_text(request)
    link = f"/tier-changes/{request.id}"
    if cache is not None and not request.requested_by_id and step.position == 1:
        key = ("deciders", step.role, request.branch_id)
        if key not in cache:
            cache[key] = deciders(step, request)
        people = cache[key]
    else:
        people = deciders(step, request)
    subject = (_l("Reminder: %(customer)s %(from_tier)s → %(to_tier)s still waits for you",
                  customer=customer.name, from_tier=from_name, to_tier=to_name) if reminder
               else _l("Approval waiting: %(customer)s %(from_tier)s → %(to_tier)s",
                       customer=customer.name, from_tier=from_name, to_tier=to_name))
    for person in people:
        notify("approval_waiting", person, subject,
               _l("The tier change of %(customer)s (%(code)s) from %(from_tier)s to "
                  "%(to_tier)s waits for your decision as %(role)s.\n\nReason: "
                  "%(reason)s", customer=customer.name, code=customer.code,
                  from_tier=from_name, to_tier=to_name, role=step.role_label,
                  reason=request.reason or "—"),
               link, about=request, branch_id=request.branch_id, cache=cache)


def _notify_decided(request, customer, decider, comment):
    """Tell the requester the outcome (a cycle's requests have none)."""
    if not request.requested_by_id:
        return
    requester = User.get_or_none(User.id == request.requested_by_id)
    if requester is None or not requester.active:
        return
    from_name, to_name = _tiers_text(request)
    outcome = STATUSES.get(request.status, request.status)
    notify("request_decided", requester,
           _l("Your request was decided (%(outcome)s): %(customer)s %(from_tier)s → "
              "%(to_tier)s", outcome=outcome, customer=customer.name, from_tier=from_name,
              to_tier=to_name),
           _l("%(name)s decided the tier change of %(customer)s (%(code)s) from "
              "%(from_tier)s to %(to_tier)s: %(outcome)s.\n\nComment: %(comment)s",
              name=decider.display_name, customer=customer.name, code=customer.code,
              from_tier=from_name, to_tier=to_name, outcome=outcome,
              comment=comment or "—"),
           f"/tier-changes/{request.id}", about=request, branch_id=request.branch_id)


def _notify_tier_changed(request, customer, decider):
    """Tell the customer's account manager its new tier, unless they filed the request
    (the outcome reached them already) or are not active."""
    manager_id = customer.account_manager_id
    if not manager_id or manager_id == request.requested_by_id:
        return
    manager = User.get_or_none(User.id == manager_id, User.active == True)  # noqa: E712
    if manager is None:
        return
    from_name, to_name = _tiers_text(request)
    notify("tier_changed", manager,
           _l("%(customer)s is now %(to_tier)s", customer=customer.name, to_tier=to_name),
           _l("The tier of %(customer)s (%(code)s), a customer you manage, changed from "
              "%(from_tier)s to %(to_tier)s as of %(day)s (approved by %(name)s). Its "
              "service policy changes with it.", customer=customer.name, code=customer.code,
              from_tier=from_name, to_tier=to_name, day=LazyDate(request.effective_on),
              name=decider.display_name),
           f"/customers/{customer.id}", about=request, branch_id=request.branch_id)


def _reference(request):
    """How the tier history names the request: in the company's language (like a cycle's
    name there), whoever's screen approved it."""
    with force_locale(current_app.config.get("BABEL_DEFAULT_LOCALE", "zh_CN")):
        return str(_l("Tier change request no. %(id)s", id=request.id))


def _close(request, status, comment, now):
    """Close an open request; raises DomainError when it was closed meanwhile (on
    PostgreSQL a withdrawal may have read "open" while the last step was approved)."""
    closed = TierChangeRequest.update(
        status=status, closed_at=now, closing_comment=comment, waiting_step=None,
        waiting_role=None).where(TierChangeRequest.id == request.id,
                                 TierChangeRequest.status == "open").execute()
    if not closed:
        current = TierChangeRequest.get_by_id(request.id)
        raise DomainError(_l("This request is closed (%(status)s): nothing was saved.",
                             status=current.status_label))
    ApprovalStep.update(status="cancelled").where(
        ApprovalStep.request == request.id, ApprovalStep.status.in_(("waiting", "pending"))
    ).execute()
    request.status = status


def decide(step, user, decision, comment=""):
    """Approve or reject the pending `step`, audited; returns its request.

    Raises AlreadyDecided when someone decided it first, and DomainError for a
    closed request, a waiting step, the requester deciding, a user without the
    step's role (or of another branch), one person deciding two steps, a
    rejection without a reason, or a customer whose tier changed meanwhile.
    """
    with write_transaction():
        return _decide(getattr(step, "id", step), user, decision, comment)


def decide_many(step_ids, user, decision, comment=""):
    """Decide many steps with one comment in one transaction, each on its own
    savepoint: one refusal does not undo the others. Returns (decided request ids,
    [(step id, message)] refused)."""
    done, refused = [], []
    with write_transaction():
        for step_id in dict.fromkeys(step_ids):
            try:
                with db.atomic():
                    done.append(_decide(step_id, user, decision, comment).id)
            except DomainError as error:
                refused.append((step_id, str(error)))
    return done, refused


def withdraw(request, user, comment=""):
    """The requester withdraws an open request, audited. Raises DomainError
    otherwise."""
    with write_transaction():
        request = TierChangeRequest.get_by_id(request.id)
        if request.requested_by_id != user.id:
            raise DomainError(_l("Only the person who filed the request withdraws it."))
        if request.status != "open":
            raise DomainError(_l("This request is closed (%(status)s): nothing was saved.",
                                 status=request.status_label))
        _close(request, "withdrawn", (comment or "").strip(), utcnow())
        audit("tier_change_withdrawn", request, actor=user, after={"comment": comment})
    return request


# A requester may remind (催办) the people a request waits for once in this long.
REMIND_EVERY = datetime.timedelta(days=1)


def last_reminded(request):
    """When the request's approvers were last reminded (催办), or None."""
    latest = (AuditEvent.select(AuditEvent.at)
              .where(AuditEvent.action == "tier_change_reminded",
                     AuditEvent.object_id == str(request.id))
              .order_by(AuditEvent.at.desc()).first())
    return latest.at if latest else None


def remind(request, user):
    """The requester reminds (催办) whoever may decide the open request's waiting step,
    at most once a day; audited, so the request's history shows it. Returns the people
    reminded. Raises DomainError otherwise."""
    with write_transaction():
        request = TierChangeRequest.get_by_id(request.id)
        if request.requested_by_id != user.id:
            raise DomainError(_l("Only the person who filed the request reminds its "
                                 "approvers."))
        if request.status != "open":
            raise DomainError(_l("This request is closed (%(status)s): nothing was saved.",
                                 status=request.status_label))
        last = last_reminded(request)
        if last is not None and last > utcnow() - REMIND_EVERY:
            raise DomainError(_l("The approvers were reminded less than a day ago: remind "
                                 "them again tomorrow."))
        step = request.pending_step()
        customer = Customer.get_by_id(request.customer_id)
        people = deciders(step, request)
        _notify_waiting(request, step, customer, reminder=True)
        audit("tier_change_reminded", request, actor=user,
              after={"step": step.position, "role": step.role,
                     "reminded": [p.id for p in people]})
    return people


# --- Chasing: the rule's limits (超时提醒、超时升级) ----------------------------------

def chase_waiting(now=None):
    """Remind the deciders of each step that has waited past its rule's `remind_days`,
    and escalate each that has waited past its `escalate_days`, each request in its own
    transaction, audited: the request's page shows it. Returns (reminded, escalated)
    request ids. The worker runs this every hour; running it again changes nothing."""
    now = now or utcnow()
    rules = {r.key: r for r in ApprovalRule.select().where(
        ApprovalRule.remind_days.is_null(False) | ApprovalRule.escalate_days.is_null(False))}
    reminded, escalated = [], []
    if not rules:
        return reminded, escalated
    waiting = (TierChangeRequest.select(TierChangeRequest.id)
               .where(TierChangeRequest.status == "open",
                      TierChangeRequest.rule_key.in_(list(rules)))
               .order_by(TierChangeRequest.id).tuples())
    for (request_id,) in waiting:
        with write_transaction():
            request = TierChangeRequest.get_by_id(request_id)
            step = request.pending_step()
            if request.status != "open" or step is None:
                continue  # decided meanwhile
            outcome = _chase(request, step, rules[request.rule_key], now)
            if outcome == "reminded":
                reminded.append(request.id)
            elif outcome == "escalated":
                escalated.append(request.id)
    return reminded, escalated


def _chase(request, step, rule, now):
    """Chase one waiting step by its rule (inside the caller's transaction); returns
    "escalated", "reminded" or None."""
    waited = now - (step.waiting_since or request.created_at)
    customer = Customer.get_by_id(request.customer_id)
    if rule.escalate_days and waited >= datetime.timedelta(days=rule.escalate_days):
        target = rule.escalate_to or ESCALATION.get(step.role)
        # A role nobody else could decide goes further up, as when filing.
        target = steps_for([target], request.requested_by, request.branch_id)[0] \
            if target else None
        if target and target != step.role:
            _escalate(request, step, target, customer, now)
            return "escalated"
    if (rule.remind_days and step.chased_at is None
            and waited >= datetime.timedelta(days=rule.remind_days)):
        ApprovalStep.update(chased_at=now).where(ApprovalStep.id == step.id).execute()
        people = deciders(step, request)
        _notify_waiting(request, step, customer, reminder=True)
        audit("tier_change_reminded", request, after={
            "step": step.position, "role": step.role, "reminded": [p.id for p in people],
            "days": rule.remind_days})
        return "reminded"
    return None


def _escalate(request, step, target, customer, now):
    """`step` waited too long: it now waits for the role `target` instead, or, when a
    later step is for that role already, it is passed up and that step waits."""
    later = (ApprovalStep.select().where(ApprovalStep.request == request.id,
                                         ApprovalStep.position > step.position)
             .order_by(ApprovalStep.position))
    same = next((s for s in later if s.role == target), None)
    after = {"step": step.position, "from_role": step.role, "to_role": target}
    if same is not None:
        ApprovalStep.update(status="skipped", decided_at=now).where(
            ApprovalStep.id == step.id).execute()
        # The steps between (roles below the target) are passed up with it.
        ApprovalStep.update(status="skipped", decided_at=now).where(
            ApprovalStep.request == request.id, ApprovalStep.position > step.position,
            ApprovalStep.position < same.position).execute()
        _pass_to(request, same, now)
        step = same
        after["passed_up_to_step"] = same.position
    else:
        ApprovalStep.update(role=target, escalated_from=step.escalated_from or step.role,
                            waiting_since=now, chased_at=None).where(
            ApprovalStep.id == step.id).execute()
        TierChangeRequest.update(waiting_role=target).where(
            TierChangeRequest.id == request.id).execute()
        step = ApprovalStep.get_by_id(step.id)
    audit("tier_change_escalated", request, after=after)
    _notify_waiting(request, step, customer)


# --- The queue ----------------------------------------------------------------

def _waiting_for(person, exclude_decided):
    """The condition "the request waits for a step `person` may decide in their own
    right": a branch manager step of their branch, or a step of another role they hold;
    not their own request (nor one where they decided a step, when `exclude_decided`)."""
    roles = [r for r in person.roles if r in APPROVER_ROLES]
    wide = [r for r in roles if r != "branch_manager"]
    parts = [TierChangeRequest.waiting_role.in_(wide)] if wide else []
    if "branch_manager" in roles and person.branch_id:
        parts.append((TierChangeRequest.waiting_role == "branch_manager")
                     & (TierChangeRequest.branch == person.branch_id))
    if not parts:
        return None
    condition = functools.reduce(operator.or_, parts) & (
        TierChangeRequest.requested_by.is_null()
        | (TierChangeRequest.requested_by != person.id))
    if exclude_decided:
        condition &= ~fn.EXISTS(ApprovalStep.select(ApprovalStep.id).where(
            ApprovalStep.request == TierChangeRequest.id,
            ApprovalStep.decided_by == person.id))
    return condition


def queue(user, branch_id=None, to_tier_id=None, source=None, q=None, away=None):
    """The open requests waiting for `user`'s decision: at a branch manager step of their
    own branch, or at a step of another role they hold (in every branch they see), and
    those waiting for anyone `user` stands in for (`away`: standing_in_for(user), read
    when None); never their own requests. A TierChangeRequest query."""
    away = standing_in_for(user) if away is None else away
    roles = [r for r in user.roles if r in APPROVER_ROLES]
    # Only someone holding two roles, or standing in, can have decided an earlier step.
    parts = [_waiting_for(user, len(roles) > 1 or bool(away))]
    parts += [_waiting_for(absent, True) for absent in away]
    parts = [part for part in parts if part is not None]
    if not parts:
        return TierChangeRequest.select().where(SQL("1 = 0"))
    query = TierChangeRequest.select().where(
        functools.reduce(operator.or_, parts),
        TierChangeRequest.requested_by.is_null()
        | (TierChangeRequest.requested_by != user.id))
    if away:
        query = query.where(~fn.EXISTS(ApprovalStep.select(ApprovalStep.id).where(
            ApprovalStep.request == TierChangeRequest.id, ApprovalStep.decided_by == user.id)))
    query = scoped_to_branch(query, TierChangeRequest.branch, user)
    if branch_id:
        query = query.where(TierChangeRequest.branch == branch_id)
    if to_tier_id:
        query = query.where(TierChangeRequest.to_tier == to_tier_id)
    if source:
        query = query.where(TierChangeRequest.source == source)
    matches = search_condition(q)
    if matches is not None:
        query = query.join(Customer, on=(TierChangeRequest.customer == Customer.id)).where(
            matches)
    return query


# A row of pending_page(), made once: peewee's namedtuples() makes a class per query.
QueueRow = namedtuple("QueueRow", "request_id step_id role steps from_tier to_tier source "
                                  "created_at code name branch_name requester position")


def pending_page(user, page=1, size=50, branch_id=None, to_tier_id=None, source=None, q=None):
    """(total, rows) of page `page` of the user's queue() with these filters: oldest
    request first, each row a QueueRow with the customer, branch, requester and step
    position joined."""
    query = queue(user, branch_id, to_tier_id, source, q)
    total = query.count()
    if not total:
        return 0, []
    return total, list(_rows(query).paginate(page, size))


def pending_count(user):
    """How many steps wait for `user` (the navigation badge, on every page).

    One query, which counts what waits for the user in their own right unless they
    stand in for someone today: the badge costs every page a single round trip. Only a
    delegate then reads whom they stand in for, and counts those steps too."""
    own = queue(user, away=[]).select(fn.COUNT(TierChangeRequest.id))
    count = db.execute(Select(columns=[
        Case(None, [(stands_in(user), SQL("NULL"))], own)])).fetchone()[0]
    return queue(user).count() if count is None else count


def _rows(query):
    """A queue() query selecting QueueRows, oldest request first."""
    Shown, At, Requester, Step = Customer.alias(), Branch.alias(), User.alias(), \
        ApprovalStep.alias()
    request = TierChangeRequest
    return (query.select(
        request.id.alias("request_id"), request.waiting_step.alias("step_id"),
        request.waiting_role.alias("role"), request.step_count.alias("steps"),
        request.from_tier.alias("from_tier"), request.to_tier.alias("to_tier"),
        request.source.alias("source"), request.created_at.alias("created_at"),
        Shown.code.alias("code"), Shown.name.alias("name"),
        At.name.alias("branch_name"), Requester.display_name.alias("requester"),
        Step.position.alias("position"))
        .switch(request).join(Shown, on=(request.customer == Shown.id))
        .switch(request).join(At, on=(request.branch == At.id))
        .switch(request).join(Requester, JOIN.LEFT_OUTER,
                              on=(request.requested_by == Requester.id))
        .switch(request).join(Step, JOIN.LEFT_OUTER, on=(request.waiting_step == Step.id))
        .order_by(request.created_at, request.id)
        .objects(QueueRow))


def requests_of(customer):
    """The customer's tier change requests, newest first, with both tiers."""
    From, To = Tier.alias(), Tier.alias()
    return list(TierChangeRequest.select(TierChangeRequest, From, To)
            .join(From, JOIN.LEFT_OUTER, on=(TierChangeRequest.from_tier == From.id),
                  attr="from_tier")
            .switch(TierChangeRequest)
            .join(To, on=(TierChangeRequest.to_tier == To.id), attr="to_tier")
            .where(TierChangeRequest.customer == customer.id)
            .order_by(TierChangeRequest.created_at.desc(), TierChangeRequest.id.desc()))
