"""The one permission check: role decorators and branch-scoped lookups."""
from functools import wraps

from flask import abort
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
                from flask import request
                deny(403, path=request.path, needs=list(roles))
            return view(*args, **kwargs)
        wrapped.required_roles = roles
        return wrapped
    return decorator


def get_visible_or_404(model, record_id, user=None):
    """Fetch `model` #record_id through `model.visible_to(user)`.

    A record that exists but lies outside the user's scope answers 404 like
    one that does not exist, and the attempt is audited.
    """
    user = user or current_user
    record = model.visible_to(user).where(model.id == record_id).first()
    if record is None:
        if model.get_or_none(model.id == record_id) is not None:
            deny(404, object_type=model._meta.table_name, object_id=record_id)
        abort(404)
    return record
