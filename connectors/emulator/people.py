"""Generated people and the way each system writes their names, emails and phones.

A person owns one primary email, one primary phone and sometimes a work email and a second phone;
all are derived from the person's number, so they are unique across people without bookkeeping.
The renderers reproduce the habits the API notes describe: Linkflow keeps Chinese mobiles without
+86, Zoho users type US numbers with punctuation, ClickSend stores E.164, ClickFunnels takes free
text with the odd extension, and emails arrive in mixed case with stray whitespace.
"""

from dataclasses import dataclass

from connectors.emulator.identifiers import cn_mobile, us_number
from connectors.emulator.rand import SandboxRandom

_US_FIRST = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark", "Sandra", "Steven", "Ashley",
    "Paul", "Emily", "Andrew", "Donna", "Joshua", "Michelle", "Kevin", "Carol", "Brian", "Amanda",
)  # fmt: skip
_US_LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
    "Thompson", "White", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
)  # fmt: skip
_CN_GIVEN = (
    ("Wei", "伟"), ("Fang", "芳"), ("Na", "娜"), ("Min", "敏"), ("Jing", "静"), ("Li", "丽"), ("Qiang", "强"),
    ("Lei", "磊"), ("Jun", "军"), ("Yang", "洋"), ("Yong", "勇"), ("Yan", "艳"), ("Jie", "杰"), ("Tao", "涛"),
    ("Ming", "明"), ("Chao", "超"), ("Xiu", "秀"), ("Xia", "霞"), ("Ping", "平"), ("Gang", "刚"),
)  # fmt: skip
_CN_FAMILY = (
    ("Wang", "王"), ("Li", "李"), ("Zhang", "张"), ("Liu", "刘"), ("Chen", "陈"), ("Yang", "杨"),
    ("Huang", "黄"), ("Zhao", "赵"), ("Wu", "吴"), ("Zhou", "周"), ("Xu", "徐"), ("Sun", "孙"),
    ("Ma", "马"), ("Zhu", "朱"), ("Hu", "胡"), ("Guo", "郭"), ("He", "何"), ("Lin", "林"),
)  # fmt: skip
_US_MAIL = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com")
_CN_MAIL = ("qq.com", "163.com", "126.com", "sina.com", "foxmail.com", "gmail.com")
_COMPANIES = (
    ("Acme Corp", "acmecorp.com"), ("Globex", "globex.co"), ("Initech", "initech.io"),
    ("Umbrella Health", "umbrellahealth.com"), ("Stark Industries", "starkind.com"),
    ("Wayne Enterprises", "wayne-ent.com"), ("Hooli", "hooli.xyz"), ("Vandelay Imports", "vandelay.net"),
    ("Zylker", "zylker.com"), ("Soylent", "soylent.org"), ("Cyberdyne", "cyberdyne.ai"),
    ("Tyrell", "tyrellcorp.com"), ("Massive Dynamic", "massivedynamic.com"),
    ("Aperture Labs", "aperture.dev"),
    ("上海源犀信息科技有限公司", "linkflowtech.cn"), ("Huali Trading", "huali-trade.cn"),
    ("Jinding Logistics", "jinding56.com"), ("Nanjing Ruida", "ruida-nj.cn"),
)  # fmt: skip
_TITLES = (
    "CEO", "CTO", "Marketing Manager", "Sales Director", "Engineer", "Product Manager", "Consultant",
    "Account Executive", "Designer", "Operations Lead", "Analyst", "Founder", "VP Sales", "Buyer",
)  # fmt: skip
_US_CITIES = (
    ("New York", "NY"), ("Los Angeles", "CA"), ("Chicago", "IL"), ("Houston", "TX"), ("Phoenix", "AZ"),
    ("San Francisco", "CA"), ("Seattle", "WA"), ("Denver", "CO"), ("Austin", "TX"), ("Boston", "MA"),
    ("Miami", "FL"), ("Atlanta", "GA"), ("Portland", "OR"), ("Las Vegas", "NV"), ("San Diego", "CA"),
)  # fmt: skip
_CN_CITIES = (
    ("Shanghai", "上海", "上海"), ("Beijing", "北京", "北京"), ("Nanjing", "南京", "江苏"),
    ("Guangzhou", "广州", "广东"), ("Shenzhen", "深圳", "广东"), ("Hangzhou", "杭州", "浙江"),
    ("Chengdu", "成都", "四川"), ("Suzhou", "苏州", "江苏"),
)  # fmt: skip


# Not frozen: frozen dataclasses build through object.__setattr__, which is slow at 100,000 people.
@dataclass(slots=True)
class Phone:
    """A valid number: ``region`` is US or CN, ``digits`` the national significant number;
    ``landline`` marks a household's shared fixed line (written with its area code, see
    ``render_phone``)."""

    region: str
    digits: str
    landline: bool = False

    @property
    def e164(self) -> str:
        return ("+1" if self.region == "US" else "+86") + self.digits


@dataclass(slots=True)
class Person:
    pid: int
    region: str
    first_name: str
    last_name: str
    local_name: str | None
    email: str
    work_email: str | None
    phone: Phone
    mobile: Phone | None
    company: str | None
    title: str | None
    city: str
    local_city: str
    state: str
    first_seen: float
    nickname: str | None = None
    """The short form of ``first_name`` some records carry (Bob for Robert); households mode only."""
    name_variants: bool = False
    """Whether records vary the first name (nickname, initial, missing), as in households mode."""
    household: int | None = None
    """The household (``Dataset.households``) whose landline or email this person shares."""
    member: int = 0
    """Position in the household; 0 is the member a shared email belongs to in ClickFunnels."""

    @property
    def country_code(self) -> str:
        return self.region

    @property
    def country(self) -> str:
        return "United States" if self.region == "US" else "China"

    def identifiers(self) -> list[str]:
        """The person's usable identifiers, in the matching form the truth is defined on."""
        found = [f"email:{self.email}", f"phone:{self.phone.e164}"]
        if self.work_email:
            found.append(f"email:{self.work_email}")
        if self.mobile:
            found.append(f"phone:{self.mobile.e164}")
        return found


def _phone(region: str, index: int) -> Phone:
    if region == "US":
        return Phone("US", "".join(us_number(index)))
    return Phone("CN", cn_mobile(index))


def make_person(
    rng: SandboxRandom, pid: int, start: float, end: float, *, region: str | None = None
) -> Person:
    """A new person first seen between ``start`` and ``end`` (epoch seconds); ``region`` (US or CN)
    fixes where they live instead of drawing it."""
    if region is None:
        region = "CN" if rng.random() < 0.25 else "US"
    company_name: str | None = None
    work_email = None
    if region == "US":
        first, last, local_name = rng.pick(_US_FIRST), rng.pick(_US_LAST), None
        city, state = rng.pick(_US_CITIES)
        local_city = city
        domain = rng.pick(_US_MAIL)
    else:
        (first, given_local), (last, family_local) = rng.pick(_CN_GIVEN), rng.pick(_CN_FAMILY)
        local_name = family_local + given_local
        city, local_city, state = rng.pick(_CN_CITIES)
        domain = rng.pick(_CN_MAIL)
    email = f"{first}.{last}{pid}@{domain}".lower()
    if rng.random() < 0.6:
        company_name, company_domain = rng.pick(_COMPANIES)
        if rng.random() < 0.4:
            work_email = f"{first[0]}{last}.{pid}@{company_domain}".lower()
    mobile = _phone(region, 2 * pid + 1) if rng.random() < 0.3 else None
    return Person(
        pid=pid,
        region=region,
        first_name=first,
        last_name=last,
        local_name=local_name,
        email=email,
        work_email=work_email,
        phone=_phone(region, 2 * pid),
        mobile=mobile,
        company=company_name,
        title=rng.pick(_TITLES) if rng.random() < 0.6 else None,
        city=city,
        local_city=local_city,
        state=state,
        first_seen=start + rng.random() * (end - start),
    )


def render_email(rng: SandboxRandom, email: str, *, whitespace: bool = True) -> str:
    """The email as some user typed it: mixed case, and in most systems stray whitespace."""
    roll = rng.random()
    if roll < 0.5:
        shown = email
    elif roll < 0.75:
        local, _, domain = email.partition("@")
        shown = ".".join(part.capitalize() for part in local.split(".")) + "@" + domain
    elif roll < 0.87:
        local, _, domain = email.partition("@")
        shown = f"{local}@{domain.upper()}"
    else:
        shown = email.upper() if not whitespace else email
    if whitespace and rng.random() < 0.12:
        shown = rng.pick((" ", "  ", "\t")) + shown + rng.pick(("", " ", "  "))
    return shown


def _us_styles(digits: str) -> tuple[str, ...]:
    area, exchange, line = digits[:3], digits[3:6], digits[6:]
    return (
        f"({area}) {exchange}-{line}",
        f"{area}-{exchange}-{line}",
        f"+1 {area}-{exchange}-{line}",
        f"{area}.{exchange}.{line}",
        f"{area} {exchange} {line}",
        f"1-{area}-{exchange}-{line}",
        f"+1{digits}",
    )


def render_phone(rng: SandboxRandom, phone: Phone, system: str) -> str:
    """The phone as ``system`` (clickfunnels, clicksend, linkflow, zoho) typically holds it."""
    if system == "clicksend":
        return phone.e164
    if phone.region == "CN":
        return _cn_style(rng, phone, system)
    styles = _us_styles(phone.digits)
    if system == "zoho":
        return styles[rng.below(4)]
    if system == "linkflow":
        return rng.pick((phone.e164, styles[2], f"+1 {phone.digits[:3]} {phone.digits[3:]}"))
    shown = styles[rng.below(len(styles))]
    if rng.random() < 0.1:
        shown += f" x{10 + rng.below(99_990)}"
    return shown


def _cn_style(rng: SandboxRandom, phone: Phone, system: str) -> str:
    """A Chinese mobile as Linkflow keeps it (national digits) or with +86 elsewhere; a household's
    fixed line with the trunk 0 in Linkflow, with +86 elsewhere."""
    d = phone.digits
    if not phone.landline:
        if system == "linkflow":
            return d
        return rng.pick((f"+86 {d[:3]} {d[3:7]} {d[7:]}", f"+86{d}", f"+86 {d[:3]}-{d[3:7]}-{d[7:]}"))
    area, number = d[:2], d[2:]
    if system == "linkflow":
        return rng.pick((f"0{area}-{number}", f"0{area}{number}", f"0{area} {number[:4]} {number[4:]}"))
    return rng.pick((f"+86 {area} {number[:4]} {number[4:]}", f"+86-{area}-{number}", f"+86{d}"))
