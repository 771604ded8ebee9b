"""The one permission check: role decorators and branch-scoped lookups."""
from functools import wraps

from flask import abort, request
from flask_login import current_user

from models import audit


def deny(status=403, **details):
    """Record the refusal in the audit trail, then abort with `status`."""
    audit("access_denied", object_type=details.pop("object_type", ""),
          object_id=details.pop("object_id", ""), after=details or None)
    abort(status)


def role_required(*roles):
    """Let the view run only for users holding one of `roles`; others get 403."""
    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.has_role(*roles):
                deny(403, path=request.path, needs=list(roles))
            return view(*args, **kwargs)
        wrapped.required_roles = roles
        return wrapped
    return decorator


def get_or_404(model, record_id=None, *, where=None, user=None):
    """The `model` record #record_id (and/or matching `where`), or 404: the one lookup
    of a record named in a URL or a form.

    A model with a branch scope (`visible_to`) is read through it for `user` (the
    current user by default): a record that exists outside the scope answers 404 like
    one that does not exist, and the attempt is audited.
    """
    conditions = ([model.id == record_id] if record_id is not None else []) + \
        ([where] if where is not None else [])
    scoped = hasattr(model, "visible_to")
    query = model.visible_to(user or current_user) if scoped else model.select()
    record = query.where(*conditions).first()
    if record is None:
        hidden = scoped and model.select(model.id).where(*conditions).scalar()
        if hidden:
            deny(404, object_type=model._meta.table_name, object_id=hidden)
        abort(404)
    return record
