"""The audit trail: append-only, written by one helper, filtered by admins."""
import pytest

from models import AuditEvent
from models.audit import AuditIsAppendOnly, audit


def test_audit_rows_cannot_be_changed_or_deleted(app, make):
    """The model refuses every update and delete path."""
    with app.test_request_context():
        event = audit("something", object_type="thing", object_id=1, after={"a": 1})
    event.action = "rewritten"
    with pytest.raises(AuditIsAppendOnly):
        event.save()
    with pytest.raises(AuditIsAppendOnly):
        event.delete_instance()
    with pytest.raises(AuditIsAppendOnly):
        AuditEvent.update(action="x")
    with pytest.raises(AuditIsAppendOnly):
        AuditEvent.delete()
    assert AuditEvent.get_by_id(event.id).action == "something"


def test_no_code_edits_or_deletes_audit_rows():
    """Outside models/audit.py nothing in the app touches audit rows but to add them."""
    from pathlib import Path
    root = Path(__file__).parent.parent
    for path in root.glob("**/*.py"):
        if any(part in (".venv", "tests") for part in path.parts) or path.name == "audit.py":
            continue
        text = path.read_text()
        for forbidden in ("AuditEvent.update", "AuditEvent.delete", "DELETE FROM audit",
                          "UPDATE audit"):
            assert forbidden not in text, (path, forbidden)


def test_admin_filters_the_trail(client, login_as, make):
    """Filtering by action and actor narrows the list; htmx gets only the table."""
    login_as("admin", username="root")
    client.post("/admin/branches/new", data={"code": "HZ", "name": "杭州分公司"})
    page = client.get("/audit?action=branch_created").get_data(as_text=True)
    assert "branch_created" in page and "杭州分公司" in page
    assert "<code>login</code>" not in page
    fragment = client.get("/audit?actor=nobody", headers={"HX-Request": "true"})
    assert "没有符合条件的记录" in fragment.get_data(as_text=True)
    assert "<html" not in fragment.get_data(as_text=True)


def test_user_text_in_the_trail_is_escaped(client, login_as):
    """A branch named with HTML shows as text, not markup."""
    login_as("admin")
    client.post("/admin/branches/new", data={"code": "XSS", "name": "<script>alert(1)</script>"})
    page = client.get("/audit").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page
