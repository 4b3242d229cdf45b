"""Synthetic people for the canonical benchmark: records over the six source objects, and their truth.

Every person's first record carries both their email and phone, later ones one or both, written the way
each source writes them ("(415) 555-2671", "13774202819", " Jane.Doe7@Gmail.com "), so recall needs
normalisation to find one value behind every spelling. Junk is mixed in and must not glue anyone:
placeholder phones and test@test.com beside real values, households of 30 people sharing one landline,
records with nothing but junk, records with no contact point at all. ``change`` then edits a fraction of
the records the ways a day at the sources does. Kept apart from ``canonical.py`` so the measurement reads
on its own; ``prepare`` is what the benchmark calls (in a child process, so its memory is not measured).
"""

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import phonenumbers

from models.normalise.layouts import LAYOUTS

SOURCES = (
    ("clickfunnels", "contact", 0.20, "US"),
    ("clicksend", "list_contact", 0.15, "US"),
    ("linkflow", "contact", 0.20, "CN"),
    ("zoho_crm", "lead", 0.15, "US"),
    ("zoho_crm", "contact", 0.20, "US"),
    ("zoho_bigin", "contact", 0.10, "US"),
)
CLICKFUNNELS, CLICKSEND, LINKFLOW, ZOHO_LEAD, ZOHO_CONTACT, BIGIN = range(6)
ZOHO_LIKE = (ZOHO_LEAD, ZOHO_CONTACT, BIGIN)

US_AREA_CODES = np.array(
    [201, 202, 206, 212, 213, 214, 305, 310, 312, 404, 415, 503, 512, 617, 646, 702, 718, 808]
)
HOUSEHOLD_AREA_CODE = 907
CN_PREFIXES = np.array([130, 131, 133, 135, 136, 137, 138, 139, 150, 151, 152, 158, 159, 186, 187, 188])
US_FIRST = [
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Chris",
    "Karen",
    "Daniel",
    "Nancy",
    "Matthew",
    "Lisa",
    "Anthony",
    "Betty",
    "Mark",
    "Sandra",
    "Donald",
    "Ashley",
    "Zoë",
    "José",
]
US_LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "O'Brien",
    "Müller",
]
CN_SURNAMES = [
    "王",
    "李",
    "张",
    "刘",
    "陈",
    "杨",
    "黄",
    "赵",
    "吴",
    "周",
    "徐",
    "孙",
    "马",
    "朱",
    "胡",
    "郭",
    "何",
    "高",
    "林",
    "罗",
    "欧阳",
    "司马",
]
CN_GIVEN = [
    "伟",
    "芳",
    "娜",
    "秀英",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀兰",
    "霞",
    "平",
    "刚",
    "桂英",
    "😀",
]
US_DOMAINS = np.array(["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "acme-corp.com"])
CN_DOMAINS = np.array(["qq.com", "163.com", "126.com", "sina.com", "gmail.com"])
COMPANIES = np.array(
    ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "腾讯", "阿里巴巴", "Stark Industries", None], object
)
TITLES = np.array(["CEO", "CTO", "Engineer", "Sales", "经理", None], object)
CITIES = np.array(["New York", "San Francisco", "上海", "北京", "Austin", None], object)
JUNK_PHONES = np.array(["0000000000", "555-555-5555", "1234567890", "1111111111"], object)
JUNK_EMAIL = "test@test.com"
HOUSEHOLD_SIZE = 30


@dataclass
class World:
    """Every source record in one wide frame (indexed by record_key), the identifiers the generator
    knows each carries (canonical form), and the truth: one cluster label per record."""

    records: pd.DataFrame
    canonical: pd.DataFrame
    truth: pd.Series
    next_person: int


def _phone_parts(
    person: np.ndarray, chinese: np.ndarray, salt: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A distinct valid number per person, as (area code or prefix, middle, last four)."""
    mixed = (person.astype(np.int64) * 7919 + 104729 + salt) % (10**9)
    head = np.where(chinese, CN_PREFIXES[mixed % len(CN_PREFIXES)], US_AREA_CODES[mixed % len(US_AREA_CODES)])
    middle = np.where(chinese, (mixed // 97) % 10000, 200 + (mixed // 97) % 800)
    last = (person.astype(np.int64) * 3 + salt) % 10000
    return head, middle, last


def _canonical_phone(
    head: np.ndarray, middle: np.ndarray, last: np.ndarray, chinese: np.ndarray
) -> np.ndarray:
    return np.array(
        [
            f"+86{h}{m:04d}{lst:04d}" if c else f"+1{h}{m:03d}{lst:04d}"
            for h, m, lst, c in zip(head, middle, last, chinese, strict=True)
        ],
        dtype=object,
    )


def _spell_phone(head: int, middle: int, last: int, chinese: bool, style: int) -> str:
    if chinese:
        national = f"{head}{middle:04d}{last:04d}"
        return [
            f"+86{national}",
            f"+86 {head} {middle:04d} {last:04d}",
            national,
            f"{head}-{middle:04d}-{last:04d}",
        ][style % 4]
    styles = [
        f"+1{head}{middle:03d}{last:04d}",
        f"+1 {head}-{middle:03d}-{last:04d}",
        f"({head}) {middle:03d}-{last:04d}",
        f"{head}-{middle:03d}-{last:04d}",
        f"{head}.{middle:03d}.{last:04d}",
        f"1 {head} {middle:03d} {last:04d}",
        f"({head}) {middle:03d}-{last:04d} x{last % 900 + 100}",
    ]
    return styles[style % len(styles)]


def _spell_email(email: str, style: int) -> str:
    local, domain = email.split("@")
    return [email, f"{local.title()}@{domain.title()}", email.upper(), f"  {email} "][style % 4]


def _ok_phones(canonical: np.ndarray) -> np.ndarray:
    """Numbers the identity guards would refuse (long same-digit runs) are not given to people."""
    return ~pd.Series(canonical, dtype=object).str.match(r".*?(\d)\1{7}").to_numpy()


def generate(n: int, seed: int) -> World:
    rng = np.random.default_rng(seed)
    junk_only = n // 200
    empty = n // 200
    people_records = n - junk_only - empty
    counts = 1 + rng.poisson(0.9, size=people_records)
    counts = counts[: np.searchsorted(np.cumsum(counts), people_records) + 1]
    counts[-1] -= counts.sum() - people_records
    persons = len(counts)
    person_of = np.repeat(np.arange(persons), counts)
    first_of = np.r_[True, person_of[1:] != person_of[:-1]]

    chinese = rng.random(persons) < 0.3
    head, middle, last = _phone_parts(np.arange(persons), chinese, 0)
    phone = _canonical_phone(head, middle, last, chinese)
    for salt in range(1, 10):
        bad = ~_ok_phones(phone)
        if not bad.any():
            break
        h, m, lst = _phone_parts(np.flatnonzero(bad), chinese[bad], salt * 1_000_003)
        head[bad], middle[bad], last[bad] = h, m, lst
        phone[bad] = _canonical_phone(h, m, lst, chinese[bad])
    first_name = np.where(chinese, rng.choice(CN_GIVEN, persons), rng.choice(US_FIRST, persons)).astype(
        object
    )
    last_name = np.where(chinese, rng.choice(CN_SURNAMES, persons), rng.choice(US_LAST, persons)).astype(
        object
    )
    domain = np.where(chinese, rng.choice(CN_DOMAINS, persons), rng.choice(US_DOMAINS, persons))
    email = np.array(
        [
            f"user{p}@{d}"
            if c
            else f"{f.lower()}.{ln.lower()}{p}@{d}".replace("'", "")
            .replace("ë", "e")
            .replace("é", "e")
            .replace("ü", "u")
            for p, (f, ln, d, c) in enumerate(zip(first_name, last_name, domain, chinese, strict=True))
        ],
        dtype=object,
    )

    total = people_records + junk_only + empty
    source = rng.choice(len(SOURCES), size=total, p=[s[2] for s in SOURCES])
    person = np.r_[person_of, np.arange(persons, persons + junk_only + empty)]
    first = np.r_[first_of, np.ones(junk_only + empty, bool)]
    roll = rng.random(total)
    carries_email = first | (roll < 0.7)
    carries_phone = first | (roll >= 0.4)
    carries_email[people_records:] = False
    carries_phone[people_records:] = False
    real = person < persons
    p_idx = np.where(real, person, 0)
    is_cn = np.where(real, chinese[p_idx], False)

    country_given = rng.random(total) < np.select(
        [source == CLICKSEND, source == LINKFLOW, np.isin(source, ZOHO_LIKE)], [0.8, 0.5, 0.9], 0.0
    )
    default_region = np.array([s[3] for s in SOURCES], object)[source]
    region = np.where(country_given, np.where(is_cn, "CN", "US"), default_region)
    national_ok = region == np.where(is_cn, "CN", "US")
    style = rng.integers(0, 1000, total)
    intl_style = style % 2
    phone_style = np.where(national_ok, style, intl_style)
    phone_style = np.where(source == CLICKSEND, 0, phone_style)

    frame = pd.DataFrame(index=pd.RangeIndex(total, name="record_key"))
    frame["source"] = source
    frame["person"] = person
    frame["first_name"] = np.where(real, first_name[p_idx], rng.choice(US_FIRST, total)).astype(object)
    frame["last_name"] = np.where(real, last_name[p_idx], rng.choice(US_LAST, total)).astype(object)
    frame["chinese"] = is_cn
    frame["company"] = rng.choice(COMPANIES, total)
    frame["title"] = rng.choice(TITLES, total)
    frame["city"] = rng.choice(CITIES, total)
    country_name = np.where(
        source == CLICKSEND,
        np.where(is_cn, "CN", "US"),
        np.where(
            is_cn,
            rng.choice(np.array(["China", "中国"]), total),
            rng.choice(np.array(["United States", "USA"]), total),
        ),
    )
    frame["country"] = np.where(country_given, country_name, None).astype(object)
    frame["email1"] = np.array(
        [
            _spell_email(e, s) if c else None
            for e, s, c in zip(email[p_idx], style, carries_email, strict=True)
        ],
        object,
    )
    frame["phone1"] = np.array(
        [
            _spell_phone(h, m, lst, bool(cn), st) if c else None
            for h, m, lst, cn, st, c in zip(
                head[p_idx], middle[p_idx], last[p_idx], is_cn, phone_style, carries_phone, strict=True
            )
        ],
        object,
    )
    frame["email2"] = pd.Series(None, index=frame.index, dtype=object)
    frame["phone3"] = pd.Series(None, index=frame.index, dtype=object)
    two_phones = np.isin(source, (LINKFLOW, *ZOHO_LIKE))
    two_emails = np.isin(source, ZOHO_LIKE)

    noisy = two_phones & (rng.random(total) < 0.01)
    frame.loc[noisy, "phone3"] = rng.choice(JUNK_PHONES, int(noisy.sum()))
    placeholder = two_emails & (rng.random(total) < 0.002)
    frame.loc[placeholder, "email2"] = JUNK_EMAIL
    junk = np.arange(people_records, people_records + junk_only)
    frame.loc[junk, "email1"] = JUNK_EMAIL
    frame.loc[junk, "phone1"] = rng.choice(JUNK_PHONES, junk_only)

    hosts = np.flatnonzero(first & real & two_phones & ~is_cn)
    hosts = hosts[: total // 100]
    hosts = hosts[: len(hosts) // HOUSEHOLD_SIZE * HOUSEHOLD_SIZE]
    household = np.arange(len(hosts)) // HOUSEHOLD_SIZE
    frame.loc[hosts, "phone3"] = [
        f"({HOUSEHOLD_AREA_CODE}) {200 + h // 10000:03d}-{h % 10000:04d}"
        if local
        else f"+1 907 {200 + h // 10000:03d} {h % 10000:04d}"
        for h, local in zip(household, national_ok[hosts], strict=True)
    ]

    seconds = rng.integers(1_700_000_000, 1_730_000_000, total)
    frame["modified"] = seconds
    frame["region"] = region

    canonical = pd.concat(
        [
            pd.DataFrame(
                {
                    "record_key": np.flatnonzero(carries_email),
                    "kind": "email",
                    "value": email[p_idx][carries_email],
                }
            ),
            pd.DataFrame(
                {
                    "record_key": np.flatnonzero(carries_phone),
                    "kind": "phone",
                    "value": phone[p_idx][carries_phone],
                }
            ),
        ],
        ignore_index=True,
    )
    world = World(frame, canonical, pd.Series(dtype=np.int64), persons + junk_only + empty)
    _check_sample(world, rng)
    world.truth = truth_of(world)
    return world


def _check_sample(world: World, rng: np.random.Generator) -> None:
    """The generator's phones must be valid numbers, or the truth would be wrong."""
    values = world.canonical.loc[world.canonical["kind"] == "phone", "value"].to_numpy()
    for value in rng.choice(values, min(2000, len(values)), replace=False):
        if not phonenumbers.is_valid_number(phonenumbers.parse(value)):
            raise SystemExit(f"generator made an invalid number: {value}")


def truth_of(world: World) -> pd.Series:
    """True cluster per record: the generator's identifiers joined by min-label propagation (a different
    algorithm from the one under test)."""
    keys = world.records.index.to_numpy()
    label = pd.Series(keys, index=keys)
    edges = world.canonical
    while True:
        per_value = (
            edges.assign(label=label.reindex(edges["record_key"]).to_numpy())
            .groupby(["kind", "value"])["label"]
            .transform("min")
        )
        proposed = (
            pd.Series(per_value.to_numpy(), index=edges["record_key"].to_numpy()).groupby(level=0).min()
        )
        updated = label.copy()
        updated.loc[proposed.index] = np.minimum(label.loc[proposed.index].to_numpy(), proposed.to_numpy())
        if updated.equals(label):
            return label
        label = updated


def payload_columns(world: World, source_index: int, keys: np.ndarray) -> pd.DataFrame:
    """What `SELECT json_extract(payload, '$.<path>') ...` would return for these records."""
    rows = world.records.loc[keys]
    name, obj, _, _ = SOURCES[source_index]
    when = pd.to_datetime(rows["modified"].to_numpy(), unit="s", utc=True)
    if source_index == CLICKFUNNELS:
        columns = {
            "first_name": rows["first_name"],
            "last_name": rows["last_name"],
            "email_address": rows["email1"],
            "phone_number": rows["phone1"],
            "updated_at": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        }
    elif source_index == CLICKSEND:
        columns = {
            "first_name": rows["first_name"],
            "last_name": rows["last_name"],
            "organization_name": rows["company"],
            "address_city": rows["city"],
            "address_country": rows["country"],
            "email": rows["email1"],
            "phone_number": rows["phone1"],
            "date_updated": rows["modified"],
        }
    elif source_index == LINKFLOW:
        full = np.where(
            rows["chinese"],
            rows["last_name"] + rows["first_name"],
            rows["first_name"] + " " + rows["last_name"],
        )
        columns = {
            "name": full,
            "company": rows["company"],
            "title": rows["title"],
            "city": rows["city"],
            "country": rows["country"],
            "email": rows["email1"],
            "mobilePhone": rows["phone1"],
            "homePhone": rows["phone3"],
            "lastUpdated": (when + pd.Timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S"),
        }
    else:
        zoho = {
            "First_Name": rows["first_name"],
            "Last_Name": rows["last_name"],
            "Title": rows["title"],
            "Email": rows["email1"],
            "Secondary_Email": rows["email2"],
            "Phone": rows["phone1"],
            "Home_Phone": rows["phone3"],
            "Modified_Time": when.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        }
        if source_index == ZOHO_LEAD:
            zoho |= {
                "Company": rows["company"],
                "City": rows["city"],
                "Country": rows["country"],
                "Designation": zoho.pop("Title"),
            }
        else:
            zoho |= {
                "Account_Name.name": rows["company"],
                "Mailing_City": rows["city"],
                "Mailing_Country": rows["country"],
            }
        columns = zoho
    frame = pd.DataFrame({path: np.asarray(v, dtype=object) for path, v in columns.items()}, index=rows.index)
    assert set(frame.columns) <= set(LAYOUTS[(name, obj)].paths), (name, obj)
    return frame


def select_payloads(world: World, keys: np.ndarray) -> dict[int, pd.DataFrame]:
    """Payload columns per source object, as the warehouse query would hand them over."""
    source_of = world.records.loc[keys, "source"].to_numpy()
    return {
        index: payload_columns(world, index, keys[source_of == index])
        for index in range(len(SOURCES))
        if (source_of == index).any()
    }


def change(world: World, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Apply changes to about `fraction` of the records; returns (changed or added keys, deleted keys)."""
    rng = np.random.default_rng(seed + 1)
    frame, canonical = world.records, world.canonical
    total = len(frame)
    count = max(int(total * fraction), 10)
    picked = rng.choice(frame.index.to_numpy(), count, replace=False)
    kinds = rng.choice(5, count, p=[0.45, 0.2, 0.15, 0.1, 0.1])

    restyle = picked[kinds == 0]
    has_phone = frame.loc[restyle, "phone1"].notna().to_numpy()
    frame.loc[restyle[has_phone], "phone1"] = [
        _restyle(v) for v in frame.loc[restyle[has_phone], "phone1"].to_numpy()
    ]
    frame.loc[picked[kinds == 1], "first_name"] = "Renamed"

    glued = picked[(kinds == 2) & np.isin(frame.loc[picked, "source"].to_numpy(), ZOHO_LIKE)]
    donors = rng.choice(canonical.loc[canonical["kind"] == "email", "value"].to_numpy(), len(glued))
    frame.loc[glued, "email2"] = donors
    canonical = pd.concat([canonical, pd.DataFrame({"record_key": glued, "kind": "email", "value": donors})])

    stripped = picked[kinds == 3]
    frame.loc[stripped, ["email1", "phone1"]] = None
    canonical = canonical[~canonical["record_key"].isin(stripped)]

    deleted = picked[kinds == 4]
    frame = frame.drop(index=deleted)
    canonical = canonical[~canonical["record_key"].isin(deleted)]

    copies = frame.loc[rng.choice(frame.index.to_numpy(), count // 5, replace=False)].copy()
    new_keys = np.arange(total, total + len(copies))
    old_keys = copies.index.to_numpy()
    copies.index = pd.RangeIndex(total, total + len(copies), name="record_key")
    copies["modified"] = copies["modified"] + 1000
    source_copy = canonical[canonical["record_key"].isin(old_keys)].copy()
    source_copy["record_key"] = source_copy["record_key"].map(dict(zip(old_keys, new_keys, strict=True)))
    world.records = pd.concat([frame, copies])
    world.canonical = pd.concat([canonical, source_copy], ignore_index=True)
    world.truth = truth_of(world)
    changed = np.unique(np.r_[picked[kinds < 4], new_keys])
    return changed, np.sort(deleted)


def _restyle(value: str) -> str:
    digits = "".join(ch for ch in value.split(" x", maxsplit=1)[0] if ch.isdigit())
    return f"+{digits}" if value.startswith("+") else f"{digits[:3]} {digits[3:6]} {digits[6:]}"


@dataclass
class Prepared:
    """Everything the generator hands over: the step's input and the truth, before and after changes."""

    keys: np.ndarray
    payloads: dict[int, pd.DataFrame]
    truth: pd.Series
    changed: np.ndarray
    deleted: np.ndarray
    changed_payloads: dict[int, pd.DataFrame]
    truth_after: pd.Series
    seconds: float


def prepare(n: int, seed: int, fraction: float) -> Prepared:
    start = time.perf_counter()
    world = generate(n, seed)
    keys = world.records.index.to_numpy()
    payloads = select_payloads(world, keys)
    truth = world.truth
    changed, deleted = change(world, fraction, seed)
    return Prepared(
        keys,
        payloads,
        truth,
        changed,
        deleted,
        select_payloads(world, changed),
        world.truth,
        time.perf_counter() - start,
    )
