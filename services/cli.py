"""The `flask --app app ...` commands. Each is thin: the work is in models/services."""
import datetime
import sys

import click
from flask_babel import force_locale

from models import Branch, DomainError, GradingCycle, User, db
from models.admin import save_user
from models.base import is_sqlite
from models.funnel import rollover
from models.people import ROLES
from models.schema import current_version, upgrade
from services.backup import backup_sqlite
from services.demo import DEMO_PASSWORD, build_demo, build_demo_meeting, demo_logins
from services.notify import test_channels


def _fail(message):
    """Print the error and exit non-zero. The commands speak English, as
    operators' scripts and logs do; domain messages are rendered in English too."""
    with force_locale("en"):
        click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def _print_logins():
    rows = demo_logins()
    if not rows:
        return
    click.echo(f"Demo logins (password for all: {DEMO_PASSWORD}):")
    for username, name, roles, branch, hint in rows:
        click.echo(f"  {username:<12} {name:<6} {roles} {branch}" + (f"  — {hint}" if hint else ""))
    click.echo("  (every branch has bm_<code> and rep_<code>_1..3)")
    meeting = GradingCycle.get_or_none(GradingCycle.phase == "committee")
    if meeting:
        click.echo(f"The meeting: log in as chair and as member1 in two browsers, then open "
                   f"/cycles/{meeting.id}/meeting ({meeting.name}).")


def register(app):
    @app.cli.command("init-db")
    def init_db():
        """Create the database and bring its schema to the latest version."""
        if current_version():
            click.echo(f"The database already exists (schema version {current_version()}).")
            return
        applied = upgrade()
        click.echo(f"Database created at schema version {applied[-1]}.")

    @app.cli.command("db-upgrade")
    def db_upgrade():
        """Apply the migrations the database has not had yet."""
        before = current_version()
        applied = upgrade()
        if applied:
            click.echo(f"Schema upgraded from version {before} to {applied[-1]}.")
        else:
            click.echo(f"Schema is up to date (version {before}).")

    @app.cli.command("seed-demo")
    @click.option("--seed", default=2027, show_default=True, help="Random seed.")
    @click.option("--customers", default=600, show_default=True)
    @click.option("--reps-per-branch", default=3, show_default=True)
    @click.option("--branches", default=6, show_default=True)
    @click.option("--if-empty", is_flag=True, help="Do nothing when users exist already.")
    def seed_demo(seed, customers, reps_per_branch, branches, if_empty):
        """Fill an empty database with a believable demo company."""
        if User.select().exists():
            if if_empty:
                return
            _fail("the database already has users; seed-demo fills only an empty database.")
        build_demo(seed=seed, customers=customers, reps_per_branch=reps_per_branch,
                   branches=branches)
        if customers:  # a second cycle, in committee review: the meeting to try
            build_demo_meeting(seed=seed)
        click.echo(f"Demo company created: {customers} customers.")
        _print_logins()

    @app.cli.command("demo-logins")
    def demo_logins():
        """Print the demo company's logins."""
        _print_logins()

    @app.cli.command("create-user")
    @click.argument("username")
    @click.option("--password", required=True)
    @click.option("--role", "roles", multiple=True, required=True,
                  help=f"One of: {', '.join(ROLES)}. Repeat for several.")
    @click.option("--branch", "branch_code", default=None, help="Branch code.")
    @click.option("--name", default=None, help="Display name.")
    @click.option("--language", default="zh_CN", show_default=True)
    def create_user(username, password, roles, branch_code, name, language):
        """Create a user; bad arguments exit non-zero and write nothing."""
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            _fail(f"unknown role {', '.join(unknown)}; choose from {', '.join(ROLES)}.")
        branch = None
        if branch_code:
            branch = Branch.get_or_none(Branch.code == branch_code)
            if branch is None:
                _fail(f"unknown branch {branch_code}.")
        if len(password) < 8:
            _fail("the password needs at least 8 characters.")
        try:
            save_user(None, username=username, display_name=name or username, roles=roles,
                      branch=branch, language=language, password=password)
        except DomainError as error:
            _fail(error)
        click.echo(f"User {username} created.")

    @app.cli.command("funnel-rollover")
    @click.option("--date", "on", default=None, help="The day to roll over as of "
                  "(YYYY-MM-DD; default today).")
    def funnel_rollover(on):
        """Send opportunities that sat in a stage longer than their owner's sales
        cycle back to the first stage (the weekly rollover)."""
        try:
            day = datetime.date.fromisoformat(on) if on else None
        except ValueError:
            _fail(f"--date takes YYYY-MM-DD, not {on!r}.")
        moved = rollover(day)
        click.echo(f"Weekly rollover: {len(moved)} stale opportunities sent back to the "
                   f"first stage.")

    @app.cli.command("notify-test")
    @click.argument("username")
    def notify_test(username):
        """Send a test notice to USERNAME through each of their channels at once (not
        through the queue) and print what each channel answered; exits 1 when one
        failed."""
        user = User.get_or_none(User.username == username)
        if user is None:
            _fail(f"no user {username}.")
        results = test_channels(user)
        for channel, ok, answer in results:
            click.echo(f"{channel}: {'ok' if ok else 'FAILED'} — {answer}")
        if not all(ok for _channel, ok, _answer in results):
            sys.exit(1)

    @app.cli.command("backup")
    @click.argument("path")
    def backup(path):
        """Copy the live SQLite database to PATH (safe while the app runs)."""
        if not is_sqlite():
            _fail("backup copies SQLite databases; for PostgreSQL use pg_dump.")
        try:
            size = backup_sqlite(db.database, path)
        except FileExistsError:
            _fail(f"{path} exists already; choose a new file.")
        click.echo(f"Backup written to {path} ({size:,} bytes).")
