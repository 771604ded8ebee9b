"""A grading cycle's phases, draft → preliminary → committee → signing → published:
what still stands in the way of the next one (missing_for_next_phase), the moves
(advance, and reopen_cycle back from signing to the committee), and the work each
phase waits for from a user (tasks_for).

A workflow above the records it touches: starting a cycle freezes its scorecard
templates and creates the assessments, signing waits for every signature, and
publishing files the tier change requests. None of those modules imports this one.
"""
import datetime

from flask_babel import ngettext
from peewee import fn

from i18n import LazyDate, sentences
from i18n import lazy_gettext as _l

from .approvals import file_cycle_requests
from .audit import audit
from .base import DomainError, utcnow, write_transaction
from .customers import Customer
from .cycles import PHASE_ORDER, Assessment, GradingCycle
from .notices import notify
from .people import Branch, User
from .scorecards import freeze
from .signing import CycleSignature, report_signatures, signing_tasks, unsigned_signers


def missing_for_next_phase(cycle, user=None):
    """What must happen before the cycle may move on: a list of sentences, about the
    sheets `user` may see when given (a branch manager reads the branch's only)."""
    sheets = Assessment.visible_to(user) if user is not None else Assessment.select()
    missing = []
    if cycle.phase == "draft":
        if not cycle.members().exists():
            missing.append(_l("Name at least one committee member besides the chair."))
        if not cycle.scoped_customers().exists():
            missing.append(_l("The scope holds no customer."))
    elif cycle.phase == "preliminary":
        open_sheets = (sheets.select(Branch.name, fn.COUNT(Assessment.id).alias("n"))
                       .join(Branch, on=(Assessment.branch == Branch.id))
                       .where(Assessment.cycle == cycle,
                              Assessment.preliminary_submitted_at.is_null())
                       .group_by(Branch.name).order_by(Branch.name).tuples())
        for branch, count in open_sheets:
            missing.append(ngettext("%(branch)s: %(num)s preliminary sheet not submitted.",
                                    "%(branch)s: %(num)s preliminary sheets not submitted.",
                                    count, branch=branch))
    elif cycle.phase == "committee":
        count = sheets.where(Assessment.cycle == cycle,
                             Assessment.finalised_at.is_null()).count()
        if count:
            missing.append(ngettext("%(num)s assessment has no final grade yet.",
                                    "%(num)s assessments have no final grade yet.", count))
    elif cycle.phase == "signing":
        if unsigned_signers(cycle):
            missing.append(_l("Every committee member must sign the report first."))
    else:
        missing.append(_l("The cycle is published; it has no further phase."))
    return missing


def advance(cycle, user):
    """Move the cycle to its next phase; only the chair or an admin may.

    Raises DomainError with what is missing. Starting the cycle (draft →
    preliminary) freezes its templates and creates one assessment per
    customer in scope; publishing it files a tier change request for every
    final grade that differs from the customer's tier; each in the same
    transaction as the move.
    """
    if not cycle.may_advance(user):
        raise DomainError(_l("Only the committee chair or an administrator moves the cycle on."))
    with write_transaction():
        cycle = GradingCycle.get_by_id(cycle.id)  # re-read inside the lock
        missing = missing_for_next_phase(cycle)
        if missing:
            raise DomainError(sentences(missing))
        before = cycle.phase
        cycle.phase = PHASE_ORDER[PHASE_ORDER.index(before) + 1]
        if before == "draft":
            freeze(cycle.template_existing)
            if cycle.template_prospect_id:
                freeze(cycle.template_prospect)
            _create_assessments(cycle)
            cycle.started_at = utcnow()
        cycle.save()
        audit("cycle_phase", cycle, before={"phase": before}, after={"phase": cycle.phase})
        if cycle.phase == "published":  # every changed grade goes to its approvers
            file_cycle_requests(cycle, user)
        _tell_phase(cycle)
    return cycle


def _open_sheets(cycle):
    """{branch id: preliminary sheets not submitted yet} of the cycle."""
    return dict(Assessment.select(Assessment.branch, fn.COUNT(Assessment.id))
                .where(Assessment.cycle == cycle,
                       Assessment.preliminary_submitted_at.is_null())
                .group_by(Assessment.branch).tuples())


def _branch_managers(branch_ids):
    return User.with_role("branch_manager").where(User.active == True,  # noqa: E712
                                                  User.branch.in_(list(branch_ids)))


def _tell_phase(cycle):
    """Tell the people the cycle's new phase waits for, inside the move's transaction:
    the branch managers the sheets to fill (with the deadline, the meeting's first day),
    the committee that its meeting is open, then that its signatures are wanted, and the
    committee and branch managers that the report is published."""
    cache, link = {}, f"/cycles/{cycle.id}"
    people = []  # (person, subject, body, link)
    if cycle.phase == "preliminary":
        open_sheets = _open_sheets(cycle)
        for head in _branch_managers(open_sheets):
            count = open_sheets[head.branch_id]
            due = (_l(" Please submit them before the committee meets on %(day)s.",
                      day=LazyDate(cycle.meeting_from)) if cycle.meeting_from else "")
            people.append((head, _l("%(cycle)s: %(n)s preliminary sheets to fill",
                                    cycle=cycle.name, n=count),
                           _l("The grading cycle %(cycle)s has started: your branch has "
                              "%(n)s preliminary sheets to fill and submit.%(due)s",
                              cycle=cycle.name, n=count, due=due), link))
    elif cycle.phase == "committee":
        people += [(person, _l("%(cycle)s: the committee meeting is open", cycle=cycle.name),
                    _l("The preliminary sheets of %(cycle)s are in, and the committee "
                       "review has begun. Open the meeting board to score with the "
                       "committee.", cycle=cycle.name), f"{link}/meeting")
                   for person in cycle.committee_people()]
    elif cycle.phase == "signing":
        people += [(person, _l("%(cycle)s: your signature is wanted", cycle=cycle.name),
                    _l("Every grade of %(cycle)s is settled. Please check the results and "
                       "sign them (the chair signs last).", cycle=cycle.name),
                    f"{link}/signing")
                   for person in cycle.committee_people()]
    elif cycle.phase == "published":
        branches = {b for (b,) in Assessment.select(Assessment.branch).distinct()
                    .where(Assessment.cycle == cycle).tuples()}
        readers = {p.id: p for p in [*cycle.committee_people(), *_branch_managers(branches)]}
        people += [(person, _l("%(cycle)s is published", cycle=cycle.name),
                    _l("The committee's signed report of %(cycle)s is published, and each "
                       "changed grade has gone to its approvers.", cycle=cycle.name),
                    f"{link}/report") for person in readers.values()]
    for person, subject, body, where in people:
        if person.active:
            notify("cycle", person, subject, body, where, about=cycle, cache=cache)


def notify_deadlines(today):
    """Three days and one day before a cycle's meeting, each branch manager whose branch
    still has preliminary sheets open hears how many, and by when. Returns the ids of
    the people told."""
    told = []
    with write_transaction():
        for days in (3, 1):
            for cycle in GradingCycle.select().where(
                    GradingCycle.phase == "preliminary",
                    GradingCycle.meeting_from == today + datetime.timedelta(days=days)):
                open_sheets = _open_sheets(cycle)
                for head in _branch_managers(open_sheets):
                    notify("cycle", head,
                           _l("%(cycle)s: %(n)s preliminary sheets still open, due %(day)s",
                              cycle=cycle.name, n=open_sheets[head.branch_id],
                              day=LazyDate(cycle.meeting_from)),
                           _l("The committee of %(cycle)s meets on %(day)s, and your branch "
                              "has %(n)s preliminary sheets not submitted yet. Please fill "
                              "and submit them before then.", cycle=cycle.name,
                              day=LazyDate(cycle.meeting_from),
                              n=open_sheets[head.branch_id]),
                           f"/cycles/{cycle.id}", about=cycle)
                    told.append(head.id)
    return told


def _create_assessments(cycle):
    rows = []
    customers = cycle.scoped_customers().order_by(Customer.branch, Customer.code)
    for position, customer in enumerate(customers, 1):
        template = cycle.template_prospect_id if customer.kind == "prospect" else \
            cycle.template_existing_id
        rows.append({"cycle": cycle.id, "customer": customer.id, "template": template,
                     "branch": customer.branch_id, "tier_before": customer.tier_id,
                     "provisional": customer.provisional, "agenda_position": position})
    for start in range(0, len(rows), 500):
        Assessment.insert_many(rows[start:start + 500]).execute()


def tasks_for(user):
    """The grading work waiting for `user`: [(cycle, kind, count)] where kind is
    "fill" (open preliminary sheets of the user's branch), "meeting" (a
    committee review the user sits on) or "sign" (results to sign)."""
    tasks = []
    if user.has_role("branch_manager") and user.branch_id:
        open_sheets = (Assessment.select(Assessment.cycle, fn.COUNT(Assessment.id))
                       .join(GradingCycle)
                       .where(GradingCycle.phase == "preliminary",
                              Assessment.branch == user.branch_id,
                              Assessment.preliminary_submitted_at.is_null())
                       .group_by(Assessment.cycle).tuples())
        for cycle_id, count in open_sheets:
            tasks.append((GradingCycle.get_by_id(cycle_id), "fill", count))
    for cycle in GradingCycle.select().where(GradingCycle.phase == "committee"):
        if cycle.is_on_committee(user):
            left = Assessment.select().where(Assessment.cycle == cycle,
                                             Assessment.finalised_at.is_null()).count()
            tasks.append((cycle, "meeting", left))
    tasks.extend(signing_tasks(user))
    return tasks


def reopen_cycle(cycle, user, reason=""):
    """Take a cycle in signing back to the committee review, clearing every
    signature, audited. Only the chair or an administrator may; a published
    cycle cannot be reopened. Raises DomainError otherwise."""
    if not cycle.may_advance(user):
        raise DomainError(_l("Only the committee chair or an administrator reopens the "
                             "cycle."))
    with write_transaction():
        cycle = GradingCycle.get_by_id(cycle.id)
        if not cycle.may_reopen(user):
            raise DomainError(_l("Only a cycle in the signing phase can be reopened."))
        cleared = [{"user": s.user_id, "role": s.role, "signed_at": s.signed_at,
                    "fingerprint": s.fingerprint} for s in report_signatures(cycle)]
        CycleSignature.delete().where(CycleSignature.cycle == cycle.id).execute()
        cycle.phase = "committee"
        cycle.save()
        audit("cycle_reopened", cycle, before={"phase": "signing", "signatures": cleared},
              after={"phase": "committee", "reason": reason})
    return cycle
