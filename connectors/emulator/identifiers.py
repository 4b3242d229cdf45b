"""Identifiers of generated people: unique by construction, and the rule that says which ones link.

Phones come from a bijection between a person's number and a pool of numbers that ``phonenumbers``
accepts as valid, so two people can never share one and no set of "used numbers" has to be kept.
Junk values (shared by unrelated records on purpose) are listed here so the truth and the tests agree
on what "usable" means.
"""

import phonenumbers

JUNK_EMAILS = frozenset({"test@test.com", "noreply@example.com"})
JUNK_PHONES = frozenset({"0000000000", "555-555-5555"})

# Area codes and CN mobile prefixes checked valid with phonenumbers 9 for every line number.
_US_AREAS = (212, 213, 305, 312, 404, 415, 503, 512, 617, 646, 702, 713, 206, 303, 602, 619, 720, 818)
# Exchange 555 is reserved for fiction and N11 codes are service numbers: both left out.
_US_EXCHANGES = tuple(e for e in range(200, 1000) if e != 555 and e % 100 != 11)
_CN_PREFIXES: tuple[int, ...] = (
    130,
    131,
    132,
    133,
    135,
    136,
    137,
    138,
    139,
    150,
    151,
    152,
    155,
    156,
    157,
    158,
    159,
)
_CN_PREFIXES += (166, 177, 180, 181, 182, 183, 185, 186, 187, 188, 189, 198, 199)

_US_POOL = len(_US_AREAS) * len(_US_EXCHANGES) * 10_000
_CN_POOL = len(_CN_PREFIXES) * 100_000_000
# Multipliers coprime with the pool sizes scatter consecutive people over the whole pool.
_US_STEP = 7_368_787
_CN_STEP = 1_999_999_973


def us_number(index: int) -> tuple[str, str, str]:
    """The (area, exchange, line) of the index-th US number; a bijection on ``[0, pool)``."""
    n = (index * _US_STEP) % _US_POOL
    n, line = divmod(n, 10_000)
    area, exchange = divmod(n, len(_US_EXCHANGES))
    return str(_US_AREAS[area]), str(_US_EXCHANGES[exchange]), f"{line:04d}"


def cn_mobile(index: int) -> str:
    """The index-th Chinese mobile number in national form (11 digits, no +86)."""
    n = (index * _CN_STEP) % _CN_POOL
    prefix, rest = divmod(n, 100_000_000)
    return f"{_CN_PREFIXES[prefix]}{rest:08d}"


def household_us_number(index: int) -> tuple[str, str, str]:
    """The index-th household landline: from the middle of the pool, which people's own numbers
    (``2 * pid`` and ``2 * pid + 1``) and strangers' (the far end) never reach."""
    return us_number(_US_POOL // 2 + index)


# Shanghai, Beijing, Guangzhou and Nanjing: two-digit area codes, eight-digit subscriber numbers.
_CN_LANDLINE_AREAS = ("21", "10", "20", "25")
_CN_LANDLINE_BLOCK = 30_000_000


def cn_landline(index: int) -> str:
    """The index-th Chinese fixed line in national significant form (area code and number, no 0)."""
    n = (index * _US_STEP) % (len(_CN_LANDLINE_AREAS) * _CN_LANDLINE_BLOCK)
    area, rest = divmod(n, _CN_LANDLINE_BLOCK)
    return f"{_CN_LANDLINE_AREAS[area]}{50_000_000 + rest}"


def unknown_us_number(index: int) -> str:
    """E.164 numbers that belong to nobody: taken from the far end of the pool people never reach."""
    area, exchange, line = us_number(_US_POOL - 1 - index)
    return f"+1{area}{exchange}{line}"


def normal_email(value: object) -> str | None:
    """The matching form of an email, or None when it is empty or junk."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if "@" not in text or text in JUNK_EMAILS:
        return None
    return text


def normal_phone(value: object, region: str) -> str | None:
    """E.164 of a valid phone read with the source's default region, or None when unusable."""
    if not isinstance(value, str) or not value.strip() or value.strip() in JUNK_PHONES:
        return None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# Where each contact table keeps emails and phones, and the region its phones are read with.
_FIELDS = {
    "clickfunnels/contact": (("email_address",), ("phone_number",), "US"),
    "clicksend/list_contact": (("email",), ("phone_number",), "US"),
    "linkflow/contact": (("email",), ("mobilePhone", "homePhone"), "CN"),
    "zoho_crm/lead": (("Email", "Secondary_Email"), ("Phone", "Mobile"), "US"),
    "zoho_crm/contact": (
        ("Email", "Secondary_Email"),
        ("Phone", "Mobile", "Home_Phone", "Other_Phone"),
        "US",
    ),
    "zoho_bigin/contact": (("Email",), ("Phone", "Mobile", "Home_Phone"), "US"),
}


def record_identifiers(table: str, record: dict[str, object]) -> list[str]:
    """The usable identifiers a contact record holds, as ``email:...`` and ``phone:+...`` strings."""
    email_fields, phone_fields, region = _FIELDS[table]
    found = []
    for name in email_fields:
        email = normal_email(record.get(name))
        if email:
            found.append(f"email:{email}")
    for name in phone_fields:
        phone = normal_phone(record.get(name), region)
        if phone:
            found.append(f"phone:{phone}")
    return found
