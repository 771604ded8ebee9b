"""A believable demo company, the same every time for the same seed.

`build_demo()` serves `flask seed-demo` (600 customers) and the benchmark
(20,000 customers, 300 users) alike.
"""
import datetime
import random
from decimal import Decimal

from peewee import fn

from models import (
    Activity,
    Assessment,
    Branch,
    Contact,
    Customer,
    CustomerYear,
    GradingCycle,
    Opportunity,
    Score,
    ScorecardTemplate,
    StageMove,
    Tier,
    TierHistory,
    User,
    audit,
    db,
    utcnow,
)
from models.allocation import save_rule
from models.approvals import ApprovalStep, TierChangeRequest, file_request, roles_for
from models.base import is_sqlite
from models.customers import pinyin_initials, refresh_placements
from models.cycles import (
    committee_summary,
    finalise,
    save_cycle,
    save_score,
    set_current,
    submit_preliminary,
)
from models.funnel import LADDER, OPEN_END, TERMINAL
from models.people import ROLES
from models.phases import advance
from models.scorecards import create_template
from models.service_requests import (
    ServiceRequest,
    log_request,
    move_request,
    record_follow_up,
    response_terms,
)
from models.tiers import TierPolicy
from models.value_classes import recompute as recompute_value_classes

DEMO_PASSWORD = "demo2027"  # noqa: S105 - printed for demo logins

BRANCHES = [
    ("SH", "上海分公司", "华东"), ("BJ", "北京分公司", "华北"), ("GZ", "广州分公司", "华南"),
    ("SZ", "深圳分公司", "华南"), ("CD", "成都分公司", "西南"), ("WH", "武汉分公司", "华中"),
    ("NJ", "南京分公司", "华东"), ("XA", "西安分公司", "西北"), ("SY", "沈阳分公司", "东北"),
    ("HZ", "杭州分公司", "华东"), ("CQ", "重庆分公司", "西南"), ("TJ", "天津分公司", "华北"),
]
CITY_OF = {"SH": "上海", "BJ": "北京", "GZ": "广州", "SZ": "深圳", "CD": "成都", "WH": "武汉",
           "NJ": "南京", "XA": "西安", "SY": "沈阳", "HZ": "杭州", "CQ": "重庆", "TJ": "天津"}

TIERS = [("A", "A级", "Tier A", 1, "#b45309"), ("B", "B级", "Tier B", 2, "#1d4ed8"),
         ("C", "C级", "Tier C", 3, "#0f766e"), ("D", "D级", "Tier D", 4, "#64748b")]

# The default scorecard of DESIGN.md: (name, max, [(level, min, max)]).
DEFAULT_CRITERIA = [
    ("客户性质", 15, [("政府/国有企业", 15, 15), ("股份公司", 10, 10), ("民营企业", 5, 5)]),
    ("客户实力", 15, [("强大", 10, 15), ("一般", 5, 10), ("较弱", 0, 5)]),
    ("客户成长性", 15, [("高成长", 10, 15), ("中成长", 5, 10), ("低成长", 0, 5)]),
    ("利润贡献", 15, [("贡献大", 10, 15), ("一般", 5, 10), ("较小", 0, 5)]),
    ("客户关系", 20, [("与最高层关系默契", 15, 20), ("与高层关系默契", 10, 15),
                      ("没有高层默契关系", 0, 10)]),
    ("战略重要性", 20, [("非常重要", 15, 20), ("一般重要", 10, 15), ("不重要", 0, 10)]),
]
DEFAULT_BANDS = [("A", 75), ("B", 60), ("C", 0)]
# Prospects are graded on their potential (DESIGN.md): nature, assets, revenue,
# growth, and how much they may need from us.
PROSPECT_CRITERIA = [
    ("企业性质", 20, [("政府/国有企业", 20, 20), ("股份公司/外资企业", 15, 15),
                      ("民营企业", 10, 10), ("个人", 5, 5)]),
    ("资产规模", 20, [("大型", 15, 20), ("中型", 8, 15), ("小型", 0, 8)]),
    ("营业收入", 20, [("一亿元以上", 15, 20), ("一千万至一亿元", 8, 15), ("一千万元以下", 0, 8)]),
    ("发展速度", 20, [("快速", 15, 20), ("稳定", 8, 15), ("缓慢", 0, 8)]),
    ("潜在需求", 20, [("大", 15, 20), ("一般", 8, 15), ("小", 0, 8)]),
]
PROSPECT_BANDS = [("A", 80), ("B", 60), ("C", 40), ("D", 0)]

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
            "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
            "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛",
         "明", "超", "秀英", "霞", "平", "刚", "桂英", "志强", "建华", "晓东", "海燕", "文博",
         "子涵", "雨桐", "浩然", "思远", "嘉怡", "俊杰", "婷婷", "国栋", "建国", "堃", "喆",
         "昊天", "晓明", "丽华", "雪梅", "德华", "立新", "春梅", "永刚"]
WORDS = ["浦江", "华信", "宏达", "中联", "金桥", "东方", "恒通", "瑞丰", "天成", "新元", "长城",
         "海天", "鼎盛", "嘉禾", "远航", "佳和", "永安", "信达", "国泰", "汇丰", "星河", "锦程",
         "鸿运", "博远", "正大", "华夏", "明珠", "盛世", "万通", "联创", "同舟", "广源", "启明",
         "安泰", "中天", "康达", "利民", "昌盛", "凯旋", "德隆"]
TRADES = {
    "manufacturing": ["精密机械", "汽车零部件", "电子元件", "纺织", "包装材料", "五金制品"],
    "construction": ["建设工程", "建筑装饰", "路桥工程"],
    "energy": ["能源", "电力设备", "新能源"],
    "transport": ["物流", "国际货运", "供应链管理"],
    "retail": ["商贸", "百货", "连锁超市"],
    "finance": ["投资", "融资租赁"],
    "it": ["信息技术", "软件", "网络科技"],
    "healthcare": ["医药", "医疗器械"],
    "education": ["教育科技", "培训"],
    "agriculture": ["农业科技", "食品"],
    "real_estate": ["置业", "物业管理"],
    "public": ["公共服务"],
}
FORMS = {"state_owned": ["集团有限公司", "有限责任公司"], "joint_stock": ["股份有限公司"],
         "private": ["有限公司", "有限责任公司"], "foreign": ["(中国)有限公司", "有限公司"],
         "government": [], "individual": []}
NATURE_WEIGHTS = [("state_owned", 14), ("joint_stock", 18), ("private", 50), ("foreign", 10),
                  ("government", 5), ("individual", 3)]
GOV_UNITS = ["交通运输局", "住房和城乡建设局", "教育局", "卫生健康委员会", "发展和改革委员会"]


def _person(rng):
    return rng.choice(SURNAMES) + rng.choice(GIVEN)


def _weighted(rng, pairs):
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def _customer_name(rng, city, nature, industry):
    if nature == "government":
        return f"{city}市{rng.choice(GOV_UNITS)}", "public"
    if nature == "individual":
        return f"{_person(rng)}（个体经营）", industry
    return f"{city}{rng.choice(WORDS)}{rng.choice(TRADES[industry])}{rng.choice(FORMS[nature])}", \
        industry


def demo_email(username):
    """A demo user's e-mail address: example.com, which never delivers anywhere."""
    return f"{username.replace('_', '.')}@example.com"


def ensure_reference_data():
    """Tiers A–D, the default scorecard and the prospects' scorecard, when missing.
    Returns the default (existing customers') template."""
    if not Tier.select().exists():
        Tier.insert_many([dict(code=c, name_zh=z, name_en=e, rank=r, colour=col)
                          for c, z, e, r, col in TIERS]).execute()
    template = ScorecardTemplate.get_or_none(ScorecardTemplate.name == "客户质量等级评估表")
    if template is None:
        template = create_template("客户质量等级评估表", "existing", DEFAULT_CRITERIA,
                                   DEFAULT_BANDS)
        create_template("潜在客户评估表", "prospect", PROSPECT_CRITERIA, PROSPECT_BANDS)
    return template


def _portfolio_figures(rng, sales, latest):
    """A share of wallet (%) and an upcoming volume (元) for a customer's latest year,
    spread over all four quadrants of the default thresholds (30 %, 1,000,000 元); about
    one customer in ten has none yet, and earlier years have none."""
    if not latest or rng.random() < 0.1:
        return {"share_of_wallet": None, "upcoming_volume": None}
    share = min(100.0, rng.betavariate(1.6, 2.4) * 100)
    volume = sales * rng.uniform(0.05, 0.6)
    return {"share_of_wallet": Decimal(round(share, 2)).quantize(Decimal("0.01")),
            "upcoming_volume": Decimal(round(volume, -3)).quantize(Decimal("0.01"))}


def _negative_values(rng, figures, latest):
    """Make a few customers cost more than they bring in the latest year, so that the
    value classes' 负值客户 has members: about one in thirty makes a loss, about one in
    twenty collects less than 60 % of what it owes. A generator of its own leaves every
    other figure as it was."""
    for row in figures:
        if row["year"] != latest:
            continue
        draw = rng.random()
        if draw < 0.033:
            row["profit"] = -(row["sales"] * Decimal(rng.uniform(0.01, 0.08))).quantize(
                Decimal("0.01"))
        elif draw < 0.083:
            row["collection_rate"] = Decimal(round(rng.uniform(30, 59.5), 2)).quantize(
                Decimal("0.01"))


def build_demo(seed=2027, customers=600, reps_per_branch=3, branches=6, today=None,
               funnel=True):
    """Create branches, users, tiers, the default scorecard and customers, and
    (with `funnel`) a year of the reps' sales funnel.

    Deterministic: the same arguments give the same company.
    """
    rng = random.Random(seed)
    today = today or datetime.date(2026, 11, 25)
    probe = User(display_name="")
    probe.set_password(DEMO_PASSWORD)
    password_hash = probe.password_hash  # one hash serves every demo user
    with db.atomic():
        ensure_reference_data()
        branch_rows = [Branch.create(code=c, name=n, region=r) for c, n, r in BRANCHES[:branches]]
        if branches > len(BRANCHES):
            for i in range(len(BRANCHES), branches):
                branch_rows.append(Branch.create(code=f"B{i + 1:02d}", name=f"第{i + 1}分公司",
                                                 region="其他"))

        def user(username, roles, branch=None, name=None, language="zh_CN"):
            u = User(username=username, display_name=name or _person(rng),
                     password_hash=password_hash, branch=branch, language=language,
                     email=demo_email(username))
            u.roles = roles
            u.save()
            return u

        admin = user("admin", ["admin"], name="系统管理员")
        user("chair", ["committee_chair"], name="周国栋")
        for i in (1, 2, 3):
            user(f"member{i}", ["committee_member"])
        user("director", ["sales_director", "committee_member"], name="林思远")
        user("gm", ["general_manager"], name="陈建华")
        reps_by_branch = {}
        for branch in branch_rows:
            code = branch.code.lower()
            user(f"bm_{code}", ["branch_manager"], branch)
            reps_by_branch[branch.id] = [
                user(f"rep_{code}_{i}", ["sales_rep"], branch,
                     language="en" if (branch.code == "SZ" and i == 3) else "zh_CN")
                for i in range(1, reps_per_branch + 1)]

        tiers = {t.code: t for t in Tier.select()}
        rows, figures = [], []
        years = [today.year - 2, today.year - 1, today.year]
        for n in range(1, customers + 1):
            branch = branch_rows[(n - 1) % len(branch_rows)]
            nature = _weighted(rng, NATURE_WEIGHTS)
            industry = rng.choice(list(TRADES))
            name, industry = _customer_name(rng, CITY_OF.get(branch.code, "江南"), nature,
                                            industry)
            if any(r["name"] == name for r in rows[-50:]):
                name = name.replace("公司", f"第{n % 9 + 1}分公司", 1) if "公司" in name \
                    else name + f"（{n}）"
            kind = "prospect" if rng.random() < 0.15 else "existing"
            since = None if kind == "prospect" else today - datetime.timedelta(
                days=rng.randint(60, 365 * 12))
            rows.append(dict(
                code=f"C{n:05d}", name=name, name_initials=pinyin_initials(name), kind=kind,
                nature=nature, industry=industry, region=branch.region, branch=branch.id,
                account_manager=rng.choice(reps_by_branch[branch.id]).id if reps_by_branch[
                    branch.id] else None,
                tier=None, provisional=bool(since and (today - since).days < 183),
                cooperation_since=since))
        for start in range(0, len(rows), 500):
            Customer.insert_many(rows[start:start + 500]).execute()

        # Figures: lognormal sales, with steady growth or decline per customer.
        # The portfolio's share and upcoming volume come from a generator of their own,
        # so that they leave every other figure of the company as it was.
        portfolio_rng = random.Random(f"portfolio-{seed}")
        by_sales = []
        for customer in Customer.select(Customer.id, Customer.kind, Customer.cooperation_since):
            if customer.kind == "prospect":
                continue
            base = rng.lognormvariate(15.2, 1.1)  # median ~4 million 元
            trend = rng.uniform(-0.15, 0.35)
            margin = rng.uniform(0.03, 0.22)
            for offset, year in enumerate(years):
                if customer.cooperation_since and customer.cooperation_since.year > year:
                    continue
                sales = base * (1 + trend) ** offset
                figures.append(dict(
                    customer=customer.id, year=year,
                    sales=Decimal(round(sales, 2)).quantize(Decimal("0.01")),
                    profit=Decimal(round(sales * margin, 2)).quantize(Decimal("0.01")),
                    collection_rate=Decimal(round(rng.uniform(62, 100), 2)).quantize(
                        Decimal("0.01")),
                    credit_days=rng.choice([0, 15, 30, 30, 45, 60, 90]),
                    **_portfolio_figures(portfolio_rng, sales, offset == len(years) - 1)))
            by_sales.append((base * (1 + trend) ** 2, customer.id))
        _negative_values(random.Random(f"value-classes-{seed}"), figures, years[-1])
        for start in range(0, len(figures), 500):
            CustomerYear.insert_many(figures[start:start + 500]).execute()
        refresh_placements()
        recompute_value_classes()

        # Current tiers follow this year's sales: top 10% A, next 25% B, 40% C, rest D.
        by_sales.sort(reverse=True)
        total = len(by_sales) or 1
        for position, (_sales, customer_id) in enumerate(by_sales):
            share = position / total
            code = "A" if share < 0.10 else "B" if share < 0.35 else "C" if share < 0.75 else "D"
            by_sales[position] = (code, customer_id)
        for code in tiers:
            ids = [cid for c, cid in by_sales if c == code]
            for start in range(0, len(ids), 500):
                Customer.update(tier=tiers[code].id).where(
                    Customer.id.in_(ids[start:start + 500])).execute()
        _contacts_activities_history(rng, today, tiers, dict((cid, c) for c, cid in by_sales))
        if customers:  # an empty book (the import timing's) has nothing to grade
            _grading_cycle(today, admin)
        _policies(today, admin)
        _tier_change_requests(rng, today)
        _service_requests(random.Random(f"requests-{seed}"))
        _allocation_rules(admin, reps_by_branch, tiers)
        if funnel:
            build_funnel_history(seed=seed, today=today)
        audit("demo_seeded", actor=admin, object_type="database",
              after={"seed": seed, "customers": customers, "branches": branches})


def _allocation_rules(admin, reps_by_branch, tiers):
    """Each branch's rules: its A customers to its first rep (a dedicated account
    manager), manufacturers to its second, everyone else to a pool of all its reps."""
    for branch_id, reps in reps_by_branch.items():
        if len(reps) < 2 or "A" not in tiers:
            continue
        save_rule(None, admin, branch_id, [reps[0].id], tier=tiers["A"].id)
        save_rule(None, admin, branch_id, [reps[1].id], industry="manufacturing")
        save_rule(None, admin, branch_id, [rep.id for rep in reps])


TITLES = ["总经理", "副总经理", "采购经理", "采购主管", "财务总监", "行政主管", "项目经理",
          "技术总监", "董事长助理", "供应链经理"]
NOTES = {
    "call": ["电话沟通下季度订单计划", "确认发货时间与数量", "了解对方预算安排",
             "回访产品使用情况"],
    "visit": ["上门拜访，与采购部座谈", "陪同技术人员现场调试", "年度互访，双方高层会谈",
              "参观客户新厂区"],
    "email": ["发送新产品资料", "邮件确认合同条款", "寄送对账单"],
    "holiday_greeting": ["春节问候并寄送贺卡", "中秋节送月饼", "国庆节短信问候"],
    "sales_analysis": ["季度销售分析：同比增长", "半年度回款情况分析", "年度采购结构分析"],
    "complaint": ["客户反映交货延迟，已协调解决", "产品质量投诉，已安排更换"],
}
# How often each tier's account manager gets in touch, in days (roughly the policy).
CONTACT_EVERY = {"A": 30, "B": 45, "C": 60, "D": 120}


def _contacts_activities_history(rng, today, tiers, tier_of):
    """Contacts, a year of logged activities and the tier history of each customer."""
    customers = list(Customer.select(Customer.id, Customer.account_manager,
                                     Customer.cooperation_since, Customer.kind))
    contacts, activities, history = [], [], []
    for customer in customers:
        for _ in range(rng.randint(1, 3)):
            contacts.append(dict(
                customer=customer.id, name=_person(rng), title=rng.choice(TITLES),
                phone=f"1{rng.choice('3589')}{rng.randint(0, 9)}{rng.randint(10000000, 99999999)}",
                email=""))
        if customer.kind == "prospect":
            continue
        code = tier_of.get(customer.id, "D")
        every = CONTACT_EVERY[code]
        day = today - datetime.timedelta(days=rng.randint(0, every * 2))
        start = today - datetime.timedelta(days=365)
        while day > start and (customer.cooperation_since is None
                               or day >= customer.cooperation_since):
            kind = rng.choices(list(NOTES), weights=[50, 15, 15, 8, 8, 4])[0]
            activities.append(dict(customer=customer.id, kind=kind, occurred_on=day,
                                   user=customer.account_manager_id,
                                   notes=rng.choice(NOTES[kind])))
            day -= datetime.timedelta(days=max(3, int(rng.gauss(every, every / 3))))
        since = customer.cooperation_since or today
        first = max(since, datetime.date(today.year - 2, 4, 1))
        previous = rng.choice([code, code, chr(min(ord(code) + 1, ord("D")))])
        history.append(dict(customer=customer.id, tier=tiers[previous].id, effective_on=first,
                            source="initial", reference=""))
        if (datetime.date(today.year, 4, 1) > first):
            history.append(dict(customer=customer.id, tier=tiers[code].id,
                                effective_on=datetime.date(today.year, 4, 1), source="cycle",
                                reference=f"{today.year}年度客户分级评定"))
    for rows, model in ((contacts, Contact), (activities, Activity), (history, TierHistory)):
        for start in range(0, len(rows), 500):
            model.insert_many(rows[start:start + 500]).execute()


def _grading_cycle(today, admin):
    """Next year's grading, started: branch managers have preliminary sheets to fill."""
    chair = User.get(User.username == "chair")
    members = list(User.select().where(User.username.in_(["member1", "member2", "member3",
                                                           "director"])))
    template = ScorecardTemplate.get(ScorecardTemplate.kind == "existing")
    cycle = save_cycle(None, admin, name=f"{today.year + 1}年度客户分级评定", year=today.year + 1,
                       template_existing=template, template_prospect=None,
                       scope={"kinds": ["existing"]}, chair=chair, members=members,
                       meeting_from=datetime.date(today.year + 1, 3, 25),
                       meeting_to=datetime.date(today.year + 1, 3, 26))
    advance(cycle, chair)



# Remarks a branch manager writes under a preliminary sheet.
PRELIMINARY_REMARKS = ["合作稳定，回款及时，建议维持现有等级。",
                       "今年采购量明显增长，建议上调一级。",
                       "高层关系良好，但利润贡献一般。", "回款偶有拖延，需关注资信情况。"]


def build_demo_meeting(seed=2027, size=12, today=None):
    """A smaller cycle already in committee review, beside the one in 初评: `size`
    customers of every branch with their preliminary sheets filled and submitted by
    the branch managers, three customers scored by members 1 and 2, the first of them
    settled by the chair, and the meeting on the second. So a newcomer can open the
    meeting as the chair and as a member at once. Written through the same rules as
    the screens (save_score, submit_preliminary, finalise). Returns the cycle."""
    rng = random.Random(seed + 1)
    today = today or datetime.date(2026, 11, 25)
    admin = User.get(User.username == "admin")
    chair = User.get(User.username == "chair")
    members = list(User.select().where(User.username.in_(["member1", "member2", "director"]))
                   .order_by(User.username))
    template = ScorecardTemplate.get(ScorecardTemplate.kind == "existing")
    picked, per_branch = [], {}
    for customer in (Customer.select(Customer.id, Customer.branch)
                     .where(Customer.kind == "existing", Customer.tier.is_null(False))
                     .order_by(Customer.code)):
        if per_branch.get(customer.branch_id, 0) < max(1, size // 6) and len(picked) < size:
            per_branch[customer.branch_id] = per_branch.get(customer.branch_id, 0) + 1
            picked.append(customer.id)
    cycle = save_cycle(None, admin, name=f"{today.year}年度重点客户复评（演示）", year=today.year,
                       template_existing=template, template_prospect=None,
                       scope={"customers": picked}, chair=chair, members=members,
                       meeting_from=today, meeting_to=today)
    cycle = advance(cycle, chair)
    managers = {u.branch_id: u for u in User.with_role("branch_manager")}
    criteria = template.criteria_with_levels()
    sheets = list(Assessment.select().where(Assessment.cycle == cycle)
                  .order_by(Assessment.agenda_position))

    def score(sheet, user, stage):
        for criterion in criteria:
            level = rng.choice(criterion.levels)
            save_score(sheet, user, stage, criterion.id, level.id,
                       rng.randint(level.min_points, level.max_points), "", 0)

    for sheet in sheets:
        score(sheet, managers[sheet.branch_id], "preliminary")
        submit_preliminary(sheet, managers[sheet.branch_id], rng.choice(PRELIMINARY_REMARKS))
    cycle = advance(cycle, chair)
    for sheet in sheets[:3]:
        for member in members[:2]:
            score(Assessment.get_by_id(sheet.id), member, "committee")
    first = Assessment.get_by_id(sheets[0].id)
    finalise(first, chair, committee_summary(first)["mean_grade"])
    set_current(cycle, chair, Assessment.get_by_id(sheets[1].id))
    return cycle

# Believable service policies (服务政策), per tier code: (contact, visit, analysis,
# response hours, holiday greetings, dedicated manager, production priority, credit terms).
POLICIES = {
    "A": (30, 365, 90, 24, True, True, "first", "月结60天，授信额度每年评审一次"),
    "B": (45, None, 120, 48, True, True, "normal", "月结30天"),
    "C": (60, None, 180, 72, True, False, "normal", "月结30天，超出信用额度须经财务审批"),
    "D": (120, None, 180, 72, False, False, "spare", "款到发货"),
}
POLICY_NOTES = {
    "A": "**专属客户经理**全程跟进，重大事项由分公司经理亲自对接。\n\n"
         "- 每月至少一次电话或上门沟通\n- 每年一次高层互访\n- 每季度提交一份销售分析报告\n"
         "- 投诉 24 小时内答复\n- 春节、中秋寄送礼品与贺卡",
    "B": "由客户经理定期维护，每季度末回顾合作情况。\n\n- 节日问候\n- 生产排期正常安排",
    "C": "由销售团队统一服务，**每两个月**至少联系一次。",
    "D": "由销售团队统一服务，每半年做一次销售分析，评估是否继续合作。",
}


def _policies(today, admin):
    """One policy version per tier from April 1st; tier A had a slower response time
    until July, so its history shows a change."""
    start = datetime.date(today.year, 4, 1)
    for tier in Tier.ordered():
        if tier.code not in POLICIES:
            continue
        contact, visit, analysis, hours, greetings, dedicated, priority, credit = \
            POLICIES[tier.code]
        values = dict(contact_days=contact, visit_days=visit, analysis_days=analysis,
                      response_hours=hours, holiday_greetings=greetings,
                      dedicated_manager=dedicated, production_priority=priority,
                      credit_terms=credit, notes=POLICY_NOTES[tier.code], created_by=admin)
        if tier.code == "A":
            TierPolicy.create(tier=tier, version=1, effective_on=start,
                              **{**values, "response_hours": 48})
            TierPolicy.create(tier=tier, version=2,
                              effective_on=datetime.date(today.year, 7, 1), **values)
        else:
            TierPolicy.create(tier=tier, version=1, effective_on=start, **values)


REASONS_UP = ["本年度采购额大幅增长，合作关系稳定", "回款及时，新增两条产品线合作，拟提升服务等级"]
REASONS_DOWN = ["连续两个季度订单下滑，回款周期延长", "客户业务收缩，采购量明显减少"]


def _tier_change_requests(rng, today, per_branch=2):
    """A few mid-year adjustments filed by account managers, waiting for the branch
    manager (and, for a promotion to A, the later steps)."""
    tiers = {t.code: t for t in Tier.select()}
    order = list(tiers)
    for branch in Branch.select().order_by(Branch.id):
        customers = list(Customer.select().where(Customer.branch == branch,
                                                 Customer.tier.is_null(False),
                                                 Customer.account_manager.is_null(False))
                         .order_by(Customer.id).limit(per_branch * 5))
        for customer in rng.sample(customers, min(per_branch, len(customers))):
            current = Tier.get_by_id(customer.tier_id).code
            up = (rng.random() < 0.5 and current != order[0]) or current == order[-1]
            target = order[order.index(current) + (-1 if up else 1)]
            reason = rng.choice(REASONS_UP if up else REASONS_DOWN)
            file_request(customer, customer.account_manager, tiers[target], reason,
                         effective_on=today)


REQUEST_TEXTS = {
    "complaint": ["交货比合同约定晚了两周，影响客户生产排期",
                  "最近一批产品有质量问题，客户要求退换",
                  "发票开具有误，客户财务无法入账",
                  "客户反映售后响应太慢，电话多次无人接听"],
    "enquiry": ["咨询新产品的价格和供货周期", "询问明年框架协议的续签安排",
                "咨询信用额度调整的流程"],
    "after_sales": ["设备安装后运行不稳定，需要上门调试", "申请更换损坏的配件",
                    "需要补发产品说明书和合格证"],
    "other": ["客户希望安排一次高层互访", "客户更换了采购负责人，需更新联系人"],
}
RESOLUTIONS = ["协调工厂加急补货，并承担额外运费", "已安排技术人员上门处理，设备恢复正常",
               "已重新开具发票并快递寄出", "已电话答复并发送书面资料"]
FOLLOW_UP_NOTES = ["客户对处理结果表示满意", "客户认可处理速度，希望今后提前沟通",
                   "客户基本满意，但对交期仍有顾虑"]


def _service_requests(rng, now=None):
    """Per branch, service requests in every state, timed against the real clock so that
    they show as they should when the demo is opened: one new and on time, one in
    progress and due soon, one complaint past its due time, one resolved complaint
    awaiting its follow-up call, one closed complaint followed up with a satisfaction
    score, and a closed enquiry."""
    now = now or utcnow()
    hour = datetime.timedelta(hours=1)
    for branch in Branch.select().order_by(Branch.id):
        customers = list(Customer.select().where(
            Customer.branch == branch, Customer.tier.is_null(False),
            Customer.account_manager.is_null(False), Customer.kind == "existing")
            .order_by(Customer.id).limit(20))
        if len(customers) < 6:
            continue
        manager = User.with_role("branch_manager").where(User.branch == branch).first()
        for customer, (kind, state) in zip(rng.sample(customers, 6), (
                ("enquiry", "on_time"), ("after_sales", "warning"), ("complaint", "breached"),
                ("complaint", "resolved"), ("complaint", "followed_up"),
                ("enquiry", "closed"))):
            _tier, _policy, hours, _warn, _due = response_terms(customer, now)
            hours = hours or 24
            received = now - {"on_time": 2 * hour, "warning": hours * 0.9 * hour,
                              "breached": (hours + 5) * hour, "resolved": 3 * 24 * hour,
                              "followed_up": 20 * 24 * hour, "closed": 8 * 24 * hour}[state]
            owner = User.get_by_id(customer.account_manager_id)
            request = log_request(customer, manager or owner, kind=kind,
                                  channel=rng.choice(["phone", "phone", "email", "wechat",
                                                      "visit"]),
                                  description=rng.choice(REQUEST_TEXTS[kind]),
                                  received_at=received.replace(microsecond=0), owner=owner,
                                  now=now)
            if state == "warning":
                move_request(request, owner, "in_progress", now=received + hour)
            if state in ("resolved", "followed_up", "closed"):
                solved = received + rng.randint(4, hours + 6) * hour
                move_request(request, owner, "resolved", rng.choice(RESOLUTIONS), now=solved)
                if state == "followed_up":
                    record_follow_up(request, manager or owner, rng.choice([3, 4, 4, 5, 5]),
                                     rng.choice(FOLLOW_UP_NOTES), now=solved + 2 * 24 * hour)
                if state in ("followed_up", "closed"):
                    move_request(request, manager or owner, "closed",
                                 now=solved + 3 * 24 * hour)


def build_service_requests(size=2000, seed=2027, now=None):
    """`size` more service requests spread over the company (the benchmark's), written in
    bulk: about a tenth open and past due, some due soon, the rest resolved or closed,
    complaints mostly followed up. Returns how many were written."""
    rng = random.Random(f"service-requests-{seed}")
    now = now or utcnow()
    customers = list(Customer.select(Customer.id, Customer.tier, Customer.account_manager)
                     .where(Customer.tier.is_null(False), Customer.kind == "existing")
                     .tuples())
    if not customers:
        return 0
    hours_of = {t: h for t, h in TierPolicy.select(TierPolicy.tier, TierPolicy.response_hours)
                .order_by(TierPolicy.effective_on, TierPolicy.version).tuples()}
    rows = []
    for _ in range(size):
        customer_id, tier_id, manager_id = rng.choice(customers)
        hours = hours_of.get(tier_id) or 24
        kind = rng.choices(list(REQUEST_TEXTS), weights=[40, 30, 20, 10])[0]
        received = (now - datetime.timedelta(minutes=rng.randint(30, 60 * 24 * 300))).replace(
            microsecond=0)
        due = received + datetime.timedelta(hours=hours)
        warn = received + datetime.timedelta(hours=hours * 0.8)
        status = rng.choices(["new", "in_progress", "resolved", "closed"],
                             weights=[5, 5, 20, 70])[0] if due < now else \
            rng.choice(["new", "in_progress"])
        row = dict(customer=customer_id, kind=kind, channel=rng.choice(list(
            ["phone", "email", "visit", "wechat", "other"])),
            description=rng.choice(REQUEST_TEXTS[kind]), received_at=received,
            owner=manager_id, status=status, resolution="", tier=tier_id,
            response_hours=hours, warn_at=warn, due_at=due, created_by=manager_id,
            created_at=received, updated_at=received, follow_up_note="")
        if status in ("resolved", "closed"):
            solved = min(now, received + datetime.timedelta(hours=rng.uniform(1, hours * 1.3)))
            row.update(resolution=rng.choice(RESOLUTIONS), resolved_at=solved)
            if kind == "complaint":
                row["follow_up_due_at"] = solved + datetime.timedelta(days=30)
                if status == "closed" or rng.random() < 0.5:
                    row.update(followed_up_at=min(now, solved + datetime.timedelta(days=2)),
                               followed_up_by=manager_id, satisfaction=rng.choices(
                                   [1, 2, 3, 4, 5], weights=[3, 7, 20, 40, 30])[0],
                               follow_up_note=rng.choice(FOLLOW_UP_NOTES))
            if status == "closed":
                row["closed_at"] = min(now, solved + datetime.timedelta(days=3))
        rows.append(row)
    # One shape for every row of a batch: insert_many takes its columns from the first.
    columns = {key for row in rows for key in row}
    rows = [{key: row.get(key) for key in columns} for row in rows]
    with db.atomic():
        for begin in range(0, len(rows), 500):
            ServiceRequest.insert_many(rows[begin:begin + 500]).execute()
    return len(rows)


def build_approvals(size=5000, seed=2027):
    """`size` open tier change requests spread over the branches, for the benchmark of
    the approval queue. Two in five ask for the top tier, and half of those have passed
    their branch manager already, so the sales director has a queue of their own.
    Returns how many were filed."""
    rng = random.Random(seed)
    tiers = list(Tier.ordered())
    top = tiers[0]
    busy = {r.customer_id for r in TierChangeRequest.select(TierChangeRequest.customer)
            .where(TierChangeRequest.status == "open")}
    reps, managers = {}, {}
    for rep in User.with_role("sales_rep").order_by(User.id):
        reps.setdefault(rep.branch_id, rep.id)
    for manager in User.with_role("branch_manager"):
        managers[manager.branch_id] = manager.id
    picked = [c for c in Customer.select(Customer.id, Customer.tier, Customer.branch)
              .where(Customer.tier.is_null(False)).order_by(Customer.id)
              if c.id not in busy][:size]
    filed = datetime.datetime(2026, 11, 1, 9, 0)
    with db.atomic():
        for n, customer in enumerate(picked):
            current = next(t for t in tiers if t.id == customer.tier_id)
            others = [t for t in tiers if t.id != current.id]
            target = top if current.id != top.id and rng.random() < 0.4 else rng.choice(others)
            _key, roles = roles_for(current, target)
            passed_first = len(roles) > 1 and rng.random() < 0.5
            source = rng.choice(["mid_year", "cycle"])
            request = TierChangeRequest.create(
                customer=customer.id, from_tier=current.id, to_tier=target.id,
                source=source, reason="基准测试", effective_on=datetime.date(2026, 11, 25),
                requested_by=None if source == "cycle" else reps.get(customer.branch_id),
                branch=customer.branch_id,
                step_count=len(roles), created_at=filed + datetime.timedelta(minutes=n))
            waiting = 2 if passed_first else 1
            for position, role in enumerate(roles, start=1):
                step = ApprovalStep.create(
                    request=request.id, position=position, role=role,
                    status="approved" if position < waiting else
                    "pending" if position == waiting else "waiting",
                    decided_by=managers.get(customer.branch_id) if position < waiting else None,
                    decided_at=filed + datetime.timedelta(days=1) if position < waiting else None)
                if position == waiting:
                    TierChangeRequest.update(waiting_step=step.id, waiting_role=role).where(
                        TierChangeRequest.id == request.id).execute()
    return len(picked)


def build_meeting(size=1000, committee=9, seed=2027):
    """A committee review under way: `size` customers with submitted preliminary
    sheets, a chair and `committee - 1` members, the first customer on the
    board with every member's scores in. Used by the benchmark. Returns the cycle."""
    rng = random.Random(seed)
    admin = User.get(User.username == "admin")
    chair = User.get(User.username == "chair")
    members = list(User.with_role("committee_member").order_by(User.id))
    probe = User(display_name="")
    probe.set_password(DEMO_PASSWORD)
    for n in range(len(members) + 1, committee):
        extra = User(username=f"member{n}", display_name=_person(rng),
                     password_hash=probe.password_hash, email=demo_email(f"member{n}"))
        extra.roles = ["committee_member"]
        extra.save()
        members.append(extra)
    members = members[:committee - 1]
    template = ScorecardTemplate.get(ScorecardTemplate.kind == "existing")
    picked = [c.id for c in Customer.select(Customer.id).where(Customer.kind == "existing")
              .order_by(Customer.code).limit(size)]
    with db.atomic():
        cycle = save_cycle(None, admin, name="评审会（基准测试）", year=2027,
                           template_existing=template, template_prospect=None,
                           scope={"customers": picked}, chair=chair, members=members)
        cycle = advance(cycle, chair)
        criteria = template.criteria_with_levels()
        sheets = list(Assessment.select(Assessment.id, Assessment.branch)
                      .where(Assessment.cycle == cycle))
        managers = {u.branch_id: u.id for u in User.with_role("branch_manager")}
        rows = [dict(assessment=sheet.id, criterion=c.id, stage="preliminary",
                     member=managers[sheet.branch_id],
                     points=rng.randint(0, c.max_points), revision=1)
                for sheet in sheets for c in criteria]
        for start in range(0, len(rows), 500):
            Score.insert_many(rows[start:start + 500]).execute()
        Assessment.update(preliminary_submitted_at=datetime.datetime(2027, 3, 20),
                          preliminary_by=admin.id).where(Assessment.cycle == cycle).execute()
        cycle = advance(cycle, chair)
        first = sheets[0]
        Score.insert_many([dict(assessment=first.id, criterion=c.id, stage="committee",
                                member=m.id, points=rng.randint(0, c.max_points), revision=1)
                           for m in members for c in criteria]).execute()
        GradingCycle.update(current_assessment=first.id).where(
            GradingCycle.id == cycle.id).execute()
    return cycle


# --- The sales funnel ----------------------------------------------------------

# Each week, the chance that an opportunity in a stage moves forward, goes back one
# stage, or is lost. Tuned so that roughly 20 opportunities : 5 at 25% : 1 deal.
FUNNEL_ODDS = {
    "opportunity": (0.12, 0.00, 0.20),
    "meeting": (0.45, 0.03, 0.25),
    "p25": (0.22, 0.04, 0.15),
    "p50": (0.28, 0.04, 0.10),
    "p90": (0.60, 0.00, 0.03),
}
LOST_REASONS = ["预算取消", "选择了竞争对手", "价格未谈拢", "客户内部调整，项目搁置",
                "决策人变动", "需求不匹配"]


def add_reps(branch_code, size):
    """Grow a branch to `size` sales reps (rep_<code>_N), for the benchmark's big team."""
    branch = Branch.get(Branch.code == branch_code)
    reps = User.with_role("sales_rep").where(User.branch == branch.id)
    probe = User(display_name="")
    probe.set_password(DEMO_PASSWORD)
    rng = random.Random(f"reps-{branch_code}")
    code = branch_code.lower()
    number = reps.count()
    with db.atomic():
        while number < size:
            number += 1
            user = User(username=f"rep_{code}_{number}", display_name=_person(rng),
                        password_hash=probe.password_hash, branch=branch.id,
                        email=demo_email(f"rep_{code}_{number}"))
            user.roles = ["sales_rep"]
            user.save()


def build_funnel_history(seed=2027, today=None, weeks=52):
    """A year of believable funnel history for every active sales rep: opportunities
    opened on the branch's prospects (never one prospect in two funnels at once),
    moved week by week, some back, some lost, some won, and the stale ones sent
    back by the Monday rollover. Written in bulk; each history row closes when the
    next one opens, as the app's own moves do."""

    rng = random.Random(f"funnel-{seed}")
    today = today or datetime.date(2026, 11, 25)
    start = today - datetime.timedelta(days=today.weekday()) - datetime.timedelta(weeks=weeks)
    reps = list(User.with_role("sales_rep").where(User.active, User.branch.is_null(False))
                .order_by(User.branch, User.id))
    pools = {}
    for customer_id, branch_id in Customer.select(Customer.id, Customer.branch).where(
            Customer.kind == "prospect").order_by(Customer.id).tuples():
        pools.setdefault(branch_id, []).append(customer_id)
    busy = set()
    next_id = (Opportunity.select(db_max_id(Opportunity)).scalar() or 0) + 1
    opportunities, moves = [], []
    # Each rep's open opportunities, as dicts that become rows at the end.
    open_by_rep = {rep.id: [] for rep in reps}

    def record(opp, to_stage, on, kind, moved_by):
        if opp["moves"]:
            moves[opp["moves"][-1]]["left_on"] = on
        moves.append(dict(opportunity=opp["id"], branch=opp["branch"], owner=opp["owner"],
                          from_stage=None if kind == "create" else opp["stage"],
                          to_stage=to_stage, moved_on=on,
                          left_on=on if to_stage in TERMINAL else OPEN_END, kind=kind,
                          premium_received=opp["premium_received"],
                          standard_premium=opp["standard_premium"], moved_by=moved_by,
                          moved_at=datetime.datetime.combine(on, datetime.time(2, 0))))
        opp["moves"].append(len(moves) - 1)
        opp["stage"], opp["stage_entered_on"] = to_stage, on

    for week in range(weeks + 1):
        monday = start + datetime.timedelta(weeks=week)
        for rep in reps:
            cycle = rep.sales_cycle_days or 28
            mine = open_by_rep[rep.id]
            # Monday: the rollover sends back what sat longer than the cycle.
            for opp in mine:
                if opp["stage"] != "opportunity" and (monday - opp["stage_entered_on"]).days \
                        > cycle:
                    record(opp, "opportunity", monday, "rollover", None)
            # The week's moves, each on a working day after the stage was entered.
            for opp in list(mine):
                ahead, behind, lost = FUNNEL_ODDS[opp["stage"]]
                roll = rng.random()
                day = max(monday + datetime.timedelta(days=rng.randint(0, 4)),
                          opp["stage_entered_on"])
                if day > today:
                    continue
                position = LADDER.index(opp["stage"])
                if roll < ahead:
                    target = LADDER[position + 1]
                elif roll < ahead + behind and position > 0:
                    target = LADDER[position - 1]
                elif roll < ahead + behind + lost:
                    target = "lost"
                else:
                    continue
                if target == "p50":
                    opp.update(decision_maker_met=True, plan_fits_need=True,
                               budget_discussed=True, next_step_agreed=True,
                               signing_date=day + datetime.timedelta(days=rng.randint(7, 25)))
                if target == "p90":
                    opp.update(contract_signed=True, payment_received=True)
                record(opp, target, day, "move", rep.id)
                if target in TERMINAL:
                    opp["closed_on"] = day
                    if target == "lost":
                        opp["lost_reason"] = rng.choice(LOST_REASONS)
                    mine.remove(opp)
                    busy.discard(opp["customer"])
            # New opportunities: two or three a week, on prospects nobody works now.
            pool = pools.get(rep.branch_id, [])
            for _ in range(rng.choice([1, 2, 2, 3, 3, 4])):
                day = monday + datetime.timedelta(days=rng.randint(0, 4))
                if day > today or not pool:
                    break
                customer = pool[rng.randrange(len(pool))]
                if customer in busy:
                    continue
                standard = Decimal(round(rng.lognormvariate(10.8, 0.7), -2)).quantize(
                    Decimal("0.01"))
                opp = dict(id=next_id, customer=customer, branch=rep.branch_id, owner=rep.id,
                           stage="opportunity", stage_entered_on=day, standard_premium=standard,
                           premium_received=(standard * Decimal(rng.choice(
                               ["0.3", "0.5", "0.8", "1"]))).quantize(Decimal("0.01")),
                           expected_amount=standard, moves=[], created_by=rep.id,
                           created_at=datetime.datetime.combine(day, datetime.time(1, 0)))
                next_id += 1
                busy.add(customer)
                record(opp, "meeting" if rng.random() < 0.3 else "opportunity", day, "create",
                       rep.id)
                mine.append(opp)
                opportunities.append(opp)
    flags = ("decision_maker_met", "plan_fits_need", "budget_discussed", "next_step_agreed",
             "contract_signed", "payment_received")
    rows = [dict({k: opp[k] for k in (
        "id", "customer", "branch", "owner", "stage", "stage_entered_on", "premium_received",
        "standard_premium", "expected_amount", "created_by", "created_at")},
        signing_date=opp.get("signing_date"), lost_reason=opp.get("lost_reason", ""),
        closed_on=opp.get("closed_on"), updated_at=opp["created_at"],
        **{flag: opp.get(flag, False) for flag in flags}) for opp in opportunities]
    with db.atomic():
        for begin in range(0, len(rows), 500):
            Opportunity.insert_many(rows[begin:begin + 500]).execute()
        for begin in range(0, len(moves), 500):
            StageMove.insert_many(moves[begin:begin + 500]).execute()
    if not is_sqlite() and rows:
        db.execute_sql("SELECT setval(pg_get_serial_sequence('opportunity', 'id'), "
                       "(SELECT MAX(id) FROM opportunity))")
    return len(rows), len(moves)


def db_max_id(model):
    return fn.MAX(model.id)


# What each kind of demo user is there to try (the login list says it beside them).
TRY = {
    "admin": "users, branches, tiers, scorecards, approval rules, imports",
    "chair": "chairs the meeting under way: scores, settles, moves everyone on",
    "member1": "scores in that meeting: open it beside the chair, in another browser",
    "member2": "another member of both committees",
    "member3": "a member of the 初评 cycle's committee",
    "director": "committee member; the second approval of a promotion to the top tier",
    "gm": "the last approval of a promotion to the top tier",
    "bm_": "fills the branch's 初评 sheets; approves the branch's tier changes",
    "rep_": "the weekly sales funnel; logs contacts with the branch's customers",
}


def demo_logins():
    """[(username, name, roles, branch, what to try)] of the demo users worth trying."""
    wanted = ["admin", "chair", "member1", "member2", "member3", "director", "gm"]
    users = {u.username: u for u in User.select().where(
        (User.username.in_(wanted)) | User.username.startswith("bm_")
        | User.username.endswith("_1"))}
    ordered = [users[name] for name in wanted if name in users]
    ordered += sorted((u for name, u in users.items() if name not in wanted),
                      key=lambda u: (u.branch_id or 0, u.username))
    return [(u.username, u.display_name, "、".join(str(ROLES[r]) for r in u.roles),
             u.branch.name if u.branch_id else "",
             TRY.get(u.username) or TRY.get(u.username.split("_")[0] + "_", ""))
            for u in ordered]
