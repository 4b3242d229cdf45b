"""Turn raw emails and phones into the forms used for matching, or say why a value cannot be used.

Emails are trimmed, checked with email-validator (syntax only, never DNS) and case-folded. Phones become
E.164 through phonenumbers, read with the record's own country when it has one, else the source's region;
only valid numbers are usable. The raw value is always kept beside the result, and every unusable value
gets a reason a person can query:

emails: empty, too_long, invalid_syntax.
phones: empty, too_long, junk (one digit repeated, or a straight run like 1234567890), unparseable,
    invalid_country_code (no "+" and no usable region), too_short, invalid (parses, but no such number).

The per-value functions are the reference. The column functions give the same answers (property tests
hold them to it) but do the expensive work once per distinct input, and take a shortcut for the shapes
that dominate real data: an ASCII address is split into local part and domain, the domain validated once
per distinct domain; a phone of plain digits is parsed by `models.normalise.phone_fastpath`.
"""

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import NumberParseException, PhoneNumberFormat

from models.normalise.arrays import object_array
from models.normalise.phone_fastpath import fast_parse

# Gmail ignores dots in the local part and everything after "+"; only these domains are rewritten, and
# only when asked: on other providers the same rewrite would merge different people.
GMAIL_STYLE_DOMAINS = frozenset({"gmail.com", "googlemail.com"})

# An address longer than this (RFC 5321 via email-validator's own limit) is rejected by the validator
# whatever it holds; saying so directly spares it from reading a megabyte.
_EMAIL_MAX_LENGTH = 254
# phonenumbers refuses longer input outright (phonenumberutil._MAX_INPUT_STRING_LENGTH).
_PHONE_MAX_INPUT = 250
_JUNK_MIN_DIGITS = 6
_ASCENDING = "01234567890123456789"
_DESCENDING = "98765432109876543210"

_ATEXT = r"A-Za-z0-9_!#$%&'*+\-/=?^`{|}~"
_SIMPLE_EMAIL = re.compile(rf"([{_ATEXT}]+(?:\.[{_ATEXT}]+)*)@((?:[A-Za-z0-9-]+\.)+[A-Za-z0-9-]+)")
_IDNA_LABEL = re.compile(r"(?:^|\.)xn--", re.IGNORECASE)
_PLAIN_PHONE = re.compile(r"\+?[0-9 ().\-/]*")
# A subset of what phonenumbers reads as a trailing extension (its _EXTN_PATTERNS_FOR_PARSING, which
# ignore case): "x" or "ext" or "ext." and up to nine digits.
_EXTENSION = re.compile(r" *(?:x|ext\.?) ?[0-9]{1,9}$", re.IGNORECASE)
_NOT_DIGIT = re.compile(r"[^0-9]")
_NON_DIGIT_BYTES = bytes(b for b in range(256) if not 48 <= b <= 57)

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "invalid_country_code",
    NumberParseException.NOT_A_NUMBER: "unparseable",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too_short",
    NumberParseException.TOO_SHORT_NSN: "too_short",
    NumberParseException.TOO_LONG: "too_long",
}


@dataclass(frozen=True, slots=True)
class Normalised:
    """One raw value, its normalised form when usable, else the reason it is not."""

    raw: str | None
    value: str | None
    reason: str | None


def normalise_email(raw: str | None, *, alias_domains: frozenset[str] = frozenset()) -> Normalised:
    """The matching form of one email; `alias_domains` (e.g. GMAIL_STYLE_DOMAINS) opt in to
    dot and +tag stripping for those providers."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        return Normalised(raw, None, "empty")
    if len(text) > _EMAIL_MAX_LENGTH:
        return Normalised(raw, None, "too_long")
    try:
        email = validate_email(text, check_deliverability=False).normalized.casefold()
    except EmailNotValidError:
        return Normalised(raw, None, "invalid_syntax")
    return Normalised(raw, _strip_alias(email, alias_domains), None)


def _strip_alias(email: str, alias_domains: frozenset[str]) -> str:
    local, _, domain = email.rpartition("@")
    if domain not in alias_domains:
        return email
    stripped = local.split("+", 1)[0].replace(".", "")
    return f"{stripped}@{domain}" if stripped else email


def normalise_emails(raw: pd.Series, *, alias_domains: frozenset[str] = frozenset()) -> pd.DataFrame:
    """Columns raw, email, reason; one row per input row, same index."""
    distinct, codes = _distinct(raw.to_numpy(dtype=object))
    shapes = [_email_shape(value) for value in distinct]
    reason = object_array([shape[0] for shape in shapes])
    local = object_array([shape[1] for shape in shapes])
    domain = object_array([shape[2] for shape in shapes])
    email = np.full(len(distinct), None, dtype=object)

    simple = np.flatnonzero(pd.notna(local))
    if len(simple):
        checked = _validated_domains(domain[simple])
        ok = pd.notna(checked)
        joined = pd.Series(local[simple][ok], dtype=object) + "@" + pd.Series(checked[ok], dtype=object)
        email[simple[ok]] = joined.str.casefold().to_numpy(dtype=object)
        reason[simple[~ok]] = "invalid_syntax"
    for row in np.flatnonzero(pd.isna(local) & pd.isna(reason)):
        result = normalise_email(distinct[row])
        email[row], reason[row] = result.value, result.reason
    if alias_domains:
        usable = np.flatnonzero(pd.notna(email))
        email[usable] = [_strip_alias(e, alias_domains) for e in email[usable]]
    return pd.DataFrame(
        {
            "raw": raw.astype(object),
            "email": _objects(email[codes], raw.index),
            "reason": _objects(reason[codes], raw.index),
        }
    )


def _email_shape(raw: object) -> tuple[str | None, str | None, str | None]:
    """(reason, local part, domain): a reason settles it; a local part means the plain ASCII shape whose
    only open question is its domain; neither means the validator must read the whole address."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        return "empty", None, None
    if len(text) > _EMAIL_MAX_LENGTH:
        return "too_long", None, None
    match = _SIMPLE_EMAIL.fullmatch(text)
    if match is None or _IDNA_LABEL.search(match[2]):
        return None, None, None
    return None, match[1], match[2]


def _validated_domains(domains: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """The validator's normal form of each domain (None when invalid), asking once per distinct domain.

    For a dot-atom ASCII local part the validator's verdict on the whole address is its verdict on the
    domain (plus the length limit, already checked), and the local part comes back unchanged.
    """
    codes, distinct = pd.factorize(domains)
    checked: list[str | None] = []
    for domain in distinct:
        try:
            checked.append(validate_email(f"a@{domain}", check_deliverability=False).domain)
        except EmailNotValidError:
            checked.append(None)
    return object_array(checked)[codes]


def _junk_strings() -> frozenset[str]:
    """Every digit string that is a placeholder rather than a number: one digit repeated, or a straight
    run up or down (wrapping 9 to 0), long enough that no real number is that short."""
    found: set[str] = set()
    for length in range(_JUNK_MIN_DIGITS, _PHONE_MAX_INPUT + 1):
        found.update(digit * length for digit in "0123456789")
        if length <= len(_ASCENDING):
            for start in range(len(_ASCENDING) - length + 1):
                found.add(_ASCENDING[start : start + length])
                found.add(_DESCENDING[start : start + length])
    return frozenset(found)


_JUNK = _junk_strings()


def normalise_phone(raw: str | None, region: str | None) -> Normalised:
    """The E.164 form of one phone; `region` (ISO alpha-2) reads numbers written without "+"."""
    text = raw.strip() if isinstance(raw, str) else ""
    reason, _, _ = _before_parsing(text)
    if reason is not None:
        return Normalised(raw, None, reason)
    try:
        number = phonenumbers.parse(text, region.upper() if region else None)
    except NumberParseException as error:
        return Normalised(raw, None, _PARSE_REASONS.get(error.error_type, "unparseable"))
    if phonenumbers.national_significant_number(number) in _JUNK:
        return Normalised(raw, None, "junk")
    if not phonenumbers.is_valid_number(number):
        return Normalised(raw, None, "invalid")
    return Normalised(raw, phonenumbers.format_number(number, PhoneNumberFormat.E164), None)


def _digits(text: str) -> str:
    """The ASCII digits of `text`; bytes.translate is several times faster than a regex for ASCII."""
    if text.isascii():
        return text.encode("ascii").translate(None, _NON_DIGIT_BYTES).decode("ascii")
    return _NOT_DIGIT.sub("", text)


def _before_parsing(text: str) -> tuple[str | None, str, str]:
    """(reason, number without a trailing extension, its digits); the reason settles the value."""
    if not text:
        return "empty", text, ""
    if len(text) > _PHONE_MAX_INPUT:
        return "too_long", text, ""
    # A trailing extension ("x59891", "ext. 12") is cut the way phonenumbers cuts it; it is no part of
    # the number, so neither of the junk test nor of E.164.
    body = _EXTENSION.sub("", text) if "x" in text or "X" in text else text
    digits = _digits(body)
    if digits in _JUNK:
        return "junk", body, digits
    return None, body, digits


def normalise_phones(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` has columns raw and region; returns raw, region, phone, reason with the same index."""
    raw_codes, raw_distinct = pd.factorize(frame["raw"].to_numpy(dtype=object), use_na_sentinel=False)
    shapes = [_phone_shape(value) for value in raw_distinct]
    shape_reason = object_array([shape[0] for shape in shapes])
    shape_digits = object_array([shape[1] for shape in shapes])
    shape_plus = np.fromiter((shape[2] for shape in shapes), dtype=bool, count=len(shapes))

    region_codes, region_distinct = pd.factorize(frame["region"].to_numpy(dtype=object))
    upper = object_array([r.upper() if isinstance(r, str) else None for r in region_distinct])
    width = len(region_distinct) + 1
    pairs, codes = np.unique(raw_codes.astype(np.int64) * width + region_codes + 1, return_inverse=True)
    raw_index = pairs // width
    region = np.r_[np.array([None], dtype=object), upper][pairs % width]

    phone = np.full(len(pairs), None, dtype=object)
    reason = shape_reason[raw_index]
    plain = np.flatnonzero(pd.notna(shape_digits[raw_index]))
    undecided = _parse_plain(
        plain,
        shape_digits[raw_index[plain]],
        shape_plus[raw_index[plain]],
        region,
        phone=phone,
        reason=reason,
    )
    unread = np.flatnonzero(pd.isna(shape_digits[raw_index]) & pd.isna(shape_reason[raw_index]))
    for row in np.concatenate([unread, undecided]):
        result = normalise_phone(raw_distinct[raw_index[row]], region[row])
        phone[row], reason[row] = result.value, result.reason
    return pd.DataFrame(
        {
            "raw": frame["raw"].astype(object),
            "region": frame["region"].astype(object),
            "phone": _objects(phone[codes], frame.index),
            "reason": _objects(reason[codes], frame.index),
        }
    )


def _phone_shape(raw: object) -> tuple[str | None, str | None, bool]:
    """(reason, digits, written with "+"): a reason settles it; digits mean a plain number that
    `models.normalise.phone_fastpath` can read; neither means phonenumbers must read it."""
    text = raw.strip() if isinstance(raw, str) else ""
    reason, body, digits = _before_parsing(text)
    if reason is not None:
        return reason, None, False
    # With an extension, "/" could start a second number ("... x302/x2303"), which the library cuts.
    if len(digits) < 3 or not _PLAIN_PHONE.fullmatch(body) or (body != text and "/" in body):
        return None, None, False
    return None, digits, body.startswith("+")


def _parse_plain(
    rows: npt.NDArray[np.intp],
    digits: npt.NDArray[np.object_],
    plus: npt.NDArray[np.bool_],
    region: npt.NDArray[np.object_],
    *,
    phone: npt.NDArray[np.object_],
    reason: npt.NDArray[np.object_],
) -> npt.NDArray[np.intp]:
    """Fill phone and reason for the rows `models.normalise.phone_fastpath` decides; return the others."""
    if not len(rows):
        return rows
    keys = pd.DataFrame({"digits": digits, "plus": plus, "region": region[rows]})
    key_codes, distinct = _distinct_rows(keys)
    parsed = fast_parse(
        distinct["digits"].to_numpy(dtype=object),
        distinct["plus"].to_numpy(dtype=bool),
        distinct["region"].to_numpy(dtype=object),
    )
    nsn_junk = np.zeros(len(distinct), dtype=bool)
    nsn_junk[parsed.decided] = _junk_mask(pd.Series(parsed.nsn[parsed.decided], dtype=object))
    decided = parsed.decided[key_codes]
    done, done_keys = rows[decided], key_codes[decided]
    e164, is_junk = parsed.e164[done_keys], nsn_junk[done_keys]
    phone[done] = e164
    phone[done[is_junk]] = None
    reason[done[is_junk]] = "junk"
    reason[done[~is_junk & pd.isna(e164)]] = "invalid"
    return rows[~decided]


def _objects(values: npt.NDArray[np.object_], index: pd.Index) -> pd.Series:
    """Keep None as None: pandas would otherwise infer a string column and turn None into NaN."""
    return pd.Series(values, index=index, dtype=object)


def _junk_mask(digits: pd.Series) -> npt.NDArray[np.bool_]:
    return digits.isin(_JUNK).to_numpy(dtype=bool)


def _distinct(values: npt.NDArray[np.object_]) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.intp]]:
    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    return np.asarray(distinct, dtype=object), codes


def _distinct_rows(frame: pd.DataFrame) -> tuple[npt.NDArray[np.int64], pd.DataFrame]:
    """Per row, the code of its distinct combination of values (in order of first appearance, missing
    values alike), and the distinct rows. Column codes are combined pairwise and factorised again, so
    the combined code stays below the row count squared."""
    codes = np.zeros(len(frame), dtype=np.int64)
    for name in frame.columns:
        column, distinct = pd.factorize(frame[name].to_numpy(), use_na_sentinel=False)
        codes, _ = pd.factorize(codes * len(distinct) + column)
    _, first = np.unique(codes, return_index=True)
    return codes.astype(np.int64), frame.iloc[first].reset_index(drop=True)
