"""The stable commands: init-db, db-upgrade, seed-demo, create-user, backup."""
import sqlite3
import threading

from models import AuditEvent, Branch, Customer, CustomerYear, ScorecardTemplate, Tier, User, db
from models.schema import latest_version


def test_create_user_with_roles_and_branch(runner, make):
    """create-user makes a user who can log in with the given roles and branch."""
    make.branch("SH", "上海分公司")
    result = runner.invoke(args=["create-user", "lin", "--password", "long-password",
                                 "--role", "branch_manager", "--role", "committee_member",
                                 "--branch", "SH", "--name", "林喆"])
    assert result.exit_code == 0, result.output
    user = User.get(User.username == "lin")
    assert user.roles == ["committee_member", "branch_manager"]
    assert user.branch.code == "SH" and user.display_name == "林喆"
    assert user.check_password("long-password")
    assert AuditEvent.select().where(AuditEvent.action == "user_created").count() == 1


def test_create_user_bad_arguments_write_nothing(runner, make):
    """Unknown role, unknown branch, duplicate user: exit non-zero, clear message, no row."""
    make.user("taken", roles=("admin",))
    users, events = User.select().count(), AuditEvent.select().count()
    cases = [
        (["create-user", "a1", "--password", "long-password", "--role", "wizard"],
         "unknown role wizard"),
        (["create-user", "a2", "--password", "long-password", "--role", "sales_rep",
          "--branch", "NOPE"], "unknown branch NOPE"),
        (["create-user", "taken", "--password", "long-password", "--role", "admin"],
         "taken"),
        (["create-user", "a3", "--password", "long-password", "--role", "sales_rep"],
         "branch"),
        (["create-user", "a4", "--password", "short", "--role", "admin"], "8 characters"),
    ]
    for args, message in cases:
        result = runner.invoke(args=args)
        assert result.exit_code != 0, args
        assert message in result.output, (args, result.output)
    assert User.select().count() == users
    assert AuditEvent.select().count() == events


def test_init_db_and_upgrade_report_the_version(runner):
    """init-db on a ready database says so; db-upgrade says it is up to date."""
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0 and "already exists" in result.output
    result = runner.invoke(args=["db-upgrade"])
    assert result.exit_code == 0 and f"up to date (version {latest_version()})" in result.output


def test_seed_demo_builds_a_believable_company(runner):
    """seed-demo: 6 branches, ~30 users in every role, 600 customers with 3 years of figures."""
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "demo2027" in result.output and "admin" in result.output
    assert Branch.select().count() == 6
    assert 28 <= User.select().count() <= 32
    for role in ("admin", "committee_chair", "committee_member", "branch_manager",
                 "sales_director", "general_manager", "sales_rep"):
        assert User.with_role(role).exists(), role
    assert Customer.select().count() == 600
    assert [t.code for t in Tier.ordered()] == ["A", "B", "C", "D"]
    default = ScorecardTemplate.get(ScorecardTemplate.name == "客户质量等级评估表")
    assert sorted(b.min_total for b in default.bands) == [0, 60, 75]
    assert ScorecardTemplate.select().where(ScorecardTemplate.kind == "prospect").exists()
    years = {y.year for y in CustomerYear.select(CustomerYear.year).distinct()}
    assert len(years) == 3
    names = [c.name for c in Customer.select()]
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in names)
    assert len(set(names)) > 550
    # The same seed gives the same company.
    assert runner.invoke(args=["seed-demo"]).exit_code != 0  # refuses a filled database
    assert runner.invoke(args=["seed-demo", "--if-empty"]).exit_code == 0


def test_the_demo_has_a_meeting_to_open_as_chair_and_member(runner, client):
    """seed-demo adds a small cycle in committee review: sheets submitted, a few
    customers scored, one settled, the meeting on the next; the login list says whom
    to try, and the chair and a member each open that meeting."""
    from models import Assessment, GradingCycle, Score
    from tests.conftest import login
    result = runner.invoke(args=["seed-demo", "--customers", "60"])
    assert result.exit_code == 0, result.output
    phases = {c.phase for c in GradingCycle.select()}
    assert phases == {"preliminary", "committee"}
    meeting = GradingCycle.get(GradingCycle.phase == "committee")
    sheets = Assessment.select().where(Assessment.cycle == meeting)
    assert 6 <= sheets.count() <= 12
    assert sheets.where(Assessment.preliminary_submitted_at.is_null()).count() == 0
    assert sheets.where(Assessment.finalised_at.is_null(False)).count() == 1
    scored = {s.assessment_id for s in Score.select().where(
        Score.stage == "committee", Score.assessment.in_(sheets))}
    assert len(scored) == 3 and meeting.current_assessment in scored
    assert f"/cycles/{meeting.id}/meeting" in result.output
    assert "chair" in result.output and "member1" in result.output
    for username in ("chair", "member1"):
        login(client, username, "demo2027")
        page = client.get(f"/cycles/{meeting.id}/meeting").get_data(as_text=True)
        current = Assessment.get_by_id(meeting.current_assessment)
        assert current.customer.name in page, username
        client.post("/logout")


def test_seed_is_deterministic(app, tmp_path):
    """Two databases seeded with the same seed hold the same customers."""
    from app import create_app
    from models.schema import upgrade
    from services.demo import build_demo

    def snapshot(path):
        other = create_app({"TESTING": True, "SECRET_KEY": "x",
                            "DATABASE_URL": f"sqlite:///{path}"})
        with other.app_context():
            upgrade()
            build_demo(seed=7, customers=50, branches=2, reps_per_branch=1)
            rows = [(c.code, c.name, c.nature, c.tier_id) for c in Customer.select()]
        db.close()
        return rows

    assert snapshot(tmp_path / "a.db") == snapshot(tmp_path / "b.db")


def test_backup_while_writes_go_on(sqlite_app, tmp_path):
    """A backup taken during a stream of writes restores to an intact database."""
    runner = sqlite_app.test_cli_runner()
    Branch.create(code="BK", name="备份分公司")
    source = db.database
    db.close()
    stop = threading.Event()
    written = []

    def writer():
        conn = sqlite3.connect(source, timeout=10)
        n = 0
        while not stop.is_set() and n < 20000:
            n += 1
            conn.execute("INSERT INTO customer (code, name, name_initials, kind, nature, "
                         "industry, region, branch_id, provisional, created_at, updated_at) "
                         "VALUES (?, ?, '', 'existing', 'private', 'it', '', 1, 0, "
                         "datetime('now'), datetime('now'))", (f"W{n:06d}", f"并发客户{n}"))
            conn.commit()
            written.append(n)
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    while len(written) < 200:
        pass
    target = tmp_path / "backup.db"
    result = runner.invoke(args=["backup", str(target)])
    stop.set()
    thread.join()
    assert result.exit_code == 0, result.output
    restored = sqlite3.connect(target)
    assert restored.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    copied = restored.execute("SELECT COUNT(*) FROM customer").fetchone()[0]
    assert 200 <= copied <= len(written)
    assert restored.execute("SELECT name FROM branch WHERE code='BK'").fetchone()[0] == "备份分公司"
    restored.close()
    again = runner.invoke(args=["backup", str(target)])
    assert again.exit_code != 0 and "exists" in again.output


def test_a_backup_is_readable_by_this_user_alone(sqlite_app, tmp_path):
    """`flask backup` writes its copy with mode 0600, in a folder it makes with 0700."""
    from tests.test_db import mode
    runner = sqlite_app.test_cli_runner()
    Branch.create(code="BK", name="备份分公司")
    db.close()
    target = tmp_path / "backups" / "tierdesk.db"
    result = runner.invoke(args=["backup", str(target)])
    assert result.exit_code == 0, result.output
    assert (mode(target.parent), mode(target)) == ("0o700", "0o600")
    restored = sqlite3.connect(target)
    assert restored.execute("SELECT name FROM branch WHERE code='BK'").fetchone() == ("备份分公司",)
    restored.close()
