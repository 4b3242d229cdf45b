"""Email and phone normalisation: concrete cases from the sources, and the column functions held equal to
the per-value reference (including the phone fast path, which must agree with phonenumbers itself)."""

import numpy as np
import pandas as pd
import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import models.normalise.identifiers as normalise_module
from models.normalise.identifiers import (
    GMAIL_STYLE_DOMAINS,
    normalise_email,
    normalise_emails,
    normalise_phone,
    normalise_phones,
)
from models.normalise.phone_fastpath import fast_parse


@pytest.mark.parametrize(
    ("raw", "region", "phone", "reason"),
    [
        # Linkflow keeps Chinese mobiles without +86 (api-notes §4.3).
        ("13774202819", "CN", "+8613774202819", None),
        # Zoho holds free text (api-notes §5.5).
        ("(415) 555-2671", "US", "+14155552671", None),
        ("+1-555-0123", "US", None, "invalid"),
        # ClickFunnels' own example carries an extension (api-notes §2.4).
        ("(224) 508-1342 x59891", "US", "+12245081342", None),
        ("(224) 508-1342 ext. 12", "US", "+12245081342", None),
        ("+18005550199", None, "+18005550199", None),
        ("1 415 555 2671", "US", "+14155552671", None),
        ("+86 137 7420 2819", "US", "+8613774202819", None),
        ("025-83729999", "CN", "+862583729999", None),
        ("020 7946 0958", "GB", "+442079460958", None),
        ("+44 (0) 20 7946 0958", None, "+442079460958", None),
        ("0000000000", "US", None, "junk"),
        ("1234567890", "US", None, "junk"),
        ("9876543210", "US", None, "junk"),
        # One digit repeated is a placeholder; phonenumbers also finds no such number.
        ("555-555-5555", "US", None, "junk"),
        ("", "US", None, "empty"),
        ("   ", "US", None, "empty"),
        (None, "US", None, "empty"),
        ("abc", "US", None, "unparseable"),
        ("13774202819", None, None, "invalid_country_code"),
        ("+999 123 456", "US", None, "invalid_country_code"),
        ("12", "US", None, "invalid"),
        ("1" * 300, "US", None, "too_long"),
        ("12345678901234567890", "US", None, "too_long"),
    ],
)
def test_phone_cases(raw: str | None, region: str | None, phone: str | None, reason: str | None) -> None:
    result = normalise_phone(raw, region)
    assert (result.raw, result.value, result.reason) == (raw, phone, reason)
    column = normalise_phones(pd.DataFrame({"raw": [raw], "region": [region]}, dtype=object))
    assert column.loc[0, "phone"] == phone
    assert column.loc[0, "reason"] == reason


def test_megabyte_phone_is_too_long_without_parsing() -> None:
    assert normalise_phone("5" * 1_000_000, "US").reason == "too_long"


@pytest.mark.parametrize(
    ("raw", "email", "reason"),
    [
        (" Jane.Doe@Example.COM ", "jane.doe@example.com", None),
        ("JOHN@EXAMPLE.COM", "john@example.com", None),
        ("test@test.com", "test@test.com", None),
        ("Straße@Example.de", "strasse@example.de", None),
        ("用户@例子.广告", "用户@例子.广告", None),
        ("foo@xn--bcher-kva.example", "foo@bücher.example", None),
        ("christopher-maclead@noemail.invalid", None, "invalid_syntax"),
        ("a..b@example.com", None, "invalid_syntax"),
        ("no-at-sign", None, "invalid_syntax"),
        ("Jane <jane@example.com>", None, "invalid_syntax"),
        ("a@b", None, "invalid_syntax"),
        ("", None, "empty"),
        (None, None, "empty"),
        ("x" * 250 + "@example.com", None, "too_long"),
    ],
)
def test_email_cases(raw: str | None, email: str | None, reason: str | None) -> None:
    result = normalise_email(raw)
    assert (result.value, result.reason) == (email, reason)
    column = normalise_emails(pd.Series([raw], dtype=object))
    assert (column.loc[0, "email"], column.loc[0, "reason"]) == (email, reason)


def test_megabyte_email_is_too_long() -> None:
    assert normalise_email("a" * 1_000_000 + "@example.com").reason == "too_long"


def test_gmail_style_stripping_only_when_asked_and_only_for_named_domains() -> None:
    raw = pd.Series(["Jane.Doe+news@Gmail.com", "jane.doe+news@outlook.com", "+tag@gmail.com"], dtype=object)
    assert normalise_emails(raw)["email"].tolist() == [
        "jane.doe+news@gmail.com",
        "jane.doe+news@outlook.com",
        "+tag@gmail.com",
    ]
    stripped = normalise_emails(raw, alias_domains=GMAIL_STYLE_DOMAINS)["email"].tolist()
    assert stripped == ["janedoe@gmail.com", "jane.doe+news@outlook.com", "+tag@gmail.com"]
    assert (
        normalise_email("J.Doe+x@googlemail.com", alias_domains=GMAIL_STYLE_DOMAINS).value
        == "jdoe@googlemail.com"
    )


def test_columns_keep_index_and_raw_values() -> None:
    frame = pd.DataFrame(
        {"raw": ["(415) 555-2671", None, "13774202819"], "region": ["US", "US", "CN"]},
        index=[10, 20, 30],
        dtype=object,
    )
    result = normalise_phones(frame)
    assert result.index.tolist() == [10, 20, 30]
    assert result.columns.tolist() == ["raw", "region", "phone", "reason"]
    assert result["raw"].tolist() == ["(415) 555-2671", None, "13774202819"]
    assert result["phone"].tolist() == ["+14155552671", None, "+8613774202819"]
    assert result["reason"].tolist() == [None, "empty", None]

    emails = normalise_emails(pd.Series(["A@B.com", "bad"], index=["x", "y"], dtype=object))
    assert emails.index.tolist() == ["x", "y"]
    assert emails.columns.tolist() == ["raw", "email", "reason"]


def test_lowercase_region_reads_like_uppercase() -> None:
    assert normalise_phone("(415) 555-2671", "us").value == "+14155552671"
    frame = pd.DataFrame({"raw": ["(415) 555-2671", "(415) 555-2671"], "region": ["us", "US"]}, dtype=object)
    assert normalise_phones(frame)["phone"].tolist() == ["+14155552671", "+14155552671"]


def test_each_distinct_value_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference path (phonenumbers / email-validator) runs once per distinct input, however many
    rows repeat it."""
    phone_calls: list[str | None] = []
    email_calls: list[str | None] = []
    reference_phone, reference_email = normalise_module.normalise_phone, normalise_module.normalise_email

    def count_phone(raw: str | None, region: str | None) -> normalise_module.Normalised:
        phone_calls.append(raw)
        return reference_phone(raw, region)

    def count_email(raw: str | None, **options: frozenset[str]) -> normalise_module.Normalised:
        email_calls.append(raw)
        return reference_email(raw, **options)

    monkeypatch.setattr(normalise_module, "normalise_phone", count_phone)
    monkeypatch.setattr(normalise_module, "normalise_email", count_email)
    phones = pd.DataFrame({"raw": ["tel: 415 555 2671"] * 1000, "region": ["US"] * 1000}, dtype=object)
    assert normalise_phones(phones)["phone"].eq("+14155552671").all()
    assert phone_calls == ["tel: 415 555 2671"]
    emails = pd.Series(["Jürgen@Example.de"] * 1000, dtype=object)
    assert normalise_emails(emails)["email"].eq("jürgen@example.de").all()
    assert email_calls == ["Jürgen@Example.de"]


def test_fast_path_decides_the_common_shapes() -> None:
    """Equivalence alone would pass if the fast path decided nothing; it must take the usual shapes."""
    digits = np.array(
        ["14155552671", "4155552671", "13774202819", "14155552671", "8613774202819"], dtype=object
    )
    plus = np.array([True, False, False, False, True])
    region = np.array(["US", "US", "CN", "US", "US"], dtype=object)
    parsed = fast_parse(digits, plus, region)
    assert parsed.decided.all()
    assert parsed.e164.tolist() == [
        "+14155552671",
        "+14155552671",
        "+8613774202819",
        "+14155552671",
        "+8613774202819",
    ]


# Strategies for the equivalence properties: real numbers of every region and type, written in every
# format, with digits changed, country codes without "+", extensions, stray punctuation and junk.
_REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
_FORMATS = (
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.NATIONAL,
    phonenumbers.PhoneNumberFormat.RFC3966,
)


@st.composite
def _written_numbers(draw: st.DrawFn) -> tuple[str, str | None]:
    region = draw(st.sampled_from(_REGIONS))
    kind = draw(st.sampled_from(list(phonenumbers.PhoneNumberType.values())))
    example = phonenumbers.example_number_for_type(region, kind) or phonenumbers.example_number(region)
    assert example is not None
    text = phonenumbers.format_number(example, draw(st.sampled_from(_FORMATS)))
    if draw(st.booleans()):
        text = text.lstrip("+")
    digit_positions = [i for i, ch in enumerate(text) if ch.isdigit()]
    if digit_positions and draw(st.booleans()):
        at = draw(st.sampled_from(digit_positions))
        text = text[:at] + str(draw(st.integers(0, 9))) + text[at + 1 :]
    text = draw(st.sampled_from(["", "(", " ", "tel: "])) + text
    text += draw(st.sampled_from(["", " x12", " X 123", " ext. 4", "x", " ext1234567890", " x12#", "/x3"]))
    read_as = draw(st.sampled_from([region, "US", "CN", "GB", "us", "ZZ", None]))
    return text, read_as


_DIGIT_STRINGS = st.tuples(
    st.from_regex(r"\A\+?[0-9]{1,19}\Z"),
    st.sampled_from(["US", "CN", "GB", "DE", "IT", "RU", "KZ", "BR", "AR", "MX", None]),
)
_NOISE = st.tuples(
    st.text(alphabet="0123456789+-(). x/#abc１２３", max_size=24),
    st.sampled_from(["US", "CN", "FR", None]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_written_numbers(), _DIGIT_STRINGS, _NOISE), min_size=1, max_size=40))
def test_phone_column_equals_reference(values: list[tuple[str, str | None]]) -> None:
    frame = pd.DataFrame(values, columns=["raw", "region"], dtype=object)
    column = normalise_phones(frame)
    for (raw, region), phone, reason in zip(values, column["phone"], column["reason"], strict=True):
        reference = normalise_phone(raw, region)
        assert (phone, reason) == (reference.value, reference.reason), (raw, region)


_ATEXT = "a-zA-Z0-9_!#$%&'*+/=?^`{|}~-"
_EMAILS = st.one_of(
    st.from_regex(
        rf"\A[{_ATEXT}]{{1,20}}(\.[{_ATEXT}]{{1,8}}){{0,2}}@([a-zA-Z0-9-]{{1,12}}\.){{1,3}}[a-zA-Z]{{2,6}}\Z"
    ),
    st.from_regex(r"\A[a-z.]{0,6}@[a-z0-9.-]{0,12}\Z"),
    st.sampled_from(["a@localhost", "b@test", "c@xn--bcher-kva.example", "d@1.2.3.4", "ü@ü.de", " e@f.gh "]),
    st.text(max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_EMAILS, min_size=1, max_size=40), st.booleans())
def test_email_column_equals_reference(values: list[str], strip_aliases: bool) -> None:
    aliases = GMAIL_STYLE_DOMAINS if strip_aliases else frozenset()
    column = normalise_emails(pd.Series(values, dtype=object), alias_domains=aliases)
    for raw, email, reason in zip(values, column["email"], column["reason"], strict=True):
        reference = normalise_email(raw, alias_domains=aliases)
        assert (email, reason) == (reference.value, reference.reason), raw
