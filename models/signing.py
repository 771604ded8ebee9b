"""The committee's signatures on a cycle's results (签字).

In the `signing` phase each committee member signs by re-entering their
password; the chair signs last. A signature records who, when, in which
role, and the SHA-256 of a canonical serialisation of the cycle's results,
so that the printed report and /verify can tell whether the results still
are what the committee signed. Once anyone has signed the results cannot
change: only the committee review changes them, and reopening the cycle
(phases.reopen_cycle) takes it back there, clearing the signatures, audited.
"""
import hashlib
import json

from peewee import CharField, DateTimeField, ForeignKeyField

from i18n import lazy_gettext as _l

from .audit import audit
from .base import BaseModel, DomainError, utcnow, write_transaction
from .cycles import Assessment, GradingCycle
from .login_limits import TooManyFailures, is_limited, session_password_failed
from .people import User

SIGNER_ROLES = {"chair": _l("Committee chair"), "member": _l("Committee member")}


class CycleSignature(BaseModel):
    cycle = ForeignKeyField(GradingCycle, backref="signatures", on_delete="CASCADE")
    user = ForeignKeyField(User, on_delete="RESTRICT")
    role = CharField(max_length=16)  # "chair" or "member"
    signed_at = DateTimeField(default=utcnow)
    fingerprint = CharField(max_length=64)  # SHA-256 hex of results_document()

    class Meta:
        indexes = ((("cycle", "user"), True),)

    @property
    def role_label(self):
        return SIGNER_ROLES.get(self.role, self.role)


def results_document(cycle):
    """The cycle's results as canonical JSON bytes: what the committee signs.

    Each assessment (by id, with its customer's id): the final grade, total,
    rationale and the special-policy and credit-review marks — only what the
    assessment row holds and the phases lock, so renaming a customer or a tier
    after signing does not change what was signed. Sorted keys, no spaces,
    UTF-8, totals as fixed two-decimal strings, so the same results always
    give the same bytes on SQLite and PostgreSQL.
    """
    rows = (Assessment.select(Assessment.id, Assessment.customer, Assessment.final_tier,
                              Assessment.final_total, Assessment.rationale,
                              Assessment.special_policy, Assessment.credit_review)
            .where(Assessment.cycle == cycle.id).order_by(Assessment.id))
    results = [{
        "assessment": row.id,
        "customer": row.customer_id,
        "final_tier": row.final_tier_id,
        "final_total": None if row.final_total is None else f"{float(row.final_total):.2f}",
        "rationale": row.rationale or "",
        "special_policy": bool(row.special_policy),
        "credit_review": bool(row.credit_review),
    } for row in rows]
    document = {"cycle": cycle.id, "name": cycle.name, "year": cycle.year, "results": results}
    return json.dumps(document, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


def results_fingerprint(cycle):
    """SHA-256 (hex) of results_document(cycle)."""
    return hashlib.sha256(results_document(cycle)).hexdigest()


def report_signatures(cycle):
    """The cycle's signatures in signing order, with their users."""
    return list(CycleSignature.select(CycleSignature, User)
                .join(User, on=(CycleSignature.user == User.id))
                .where(CycleSignature.cycle == cycle.id)
                .order_by(CycleSignature.signed_at, CycleSignature.id))


def signing_tasks(user):
    """[(cycle, "sign", 1)] for each cycle in signing whose results `user` has yet to
    sign (the chair only once every member has)."""
    tasks = []
    for cycle in GradingCycle.select().where(GradingCycle.phase == "signing"):
        waiting = unsigned_signers(cycle)
        if any(u.id == user.id for u in waiting) and (
                user.id != cycle.chair_id or len(waiting) == 1):
            tasks.append((cycle, "sign", 1))
    return tasks


def unsigned_signers(cycle):
    """The committee members (chair last) who have not signed yet."""
    signed = {s.user_id for s in CycleSignature.select(CycleSignature.user)
              .where(CycleSignature.cycle == cycle.id)}
    waiting = [m for m in cycle.members() if m.id not in signed]
    if cycle.chair_id not in signed:
        waiting.append(cycle.chair)
    return waiting


def _ensure_may_sign(cycle, user):
    """Raise DomainError unless `user` may sign `cycle` now: the cycle is in the signing
    phase, the user is on its committee and has not signed, and a chair signs last."""
    if cycle.phase != "signing":
        raise DomainError(_l("The results can be signed only while the cycle is in the "
                             "signing phase."))
    if not cycle.is_on_committee(user):
        raise DomainError(_l("Only the committee signs its results."))
    if CycleSignature.select().where(CycleSignature.cycle == cycle.id,
                                     CycleSignature.user == user.id).exists():
        raise DomainError(_l("You have signed these results already."))
    if user.id == cycle.chair_id and any(m.id != cycle.chair_id
                                         for m in unsigned_signers(cycle)):
        raise DomainError(_l("The chair signs last, after every committee member."))


def sign(cycle, user, password, address=None):
    """`user` signs the cycle's results after re-entering their password, audited.

    Who may sign is settled before the password is looked at: when the cycle is not
    in the signing phase, the user is not on its committee, has signed already, or is
    the chair before every member, DomainError is raised, the password unchecked and
    nothing recorded. While models.login_limits limits the user name from `address`
    (the client's), TooManyFailures is raised, the password unchecked. A wrong
    password is a failed login for the user name and raises DomainError, or
    SessionsRevoked when it ended the user's sessions. Returns the CycleSignature.
    """
    _ensure_may_sign(GradingCycle.get_by_id(cycle.id), user)
    if is_limited(user.username, address):
        raise TooManyFailures()
    if not user.check_password(password or ""):
        session_password_failed(user, address)
        raise DomainError(_l("The password is not correct; nothing was signed."))
    with write_transaction():
        cycle = GradingCycle.get_by_id(cycle.id)  # re-read inside the lock
        _ensure_may_sign(cycle, user)
        role = "chair" if user.id == cycle.chair_id else "member"
        fingerprint = results_fingerprint(cycle)
        earlier = CycleSignature.select().where(CycleSignature.cycle == cycle.id,
                                                CycleSignature.fingerprint != fingerprint)
        if earlier.exists():
            raise DomainError(_l("The results changed since the first signature; reopen the "
                                 "cycle and sign again."))
        signature = CycleSignature.create(cycle=cycle.id, user=user.id, role=role,
                                          fingerprint=fingerprint)
        audit("cycle_signed", cycle, after={"role": role, "fingerprint": fingerprint})
    return signature
