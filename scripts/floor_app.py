"""The benchmark's floor: what a plain, well-written Flask page costs, outside Tierdesk.

scripts/bench.py serves this app beside Tierdesk, with the same gunicorn settings and
on the same database, and reports every Tierdesk page as a ratio to its page `/`. It
imports nothing of Tierdesk, so that Tierdesk's own per-request costs (its session
checks, its layout, its database setup) count against Tierdesk's pages, and a change
that makes every request faster shows in every ratio.

What a request here does is what the Flask and peewee documentation show: Flask-Login
with Flask's signed-cookie session, the user loaded from the database by primary key,
a connection opened before the request and closed after it (no pool), one more
primary-key lookup, and a small Jinja template that extends a layout.

    DATABASE_URL=sqlite:///bench.sqlite3 SECRET_KEY=... \\
        gunicorn --workers 2 'scripts.floor_app:create_app()'
"""
import os

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from flask import Flask, abort, redirect, render_template, request, url_for
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user
from flask_wtf.csrf import CSRFProtect
from jinja2 import DictLoader
from peewee import CharField, DatabaseProxy, IntegerField, Model
from playhouse.db_url import connect

database = DatabaseProxy()


class BaseModel(Model):
    class Meta:
        database = database


class Branch(BaseModel):
    name = CharField()

    class Meta:
        table_name = "branch"


class User(UserMixin, BaseModel):
    username = CharField()
    display_name = CharField()
    password_hash = CharField()
    branch_id = IntegerField(null=True)

    class Meta:
        table_name = "user"


TEMPLATES = {
    "layout.html": """<!doctype html>
<html lang="zh-CN">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}{% endblock %} · 参照页</title></head>
<body>
<header><nav>
  <a href="{{ url_for('home') }}">首页</a>
  {% if current_user.is_authenticated %}<span>{{ current_user.display_name }}</span>{% endif %}
</nav></header>
<main>{% block content %}{% endblock %}</main>
</body></html>""",
    "home.html": """{% extends "layout.html" %}
{% block title %}{{ branch.name if branch else "—" }}{% endblock %}
{% block content %}<h1>{{ branch.name if branch else "—" }}</h1>
<p>{{ current_user.display_name }}</p>{% endblock %}""",
    "login.html": """{% extends "layout.html" %}
{% block title %}登录{% endblock %}
{% block content %}<form method="post">
<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<input name="username"> <input name="password" type="password"> <button>登录</button>
</form>{% endblock %}""",
}


def create_app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
    app.jinja_loader = DictLoader(TEMPLATES)
    database.initialize(connect(os.environ["DATABASE_URL"]))
    CSRFProtect(app)
    login_manager = LoginManager(app)
    login_manager.login_view = "login"
    hasher = PasswordHasher()

    @login_manager.user_loader
    def load_user(user_id):
        return User.get_or_none(User.id == int(user_id))

    @app.before_request
    def open_connection():
        database.connect()

    @app.teardown_request
    def close_connection(exc):
        if not database.is_closed():
            database.close()

    @app.route("/")
    @login_required
    def home():
        branch = Branch.get_or_none(Branch.id == (current_user.branch_id or 1))
        return render_template("home.html", branch=branch)

    @app.route("/login", methods=["GET", "POST"])
    def login():
        if request.method == "POST":
            user = User.get_or_none(User.username == request.form.get("username", ""))
            try:
                ok = user is not None and hasher.verify(user.password_hash,
                                                        request.form.get("password", ""))
            except (VerifyMismatchError, InvalidHashError):
                ok = False
            if not ok:
                abort(401)
            login_user(user)
            return redirect(url_for("home"))
        return render_template("login.html")

    @app.route("/healthz")
    def healthz():
        database.execute_sql("SELECT 1")
        return {"status": "ok"}

    return app
