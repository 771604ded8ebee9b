"""Periods away (代理): a person away from a date to a date, and the colleague who
decides their approval steps meanwhile (models/approvals.py reads them)."""
import datetime

from peewee import DateField, DateTimeField, ForeignKeyField, fn

from i18n import LazyDate
from i18n import lazy_gettext as _l

from .audit import audit
from .base import BaseModel, DomainError, NotFound, utcnow, write_transaction
from .people import User


class Delegation(BaseModel):
    """`user` is away from `starts_on` to `ends_on` (inclusive): the approval steps that
    would wait for them wait for `delegate` too, who decides in their stead (代理)."""
    user = ForeignKeyField(User, on_delete="CASCADE", backref="+")
    delegate = ForeignKeyField(User, on_delete="CASCADE", backref="+")
    starts_on = DateField()
    ends_on = DateField()
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("delegate", "ends_on"), False), (("user", "ends_on"), False))


def _away_with_delegate(user, day):
    """A User query: the active people away on `day` with `user` as their delegate."""
    return (User.select().join(Delegation, on=(Delegation.user == User.id))
            .where(Delegation.delegate == user.id, Delegation.starts_on <= day,
                   Delegation.ends_on >= day, User.active))


def standing_in_for(user, day=None):
    """The active people `user` stands in for on `day` (today): away, with `user` as
    their delegate."""
    return list(_away_with_delegate(user, day or datetime.date.today()).order_by(User.id))


def stands_in(user, day=None):
    """The condition "`user` stands in for someone on `day` (today)", as standing_in_for()
    reads it, for another query to test without a round trip of its own."""
    return fn.EXISTS(_away_with_delegate(user, day or datetime.date.today())
                     .select(User.id))


def delegates_of(user_ids, day=None):
    """{user id: their active delegate} for those of `user_ids` away on `day` (today)."""
    day = day or datetime.date.today()
    if not user_ids:
        return {}
    rows = (Delegation.select(Delegation.user, User).join(
        User, on=(Delegation.delegate == User.id))
        .where(Delegation.user.in_(user_ids), Delegation.starts_on <= day,
               Delegation.ends_on >= day, User.active))
    return {row.user_id: row.delegate for row in rows}


def delegations_of(user):
    """The user's periods away that have not ended, soonest first, with the delegate."""
    return list(Delegation.select(Delegation, User)
                .join(User, on=(Delegation.delegate == User.id))
                .where(Delegation.user == user.id,
                       Delegation.ends_on >= datetime.date.today())
                .order_by(Delegation.starts_on))


def save_delegation(user, delegate, starts_on, ends_on):
    """`user` will be away from `starts_on` to `ends_on`; `delegate` decides the approval
    steps that wait for them meanwhile. Audited. Raises DomainError for no delegate or
    an inactive one, oneself, dates the wrong way round or past, a delegate who could
    not open the requests (of one branch where `user` sees more, or another branch),
    or a period that overlaps one already set."""
    if delegate is None or not delegate.active:
        raise DomainError(_l("Choose an active colleague to stand in for you."))
    if delegate.id == user.id:
        raise DomainError(_l("Choose someone other than yourself."))
    if not starts_on or not ends_on or ends_on < starts_on:
        raise DomainError(_l("The last day comes before the first."))
    if ends_on < datetime.date.today():
        raise DomainError(_l("That period is over already."))
    if delegate.is_branch_scoped and (not user.is_branch_scoped
                                      or delegate.branch_id != user.branch_id):
        raise DomainError(_l("%(name)s sees only their own branch and could not open every "
                             "request that waits for you: choose a colleague of your branch, "
                             "or one who sees every branch.", name=delegate.display_name))
    with write_transaction():
        clash = Delegation.get_or_none(Delegation.user == user.id,
                                       Delegation.starts_on <= ends_on,
                                       Delegation.ends_on >= starts_on)
        if clash is not None:
            raise DomainError(_l("You are away from %(start)s to %(end)s already: end that "
                                 "period first, or choose other days.",
                                 start=LazyDate(clash.starts_on), end=LazyDate(clash.ends_on)))
        delegation = Delegation.create(user=user.id, delegate=delegate.id,
                                       starts_on=starts_on, ends_on=ends_on)
        audit("delegation_saved", delegation, actor=user, after={
            "delegate": delegate.username, "starts_on": starts_on, "ends_on": ends_on})
    return delegation


def end_delegation(delegation_id, user):
    """End the user's period away now (or drop it when it has not started), audited."""
    with write_transaction():
        delegation = Delegation.get_or_none(Delegation.id == delegation_id,
                                            Delegation.user == user.id)
        if delegation is None:
            raise NotFound(_l("There is no such period away."))
        today = datetime.date.today()
        before = {"starts_on": delegation.starts_on, "ends_on": delegation.ends_on}
        if delegation.starts_on >= today:
            delegation.delete_instance()
        else:
            delegation.ends_on = today - datetime.timedelta(days=1)
            delegation.save()
        audit("delegation_ended", delegation, actor=user, before=before,
              object_id=delegation_id)
