"""Link source records that share a usable email or phone into clusters, across and within sources.

Set work throughout: identifiers are counted by grouping, records and identifiers form a bipartite sparse
graph, and `scipy.sparse.csgraph.connected_components` finds the clusters. A cluster is labelled by its
smallest record_key, which depends only on its members, never on input order.

Guards stop junk from gluing strangers together. An identifier does not link when it is on a blocklist,
matches a blocked email pattern (noreply@*, ...), is a phone with a long run of one digit, or is shared by
more records than `max_records_per_identifier`. The last rule is what stops a household's landline, an
office switchboard or a placeholder nobody thought to blocklist: real people rarely share a contact point
with more than a couple of dozen records, and a value that many records share says nothing about which
person a record is. Every suppressed identifier is reported with its rule and the records holding it.

Shared identifiers are not always one person: a household's landline or a couple's address is shared by
people whose first names say they are different. With `household_split` on and the records' first
names given, each link is judged by the names on its ends (`models.identity.households`), and every link
refused is reported with its rule and the names compared.

A consequence worth knowing: adding records can push an identifier over the limit, which then stops it
linking and can split a cluster it used to hold together. That is the guard working, not instability.
"""

import fnmatch
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from models.identity.households import edges_of, split_households
from models.normalise.given_names import NameMatcher, name_tokens

IDENTIFIER_COLUMNS = ("record_key", "kind", "value")
SUPPRESSED_COLUMNS = ("kind", "value", "rule", "record_count", "record_keys")
NAME_COLUMNS = ("record_key", "first_name")
REFUSED_COLUMNS = ("record_key_a", "record_key_b", "kind", "value", "rule", "first_name_a", "first_name_b")

# Placeholders typed into email fields when a form insists on one. Example domains are deliberately not
# blocked wholesale: demo and test accounts use them for distinct people, and when one address there
# is shared widely the record limit catches it.
DEFAULT_BLOCKED_EMAILS = frozenset(
    {
        "test@test.com",
        "test@example.com",
        "email@example.com",
        "none@none.com",
        "no@email.com",
        "noemail@noemail.com",
        "na@na.com",
        "null@null.com",
    }
)
DEFAULT_BLOCKED_EMAIL_PATTERNS = (
    "noreply@*",
    "no-reply@*",
    "no_reply@*",
    "donotreply@*",
    "do-not-reply@*",
    "do_not_reply@*",
    "mailer-daemon@*",
    "postmaster@*",
)


JUNK_RULES = "junk-survives-last"
"""What the blocking rules decide beyond linking: since this marker, a junk email or phone is a
record's primary and a contact's golden value only when nothing else is held (`models.identity.phases`)."""


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    """Which identifiers may link records. Values are compared in normalised form (case-folded
    emails, E.164 phones); patterns are shell-style globs over the whole normalised email.

    same_digit_run_min: a phone whose digits hold this many of one digit in a row does not link
        (None turns the rule off). Eight is past what real numbers show, short of what placeholders
        like +86 138 8888 8888 do.
    household_split: judge links by first names when they are given (`models.identity.households`).
    nickname_pairs: (name, nickname) pairs that agree, beyond the built-in list.
    """

    blocklist_emails: frozenset[str] = DEFAULT_BLOCKED_EMAILS
    blocklist_email_patterns: tuple[str, ...] = DEFAULT_BLOCKED_EMAIL_PATTERNS
    blocklist_phones: frozenset[str] = frozenset()
    same_digit_run_min: int | None = 8
    max_records_per_identifier: int = 25
    household_split: bool = True
    nickname_pairs: tuple[tuple[str, str], ...] = ()
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _matcher: NameMatcher | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.max_records_per_identifier < 1:
            raise ValueError("max_records_per_identifier must be at least 1")
        if self.same_digit_run_min is not None and self.same_digit_run_min < 2:
            raise ValueError("same_digit_run_min must be at least 2 (or None to turn the rule off)")
        # fnmatch.translate anchors each glob at both ends, so search behaves as a whole match.
        joined = "|".join(f"^{fnmatch.translate(p.casefold())}" for p in self.blocklist_email_patterns)
        object.__setattr__(self, "_pattern", re.compile(joined) if joined else None)

    def fingerprint(self) -> str:
        """A short digest of every rule here: a stored resolution made under other rules is stale.
        ``JUNK_RULES`` marks how the rules govern more than linking (junk survives last), so a
        warehouse resolved before that is rebuilt once."""
        rules = (
            JUNK_RULES,
            sorted(self.blocklist_emails),
            list(self.blocklist_email_patterns),
            sorted(self.blocklist_phones),
            self.same_digit_run_min,
            self.max_records_per_identifier,
            self.household_split,
            sorted(self.nickname_pairs),
        )
        return hashlib.sha256(json.dumps(rules).encode()).hexdigest()[:16]

    @property
    def matcher(self) -> NameMatcher:
        """The first-name agreement rules, built once per config (the nickname list is ~5,000 pairs)."""
        if self._matcher is None:
            object.__setattr__(self, "_matcher", NameMatcher(self.nickname_pairs))
        assert self._matcher is not None
        return self._matcher

    def static_rules(self, kinds: npt.NDArray[np.object_], values: npt.NDArray[np.object_]) -> pd.Series:
        """The blocking rule each identifier hits by its value alone (None when it may link)."""
        rules = np.full(len(values), None, dtype=object)
        emails = np.flatnonzero(kinds == "email")
        phones = np.flatnonzero(kinds == "phone")
        if self.same_digit_run_min is not None:
            run = re.compile("|".join(digit * self.same_digit_run_min for digit in "0123456789"))
            rules[phones[_searches(values[phones], run)]] = "same_digit_run"
        if self._pattern is not None:
            rules[emails[_searches(values[emails], self._pattern)]] = "pattern"
        rules[emails[_among(values[emails], self.blocklist_emails)]] = "blocklist"
        rules[phones[_among(values[phones], self.blocklist_phones)]] = "blocklist"
        return pd.Series(rules, dtype=object)


def _among(values: npt.NDArray[np.object_], blocked: frozenset[str]) -> npt.NDArray[np.bool_]:
    return pd.Series(values, dtype=object).isin(blocked).to_numpy(dtype=bool)


def _searches(values: npt.NDArray[np.object_], pattern: re.Pattern[str]) -> npt.NDArray[np.bool_]:
    return np.fromiter((pattern.search(v) is not None for v in values), dtype=bool, count=len(values))


@dataclass(frozen=True, slots=True)
class Linkage:
    """components: record_key, component (smallest record_key of the cluster), one row per record, sorted.
    suppressed: kind, value, rule, record_count, record_keys (sorted list), one row per suppressed
        identifier; with global counts given, record_count is global and record_keys lists the holders
        among the records passed in.
    refused: REFUSED_COLUMNS, one row per pair of records sharing an identifier that were kept apart
        (record_key_a < record_key_b), sorted; empty when names were not judged.
    """

    components: pd.DataFrame
    suppressed: pd.DataFrame
    refused: pd.DataFrame


class Identifiers:
    """Distinct (kind, value) identifiers of a set of records, with codes joining them back to the rows."""

    def __init__(self, identifiers: pd.DataFrame) -> None:
        rows = identifiers.loc[:, list(IDENTIFIER_COLUMNS)].drop_duplicates()
        kind_codes, kinds = pd.factorize(rows["kind"].to_numpy(dtype=object))
        value_codes, values = pd.factorize(rows["value"].to_numpy(dtype=object))
        pair = value_codes.astype(np.int64) * max(len(kinds), 1) + kind_codes
        distinct, self.codes = np.unique(pair, return_inverse=True)
        self.record_keys: npt.NDArray[np.int64] = rows["record_key"].to_numpy(dtype=np.int64)
        self.kinds = np.asarray(kinds, dtype=object)[distinct % max(len(kinds), 1)]
        self.values = np.asarray(values, dtype=object)[distinct // max(len(kinds), 1)]
        self.holders: npt.NDArray[np.int64] = np.bincount(self.codes, minlength=len(distinct))

    def __len__(self) -> int:
        return len(self.kinds)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"kind": self.kinds, "value": self.values}, dtype=object)


def suppression_rules(
    ids: Identifiers, config: IdentityConfig, counts: npt.NDArray[np.int64] | None = None
) -> pd.Series:
    """Per distinct identifier, the rule that keeps it from linking, else None. `counts` are the numbers
    of records holding each identifier when they differ from what `ids` sees (an incremental run)."""
    rules = config.static_rules(ids.kinds, ids.values)
    record_count = ids.holders if counts is None else counts
    crowded = (record_count > config.max_records_per_identifier) & rules.isna().to_numpy()
    rules[crowded] = "too_many_records"
    return rules


def link(
    record_keys: Iterable[int] | npt.NDArray[np.int64],
    identifiers: pd.DataFrame,
    config: IdentityConfig,
    identifier_counts: pd.DataFrame | None = None,
    names: pd.DataFrame | None = None,
) -> Linkage:
    """Cluster `record_keys` by the usable identifiers they share.

    identifiers: record_key (int64), kind ('email' | 'phone'), value (normalised, usable values only);
        rows for records outside `record_keys` are an error.
    identifier_counts: kind, value, record_count. Needed when `record_keys` is only a neighbourhood of a
        larger set (incremental runs): the record limit is about every record holding the identifier,
        not just those passed in. Identifiers it does not list count only the records passed in.
    names: record_key, first_name of the records (missing rows: no name). Given, and with the config's
        household_split on, links are judged by the names on their ends.
    """
    keys = record_key_array(record_keys)
    ids = Identifiers(identifiers)
    rows = np.searchsorted(keys, ids.record_keys)
    if len(rows) and (rows.max() >= len(keys) or not np.array_equal(keys[rows], ids.record_keys)):
        raise ValueError("identifiers name records that are not in record_keys")
    counts = _global_counts(ids, identifier_counts)
    rules = suppression_rules(ids, config, counts)
    usable = rules.isna().to_numpy()

    linking = usable[ids.codes]
    refused = empty_refused()
    if names is not None and config.household_split:
        first_names = _first_names(keys, names)
        edges = edges_of(rows[linking], ids.codes[linking], ids.kinds[ids.codes[linking]] == "email")
        households = split_households(
            len(keys), edges, name_tokens(first_names).to_numpy(dtype=object), config.matcher
        )
        record_labels, count = households.labels, int(households.labels.max(initial=-1)) + 1
        apart = households.refused
        refused = _refused_frame(
            keys,
            ids,
            left=edges.left[apart],
            right=edges.right[apart],
            codes=edges.code[apart],
            rules=households.rules,
            first_names=first_names.to_numpy(dtype=object),
        )
    else:
        graph = coo_array(
            (np.ones(int(linking.sum()), dtype=np.int8), (rows[linking], len(keys) + ids.codes[linking])),
            shape=(len(keys) + len(ids), len(keys) + len(ids)),
        )
        count, labels = connected_components(graph, directed=False)
        record_labels = labels[: len(keys)]
    smallest = np.full(count, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, record_labels, keys)
    components = pd.DataFrame({"record_key": keys, "component": smallest[record_labels]})
    return Linkage(components=components, suppressed=_suppressed(ids, rules, counts), refused=refused)


def empty_refused() -> pd.DataFrame:
    """A refused-links frame with no rows and the columns of `Linkage.refused`."""
    frame = pd.DataFrame({name: pd.Series(dtype=object) for name in REFUSED_COLUMNS})
    return frame.astype({"record_key_a": np.int64, "record_key_b": np.int64})


def _first_names(keys: npt.NDArray[np.int64], names: pd.DataFrame) -> pd.Series:
    """Each record's first name, aligned with `keys` (None where none was given)."""
    given = names.loc[:, list(NAME_COLUMNS)].drop_duplicates("record_key").set_index("record_key")
    found = given["first_name"].reindex(keys)
    return pd.Series(found.to_numpy(dtype=object), dtype=object).where(found.notna().to_numpy(), None)


def _refused_frame(
    keys: npt.NDArray[np.int64],
    ids: Identifiers,
    *,
    left: npt.NDArray[np.int64],
    right: npt.NDArray[np.int64],
    codes: npt.NDArray[np.int64],
    rules: npt.NDArray[np.object_],
    first_names: npt.NDArray[np.object_],
) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "record_key_a": keys[left],
            "record_key_b": keys[right],
            "kind": pd.Series(ids.kinds[codes], dtype=object),
            "value": pd.Series(ids.values[codes], dtype=object),
            "rule": pd.Series(rules, dtype=object),
            "first_name_a": pd.Series(first_names[left], dtype=object),
            "first_name_b": pd.Series(first_names[right], dtype=object),
        }
    )
    return frame.sort_values(["record_key_a", "record_key_b", "kind", "value"], ignore_index=True)


def record_key_array(record_keys: Iterable[int] | npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Sorted distinct record keys as int64, from an array, a Series or any iterable of ints."""
    if isinstance(record_keys, np.ndarray | pd.Series | pd.Index):
        return np.unique(np.asarray(record_keys, dtype=np.int64))
    return np.unique(np.fromiter(record_keys, dtype=np.int64))


def _global_counts(ids: Identifiers, identifier_counts: pd.DataFrame | None) -> npt.NDArray[np.int64]:
    if identifier_counts is None:
        return ids.holders
    known = ids.frame().merge(
        identifier_counts.loc[:, ["kind", "value", "record_count"]], on=["kind", "value"], how="left"
    )
    given = known["record_count"].to_numpy(dtype=np.float64)
    return np.where(np.isnan(given), ids.holders, given).astype(np.int64)


def _suppressed(ids: Identifiers, rules: pd.Series, counts: npt.NDArray[np.int64]) -> pd.DataFrame:
    blocked = np.flatnonzero(rules.notna().to_numpy())
    if not len(blocked):
        return pd.DataFrame({name: pd.Series(dtype=object) for name in SUPPRESSED_COLUMNS}).astype(
            {"record_count": np.int64}
        )
    mine = np.isin(ids.codes, blocked)
    holders = pd.DataFrame({"code": ids.codes[mine], "record_key": ids.record_keys[mine]})
    holders = holders.sort_values(["code", "record_key"])
    starts = np.searchsorted(holders["code"].to_numpy(), blocked)
    keys = np.split(holders["record_key"].to_numpy(), starts[1:])
    return pd.DataFrame(
        {
            "kind": pd.Series(ids.kinds[blocked], dtype=object),
            "value": pd.Series(ids.values[blocked], dtype=object),
            "rule": pd.Series(rules.to_numpy(dtype=object)[blocked], dtype=object),
            "record_count": counts[blocked],
            "record_keys": pd.Series([k.tolist() for k in keys], dtype=object),
        }
    )
