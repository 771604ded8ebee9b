"""Branches, users and their roles."""
from types import SimpleNamespace

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, IntegerField

from i18n import lazy_gettext as _l

from .base import BaseModel, utcnow

ROLES = {
    "admin": _l("Administrator"),
    "committee_chair": _l("Committee chair"),
    "committee_member": _l("Committee member"),
    "branch_manager": _l("Branch manager"),
    "sales_director": _l("Sales director"),
    "general_manager": _l("General manager"),
    "sales_rep": _l("Sales representative"),
}
# Roles that see only their own branch's records.
BRANCH_SCOPED_ROLES = frozenset({"branch_manager", "sales_rep"})
LANGUAGES = {"zh_CN": "中文", "en": "English"}

_hasher = PasswordHasher()


class Branch(BaseModel):
    code = CharField(max_length=32, unique=True)
    name = CharField(max_length=100)
    region = CharField(max_length=100, default="")
    created_at = DateTimeField(default=utcnow)

    def __str__(self):
        return self.name

    def audit_dict(self):
        return {"code": self.code, "name": self.name, "region": self.region}

    @classmethod
    def visible_to(cls, user):
        """The branches the user may read: their own when branch-scoped, else all."""
        return scoped_to_branch(cls.select(), cls.id, user)

    @classmethod
    def names_for(cls, user):
        """[(id, name)] of the branches the user may read, by code: every filter form
        offers them."""
        return list(cls.visible_to(user).select(cls.id, cls.name).order_by(cls.code).tuples())


class User(BaseModel):
    username = CharField(max_length=64, unique=True)
    display_name = CharField(max_length=100)
    password_hash = CharField(max_length=255)
    # Stored as ",admin,sales_rep," so that a role is found with one LIKE.
    roles_text = CharField(max_length=255, default=",")
    branch = ForeignKeyField(Branch, null=True, backref="users", on_delete="RESTRICT")
    language = CharField(max_length=8, default="zh_CN")
    active = BooleanField(default=True)
    # Bumped at logout, deactivation and password change: every older
    # session cookie stops matching and is refused.
    session_version = IntegerField(default=1)
    sales_cycle_days = IntegerField(default=28)
    # Where notices reach the person: e-mail, and the mobile number a group robot
    # @-mentions them by (models/notices.py).
    email = CharField(max_length=254, default="")
    mobile = CharField(max_length=32, default="")
    created_at = DateTimeField(default=utcnow)
    last_login_at = DateTimeField(null=True)

    def __str__(self):
        return self.display_name

    # --- roles ---------------------------------------------------------
    @property
    def roles(self):
        return [r for r in self.roles_text.split(",") if r]

    @roles.setter
    def roles(self, values):
        unknown = set(values) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown role(s): {', '.join(sorted(unknown))}")
        ordered = [r for r in ROLES if r in set(values)]
        self.roles_text = "," + ",".join(ordered) + ("," if ordered else "")

    def has_role(self, *roles):
        return any(f",{r}," in self.roles_text for r in roles)

    @classmethod
    def with_role(cls, role):
        """Query for users holding `role`."""
        return cls.select().where(cls.roles_text.contains(f",{role},"))

    @classmethod
    def visible_to(cls, user):
        """The people the user may look up: their branch's when branch-scoped."""
        return scoped_to_branch(cls.select(), cls.branch, user)

    @property
    def is_branch_scoped(self):
        """True when the user sees only their own branch.

        A user who also holds a company-wide role (admin, committee, sales
        director, general manager) is not scoped.
        """
        wide = set(self.roles) - BRANCH_SCOPED_ROLES
        return bool(set(self.roles) & BRANCH_SCOPED_ROLES) and not wide

    # --- password --------------------------------------------------------
    def set_password(self, password):
        self.password_hash = _hasher.hash(password)

    def check_password(self, password):
        try:
            ok = _hasher.verify(self.password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        if ok and _hasher.check_needs_rehash(self.password_hash):
            self.set_password(password)
            self.save(only=[User.password_hash])
        return ok

    # --- Flask-Login -----------------------------------------------------
    @property
    def is_authenticated(self):
        return True

    @property
    def is_active(self):
        return self.active

    @property
    def is_anonymous(self):
        return False

    def get_id(self):
        # The session version rides in the id: a cookie issued before a
        # logout or deactivation no longer loads a user.
        return f"{self.id}:{self.session_version}"

    @classmethod
    def from_session_id(cls, session_id):
        """Load the user named by a session id, or None if it is stale."""
        try:
            user_id, version = (int(x) for x in str(session_id).split(":"))
        except ValueError:
            return None
        user = cls.get_or_none(cls.id == user_id)
        if user is None or user.session_version != version or not user.active:
            return None
        return user

    def revoke_sessions(self):
        """Invalidate every session cookie issued to this user so far."""
        User.update(session_version=User.session_version + 1).where(
            User.id == self.id).execute()
        self.session_version += 1

    def audit_dict(self):
        return {
            "username": self.username, "display_name": self.display_name,
            "roles": self.roles, "branch": self.branch.code if self.branch_id else None,
            "language": self.language, "active": self.active,
            "email": self.email, "mobile": self.mobile,
        }


def scoped_to_branch(query, branch_field, user):
    """`query` narrowed to the user's branch when the user is branch-scoped: the one
    branch-scope rule every domain's `visible_to()` applies."""
    if user.is_branch_scoped:
        query = query.where(branch_field == user.branch_id)
    return query


class DummyPasswordCheck:
    """Spends the time of a real hash check for unknown usernames, so that
    the response time does not tell which usernames exist."""

    _hash = _hasher.hash("not-a-real-password")

    @classmethod
    def run(cls, password):
        try:
            _hasher.verify(cls._hash, password)
        except VerificationError:
            pass
        return False


def scope_shape(scoped, branch):
    """A stand-in for a user inside a prepared() builder: what scoped_to_branch() reads
    of one (`branch` is then a Param), so prepared queries keep the one scope rule."""
    return SimpleNamespace(is_branch_scoped=scoped, branch_id=branch)


def managers_of(branch_ids):
    """Users who can be account managers in these branches: the active ones, by branch
    and name."""
    return (User.select().where(User.branch.in_(branch_ids), User.active)
            .order_by(User.branch, User.display_name))


def manager_names(branch_ids):
    """[(id, name)] of managers_of() these branches: the choices of a filter."""
    return list(managers_of(list(branch_ids)).select(User.id, User.display_name).tuples())
