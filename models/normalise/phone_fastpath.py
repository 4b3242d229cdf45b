"""Parse and validate phone numbers written as plain digits in bulk, exactly as phonenumbers would.

phonenumbers costs about 30 µs a number in pure Python: half a minute for a million distinct numbers, most
of them already plain digits ("+14155552671", "13774202819", "(415) 555-2671"). For those shapes parsing
is only a few checks against the library's own metadata, and validation is a set of regular expressions
that can run over a whole column at once. This module does that, and hands back every input whose parse
would take one of the library's rarer branches (an international dialling prefix, a national prefix or
carrier code to strip, a country code written without "+", an error), so the library itself decides
those. Property tests hold the results equal to `phonenumbers.parse` + `is_valid_number`.

Steps mirrored, from phonenumbers 9.0 `parse`, `region_code_for_number` and `is_valid_number`:
- "+" then digits: the country code is the shortest 1–3 digit prefix in COUNTRY_CODE_TO_REGION_CODE; the
  rest is the national significant number (NSN) unless the national prefix pattern of the code's main
  region matches its start.
- digits with a region: unless they start with the region's international prefix or national prefix,
  the NSN is the digits; but when they start with the region's country code and the digits after it
  fit the region's general pattern while the whole does not (or the whole is too long), those digits
  are the NSN, as if "+" had been written ("1 415 555 2671" in the US).
- valid: for a code with one region, the NSN matches that region's general pattern and one of its type
  patterns, each with its possible lengths; for a shared code (+1, +7, +44, ...) the region is the first
  in the library's order whose leading digits match, or, without leading digits, for which the NSN is
  valid, and the NSN must be valid there.
"""

import functools
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

# Shortest and longest NSN parse accepts (phonenumberutil._MIN_LENGTH_FOR_NSN, _MAX_LENGTH_FOR_NSN).
_MIN_NSN = 2
_MAX_NSN = 17
_COUNTRY_CODES = frozenset(str(code) for code in COUNTRY_CODE_TO_REGION_CODE)
_SUPPORTED_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)
_NON_GEO = "001"


@dataclass(frozen=True, slots=True)
class _Rules:
    country_code: int
    international_prefix: re.Pattern[str] | None
    # A national prefix or carrier code to strip: parse's rarer branch, left to the library.
    national_prefix: re.Pattern[str] | None
    general: re.Pattern[str] | None
    longest: int | None
    local_only: frozenset[int]
    leading_digits: re.Pattern[str] | None
    valid: re.Pattern[str] | None

    def too_long(self, lengths: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """`_test_number_length(..) == TOO_LONG` against the general description."""
        if self.longest is None:
            return np.zeros(len(lengths), dtype=bool)
        return (lengths > self.longest) & ~np.isin(lengths, list(self.local_only))


@dataclass(frozen=True, slots=True)
class FastParse:
    """Per input: whether this module decided it, and if so the NSN and the E.164 form when valid."""

    decided: npt.NDArray[np.bool_]
    nsn: npt.NDArray[np.object_]
    e164: npt.NDArray[np.object_]


def _desc_pattern(desc: phonenumbers.PhoneNumberDesc | None) -> str | None:
    """A regex matching what `_is_number_matching_desc` accepts for this description, or None."""
    if desc is None or not desc.national_number_pattern:
        return None
    lengths = [length for length in desc.possible_length if length > 0]
    if desc.possible_length and not lengths:
        return None
    guard = "(?=" + "|".join(rf"\d{{{length}}}\Z" for length in lengths) + ")" if lengths else ""
    return rf"{guard}(?:{desc.national_number_pattern})\Z"


def _validity_pattern(metadata: PhoneMetadata) -> re.Pattern[str] | None:
    general = _desc_pattern(metadata.general_desc)
    if general is None:
        return None
    descs = [
        metadata.premium_rate,
        metadata.toll_free,
        metadata.shared_cost,
        metadata.voip,
        metadata.personal_number,
        metadata.pager,
        metadata.uan,
        metadata.voicemail,
        metadata.fixed_line,
    ]
    # The library only tries the mobile pattern when it differs from the fixed-line one.
    if not metadata.same_mobile_and_fixed_line_pattern:
        descs.append(metadata.mobile)
    types = [pattern for desc in descs if (pattern := _desc_pattern(desc)) is not None]
    if not types:
        return None
    return re.compile(f"(?={general})(?:{'|'.join(types)})")


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None


@functools.cache
def _rules(region: str, country_code: int) -> _Rules | None:
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None or metadata.country_code is None:
        return None
    general = metadata.general_desc
    general_pattern = general.national_number_pattern if general is not None else None
    return _Rules(
        country_code=metadata.country_code,
        national_prefix=_compile(metadata.national_prefix_for_parsing),
        international_prefix=_compile(metadata.international_prefix),
        general=re.compile(rf"(?:{general_pattern})\Z") if general_pattern else None,
        longest=max(general.possible_length) if general is not None and general.possible_length else None,
        local_only=frozenset(general.possible_length_local_only if general is not None else ()),
        leading_digits=_compile(metadata.leading_digits),
        valid=_validity_pattern(metadata),
    )


def _region_rules(region: str) -> _Rules | None:
    metadata = PhoneMetadata.metadata_for_region(region)
    return None if metadata is None else _rules(region, metadata.country_code)


def _matches(values: npt.NDArray[np.object_], pattern: re.Pattern[str] | None) -> npt.NDArray[np.bool_]:
    """Prefix match (re.match) of each value; False throughout for a missing pattern."""
    if pattern is None:
        return np.zeros(len(values), dtype=bool)
    return np.fromiter((pattern.match(v) is not None for v in values), dtype=bool, count=len(values))


def _lengths(values: npt.NDArray[np.object_]) -> npt.NDArray[np.int64]:
    return np.fromiter(map(len, values), dtype=np.int64, count=len(values))


def _valid(country_code: int, nsn: npt.NDArray[np.object_]) -> npt.NDArray[np.bool_]:
    regions = COUNTRY_CODE_TO_REGION_CODE[country_code]
    if len(regions) == 1:
        rules = _rules(regions[0], country_code)
        if rules is None or (regions[0] != _NON_GEO and rules.country_code != country_code):
            return np.zeros(len(nsn), dtype=bool)
        return _matches(nsn, rules.valid)
    valid = np.zeros(len(nsn), dtype=bool)
    undecided = np.arange(len(nsn))
    for region in regions:
        rules = _region_rules(region)
        if rules is None or not len(undecided):
            continue
        pending = nsn[undecided]
        if rules.leading_digits is not None:
            chosen = _matches(pending, rules.leading_digits)
            valid[undecided[chosen]] = _matches(pending[chosen], rules.valid)
        else:
            chosen = _matches(pending, rules.valid)
            valid[undecided[chosen]] = True
        undecided = undecided[~chosen]
    return valid


def fast_parse(
    digits: npt.NDArray[np.object_], plus: npt.NDArray[np.bool_], region: npt.NDArray[np.object_]
) -> FastParse:
    """Decide what can be decided for each (ASCII digits, written with a leading "+", upper-case region).

    Give each combination once. `digits` must hold at least three digits and nothing else, the
    punctuation of the original having been removed; with fewer digits the library's viability rule
    depends on that punctuation.
    """
    count = len(digits)
    decided = np.zeros(count, dtype=bool)
    nsn = np.full(count, None, dtype=object)
    code = np.zeros(count, dtype=np.int64)

    international = np.flatnonzero(plus)
    if len(international):
        _parse_international(digits[international], international, decided=decided, nsn=nsn, code=code)
    national = np.flatnonzero(~plus)
    region_codes, regions = pd.factorize(region[national])
    for index, name in enumerate(regions):
        positions = national[region_codes == index]
        _parse_national(str(name), digits[positions], positions, decided=decided, nsn=nsn, code=code)

    e164 = np.full(count, None, dtype=object)
    for country_code in np.unique(code[decided]):
        rows = np.flatnonzero(decided & (code == country_code))
        ok = _valid(int(country_code), nsn[rows])
        prefix = f"+{country_code}"
        e164[rows[ok]] = [prefix + number for number in nsn[rows[ok]]]
    return FastParse(decided=decided, nsn=nsn, e164=e164)


def _split_country_code(digits: str) -> tuple[int, str]:
    """(country code, rest) as parse reads digits after "+"; (0, "") when no code is recognised."""
    if digits.startswith("0"):
        return 0, ""
    for length in (1, 2, 3):
        if digits[:length] in _COUNTRY_CODES:
            return int(digits[:length]), digits[length:]
    return 0, ""


def _parse_international(
    values: npt.NDArray[np.object_],
    positions: npt.NDArray[np.intp],
    *,
    decided: npt.NDArray[np.bool_],
    nsn: npt.NDArray[np.object_],
    code: npt.NDArray[np.int64],
) -> None:
    split = [_split_country_code(value) for value in values]
    heads = np.fromiter((head for head, _ in split), dtype=np.int64, count=len(split))
    rests = np.fromiter((rest for _, rest in split), dtype=object, count=len(split))
    lengths = _lengths(rests)
    for country_code in np.unique(heads[heads > 0]):
        mine = np.flatnonzero(heads == country_code)
        region = phonenumbers.region_code_for_country_code(int(country_code))
        rules = _rules(region, int(country_code))
        if rules is None:
            continue
        part = rests[mine]
        ok = (
            (lengths[mine] >= _MIN_NSN) & (lengths[mine] <= _MAX_NSN) & ~_matches(part, rules.national_prefix)
        )
        _decide(positions[mine[ok]], part[ok], rules, decided=decided, nsn=nsn, code=code)


def _parse_national(
    region: str,
    values: npt.NDArray[np.object_],
    positions: npt.NDArray[np.intp],
    *,
    decided: npt.NDArray[np.bool_],
    nsn: npt.NDArray[np.object_],
    code: npt.NDArray[np.int64],
) -> None:
    if region not in _SUPPORTED_REGIONS:
        return
    rules = _region_rules(region)
    if rules is None:
        return
    prefix = str(rules.country_code)
    open_rows = np.flatnonzero(~_matches(values, rules.international_prefix) & (_lengths(values) <= _MAX_NSN))
    coded = np.fromiter((values[i].startswith(prefix) for i in open_rows), dtype=bool, count=len(open_rows))
    national = [open_rows[~coded]]

    # Digits starting with the region's own country code: parse first strips a national prefix after
    # the code when there is one (left to the library), then keeps the code if the rest fits the
    # general pattern while the whole does not, or if the whole is too long.
    coded_rows = open_rows[coded]
    rest = np.fromiter((v[len(prefix) :] for v in values[coded_rows]), dtype=object, count=len(coded_rows))
    plain = ~_matches(rest, rules.national_prefix)
    coded_rows, rest = coded_rows[plain], rest[plain]
    whole = values[coded_rows]
    kept = (~_matches(whole, rules.general) & _matches(rest, rules.general)) | rules.too_long(_lengths(whole))
    national.append(coded_rows[~kept])

    # Without a code, the digits are the national number, unless a national prefix is to be stripped.
    rows = np.concatenate(national)
    rows = rows[~_matches(values[rows], rules.national_prefix)]
    _decide(positions[rows], values[rows], rules, decided=decided, nsn=nsn, code=code)

    # With the code kept, the rest is read under the code's main region, national prefix and all.
    main = _rules(phonenumbers.region_code_for_country_code(rules.country_code), rules.country_code)
    if main is None:
        return
    rest = rest[kept]
    lengths = _lengths(rest)
    ok = (lengths >= _MIN_NSN) & ~_matches(rest, main.national_prefix)
    _decide(positions[coded_rows[kept][ok]], rest[ok], main, decided=decided, nsn=nsn, code=code)


def _decide(
    positions: npt.NDArray[np.intp],
    numbers: npt.NDArray[np.object_],
    rules: _Rules,
    *,
    decided: npt.NDArray[np.bool_],
    nsn: npt.NDArray[np.object_],
    code: npt.NDArray[np.int64],
) -> None:
    decided[positions] = True
    nsn[positions] = numbers
    code[positions] = rules.country_code
