"""Administration of users and branches (views/admin.py, forms/admin.py): creating
and changing them, audited. It stands above people.py and audit.py: an audit row
names its User, so people.py cannot write one."""
from peewee import JOIN

from i18n import lazy_gettext as _l

from .audit import audit
from .base import DomainError, write_transaction
from .people import BRANCH_SCOPED_ROLES, LANGUAGES, ROLES, Branch, User


def find_users(q="", branch_id=None, role=None, status=None):
    """Users with their branch, by username: `q` in the username or name, of one
    branch, holding one role, active or not (`status` "active" or "inactive")."""
    query = User.select(User, Branch).join(Branch, JOIN.LEFT_OUTER).order_by(User.username)
    if q:
        query = query.where(User.username.contains(q) | User.display_name.contains(q))
    if branch_id:
        query = query.where(User.branch == branch_id)
    if role in ROLES:
        query = query.where(User.roles_text.contains(f",{role},"))
    if status in ("active", "inactive"):
        query = query.where(User.active == (status == "active"))
    return query


def save_user(user, *, username, display_name, roles, branch, language="zh_CN", active=True,
              password=None, sales_cycle_days=28, email=None, mobile=None):
    """Create (`user` is None) or update a user, audited; returns the user.

    Raises DomainError for a duplicate username, an unknown role, or a
    branch-scoped role without a branch. Deactivating a user, or changing
    their password, revokes their sessions.
    """
    roles = list(dict.fromkeys(roles))
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise DomainError(_l("Unknown role: %(role)s", role=", ".join(unknown)))
    if not roles:
        raise DomainError(_l("Give the user at least one role."))
    if set(roles) & BRANCH_SCOPED_ROLES and branch is None:
        raise DomainError(_l("Branch managers and sales representatives need a branch."))
    if language not in LANGUAGES:
        raise DomainError(_l("Unknown language: %(language)s", language=language))
    with write_transaction():
        clash = User.select().where(User.username == username)
        if user is not None:
            clash = clash.where(User.id != user.id)
        if clash.exists():
            raise DomainError(_l("The username %(username)s is taken.", username=username))
        creating = user is None
        before = None if creating else user.audit_dict()
        if creating:
            if not password:
                raise DomainError(_l("A new user needs a password."))
            user = User(username=username)
        revoke = not creating and ((user.active and not active) or bool(password))
        user.username = username
        user.display_name = display_name or username
        user.roles = roles
        user.branch = branch
        user.language = language
        user.active = active
        user.sales_cycle_days = sales_cycle_days
        if email is not None:  # where notices reach them (None: left as it is)
            user.email = email
        if mobile is not None:
            user.mobile = mobile
        if password:
            user.set_password(password)
        if revoke:
            user.session_version += 1
        user.save()
        after = user.audit_dict()
        if password:
            after["password"] = "changed"  # noqa: S105 - a marker, not a secret
        audit("user_created" if creating else "user_updated", user, before=before, after=after)
    return user


def save_branch(branch, *, code, name, region=""):
    """Create (`branch` is None) or update a branch, audited.

    Raises DomainError when the code is taken.
    """
    with write_transaction():
        clash = Branch.select().where(Branch.code == code)
        if branch is not None:
            clash = clash.where(Branch.id != branch.id)
        if clash.exists():
            raise DomainError(_l("The branch code %(code)s is taken.", code=code))
        creating = branch is None
        before = None if creating else branch.audit_dict()
        branch = branch or Branch()
        branch.code, branch.name, branch.region = code, name, region
        branch.save()
        audit("branch_created" if creating else "branch_updated", branch, before=before,
              after=branch.audit_dict())
    return branch
