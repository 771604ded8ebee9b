"""Administrators manage users and branches; every change is audited."""
import re

from models import AuditEvent, Branch, User


def _user_form(**overrides):
    data = {"username": "newbie", "display_name": "新同事", "password": "long-password-1",
            "roles": ["sales_rep"], "branch": "0", "language": "zh_CN",
            "sales_cycle_days": "28", "active": "y"}
    data.update(overrides)
    return data


def test_admin_creates_a_user(client, login_as, make):
    """A new user is saved with roles and branch, and the creation is audited."""
    admin = login_as("admin")
    branch = make.branch("GZ", "广州分公司")
    response = client.post("/admin/users/new", data=_user_form(branch=str(branch.id)))
    assert response.status_code == 303
    user = User.get(User.username == "newbie")
    assert user.roles == ["sales_rep"] and user.branch_id == branch.id
    assert user.check_password("long-password-1")
    event = AuditEvent.get(AuditEvent.action == "user_created")
    assert event.actor_id == admin.id and '"newbie"' in event.after
    assert "long-password-1" not in (event.after or "")
    page = client.get("/admin/users").get_data(as_text=True)
    row = re.search(f'<a href="/admin/users/{user.id}">newbie</a>.*?</tr>', page, re.S).group(0)
    assert "新同事" in row and '<span class="tag">客户经理</span>' in row and "广州分公司" in row
    assert "启用" in row  # active


def test_user_form_errors_save_nothing(client, login_as, make):
    """Bad input re-renders the form with messages in Chinese and writes nothing."""
    login_as("admin")
    make.user("taken", roles=("admin",))
    users, events = User.select().count(), AuditEvent.select().count()
    cases = [
        (_user_form(username=""), "必填"),
        (_user_form(username="bad name!"), "只能使用字母"),
        (_user_form(roles=[]), "请至少选择一个角色"),
        (_user_form(password="short"), "8"),
        (_user_form(), "必须属于一个分公司"),  # a sales rep without a branch
        (_user_form(username="taken", roles=["admin"]), "已被使用"),
        (_user_form(roles=["wizard"]), "wizard"),
    ]
    for data, message in cases:
        response = client.post("/admin/users/new", data=data)
        assert response.status_code == 200, data
        assert message in response.get_data(as_text=True), (data, message)
    assert User.select().count() == users
    assert AuditEvent.select().count() == events


def test_editing_audits_before_and_after(client, login_as, make):
    """An edit records the old and new values; an empty password keeps the old one."""
    login_as("admin")
    branch = make.branch("SH", "上海分公司")
    user = make.user("rep1", roles=("sales_rep",), branch=branch, display_name="旧名字")
    old_hash = user.password_hash
    response = client.post(f"/admin/users/{user.id}", data=_user_form(
        username="rep1", display_name="新名字", password="", branch=str(branch.id)))
    assert response.status_code == 303
    user = User.get_by_id(user.id)
    assert user.display_name == "新名字" and user.password_hash == old_hash
    event = AuditEvent.get(AuditEvent.action == "user_updated")
    assert ("display_name", "旧名字", "新名字") in event.changes()


def test_branches_are_managed_and_codes_unique(client, login_as, make):
    """A branch is created once; a second with the same code is refused."""
    login_as("admin")
    assert client.post("/admin/branches/new", data={"code": "CD", "name": "成都分公司",
                                                    "region": "西南"}).status_code == 303
    response = client.post("/admin/branches/new", data={"code": "CD", "name": "另一个"})
    assert "已被使用" in response.get_data(as_text=True)
    assert Branch.select().where(Branch.code == "CD").count() == 1
    assert "成都分公司" in client.get("/admin/branches").get_data(as_text=True)
    assert AuditEvent.select().where(AuditEvent.action == "branch_created").count() == 1


def test_missing_user_is_404(client, login_as):
    """Editing a user that does not exist answers 404."""
    login_as("admin")
    assert client.get("/admin/users/99999").status_code == 404


def test_users_are_found_by_name_branch_role_and_status_a_page_at_a_time(
        app, client, login_as, make):
    """The users page pages through a large company and narrows by name (Chinese or
    username), branch, role and status; htmx gets the table with the URL to push; a
    filter value that makes no sense is ignored, never an error page."""
    login_as("admin")
    app.config["PAGE_SIZE"] = 10
    gz, sh = make.branch("GZ", "广州分公司"), make.branch("SH", "上海分公司")
    for n in range(12):
        make.user(f"gz_rep{n:02}", roles=("sales_rep",), branch=gz, display_name=f"广州代表{n}")
    make.user("sh_bm", roles=("branch_manager",), branch=sh, display_name="上海经理")
    make.user("gone", roles=("sales_rep",), branch=sh, display_name="离职员工", active=False)

    def names(page):
        return re.findall(r'<a href="/admin/users/\d+">([^<]+)</a>', page)

    first = client.get("/admin/users").get_data(as_text=True)
    assert len(names(first)) == 10 and "共 15 条，第 1 / 2 页" in first
    assert names(first) == sorted(names(first))
    second = client.get("/admin/users?page=2").get_data(as_text=True)
    assert not set(names(first)) & set(names(second))
    assert names(client.get("/admin/users?q=上海").get_data(as_text=True)) == ["sh_bm"]
    assert names(client.get("/admin/users?q=rep11").get_data(as_text=True)) == ["gz_rep11"]
    by_branch = client.get(f"/admin/users?branch={sh.id}").get_data(as_text=True)
    assert names(by_branch) == ["gone", "sh_bm"]
    assert names(client.get("/admin/users?role=branch_manager").get_data(as_text=True)) == [
        "sh_bm"]
    assert names(client.get("/admin/users?status=inactive").get_data(as_text=True)) == ["gone"]
    assert "离职员工" not in client.get("/admin/users?status=active").get_data(as_text=True)
    nothing = client.get("/admin/users?q=无此人").get_data(as_text=True)
    assert names(nothing) == [] and "没有符合条件的用户" in nothing
    for junk in ("page=abc", "page=-1", "branch=x", "branch=99999999999999999999999",
                 "role=wizard", "status=maybe", "q=%00"):
        response = client.get(f"/admin/users?{junk}")
        assert response.status_code == 200 and len(names(response.get_data(as_text=True))) == 10
    partial = client.get(f"/admin/users?branch={gz.id}&q=代表&page=2",
                         headers={"HX-Request": "true"})
    assert "<html" not in partial.get_data(as_text=True)
    assert names(partial.get_data(as_text=True)) == ["gz_rep10", "gz_rep11"]
    assert partial.headers["HX-Push-Url"] == (
        f"/admin/users?page=2&q=%E4%BB%A3%E8%A1%A8&branch={gz.id}")
