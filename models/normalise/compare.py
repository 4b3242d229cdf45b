"""Whether a destination field still holds a value we wrote, read the way the field is compared.

A destination may store what we sent in its own form: an email in other case, a phone as national
digits or with punctuation, "United States" for "US", text with other spacing. None of that is a
change anyone made, so values are compared in their matching forms: emails normalised, phones as E.164
(our value is E.164, or a Chinese number's national digits as Linkflow keeps them), countries by ISO
code, text cleaned but case-sensitive (a person correcting "smith" to "Smith" did change it).

Reverse-sync undo asks it before putting a field back; survivorship asks it to tell whether someone
edited a record after our write (`models.identity.own_writes`).
"""

import functools
import math
from typing import Literal

import pandas as pd
import phonenumbers

from models.normalise.countries import country_code
from models.normalise.field_values import clean_text
from models.normalise.identifiers import normalise_email, normalise_phone
from models.normalise.layouts import layout

ValueKind = Literal["email", "phone", "text", "country"]


@functools.cache
def field_kind(source: str, obj: str, path: str) -> ValueKind:
    """How a payload field of a source object is compared: by what identity resolution reads it as."""
    spec = layout(source, obj)
    if path in spec.emails:
        return "email"
    if path in spec.phones:
        return "phone"
    if path in spec.country:
        return "country"
    return "text"


def holds_value(kind: str, held: object, sent: object) -> bool:
    """Whether a field holding ``held`` holds ``sent``, compared as a field of this kind reads."""
    if _missing(held) or _missing(sent):
        return _missing(held) and _missing(sent)
    left, right = str(held), str(sent)
    if left.strip() == right.strip():  # as sent: nearly every value read back
        return True
    if kind == "email":
        return _same_form(normalise_email(left).value, normalise_email(right).value, left, right)
    if kind == "phone":
        # Our value is E.164, or a Chinese number's national digits (Linkflow), read in CN; the held
        # value is read in our number's own country, as a destination may keep it in national form.
        ours = normalise_phone(right, "CN").value
        region = _region_of(ours) if ours else "CN"
        return _same_form(normalise_phone(left, region).value, ours, left, right)
    if kind == "country":
        return (country_code(left) or clean_text(left)[0]) == (country_code(right) or clean_text(right)[0])
    return clean_text(left)[0] == clean_text(right)[0]


def _region_of(e164: str) -> str:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164)) or "US"
    except phonenumbers.NumberParseException:
        return "US"


def _same_form(left: str | None, right: str | None, left_raw: str, right_raw: str) -> bool:
    """Equal matching forms; two values without one (unreadable) are compared as cleaned text."""
    if left is None or right is None:
        return left is None and right is None and clean_text(left_raw)[0] == clean_text(right_raw)[0]
    return left == right


def _missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, str) and value.isprintable() and value[:1].strip() and value[-1:].strip():
        return False  # printable text that starts and ends visibly is there (the common case)
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and clean_text(value)[0] is None
