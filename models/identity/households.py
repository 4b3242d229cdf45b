"""Keep the people of one household apart: judge each link by the first names on its two ends.

Linking on any shared email or phone is right for one person and wrong for a family's landline, a shared
office number or a couple's joint address. So every pair of records that shares a usable identifier is an
edge, and an edge whose two first names clearly differ (`models.normalise.given_names`) is refused.

Refusing edges is not enough on its own: a record with no first name (or only an initial) that shares
the landline agrees with everyone, and would glue the household back together through itself. So where
the agreeing edges still join names that disagree (a *clashing* group), it is settled in steps, each
defined on sets so the result never depends on input order:

1. Records whose name agrees with two names that disagree with each other ("J" beside "John" and "Jane")
   or that have no name are *unclear*; the others are *named*.
2. Named records joined by agreeing edges form one person each.
3. An unclear record joins the people it shares an email with; failing any, those it shares a phone
   with; and only when all of those people's names agree with one another. An identifier reaching people
   who disagree (a couple's address) decides nothing, so a record holding a couple's address and one
   partner's own mobile joins that partner. Otherwise it stays on its own: it could be either person, and
   guessing would move one person's values into another's record.
4. Unclear records reaching no person directly follow the unclear records they share an identifier with.
5. A group that still joins disagreeing names (rare: two unclear records each joining a different pair)
   keeps only its named people and the records that joined exactly one of them.

Every edge whose ends land in different contacts is a refused link, reported with its rule:
``names_differ`` when the two names disagree, ``unclear_whose`` when they agree but one end could belong
to more than one of the people sharing the identifier.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from models.normalise.given_names import NameMatcher

NAMES_DIFFER = "names_differ"
UNCLEAR_WHOSE = "unclear_whose"


@dataclass(frozen=True, slots=True)
class Edges:
    """Pairs of records (positions into the record array, left < right) sharing one usable identifier,
    with that identifier's code and kind ('email' or 'phone')."""

    left: npt.NDArray[np.int64]
    right: npt.NDArray[np.int64]
    code: npt.NDArray[np.int64]
    is_email: npt.NDArray[np.bool_]


def edges_of(
    rows: npt.NDArray[np.int64], codes: npt.NDArray[np.int64], is_email: npt.NDArray[np.bool_]
) -> Edges:
    """Every pair of distinct records holding the same identifier (one row per record and identifier in)."""
    frame = pd.DataFrame({"row": rows, "code": codes, "email": is_email}).drop_duplicates(["row", "code"])
    shared = frame[frame.duplicated("code", keep=False)]
    pairs = shared.merge(shared.loc[:, ["row", "code"]], on="code", suffixes=("", "_other"))
    pairs = pairs[pairs["row"] < pairs["row_other"]]
    return Edges(
        left=pairs["row"].to_numpy(dtype=np.int64),
        right=pairs["row_other"].to_numpy(dtype=np.int64),
        code=pairs["code"].to_numpy(dtype=np.int64),
        is_email=pairs["email"].to_numpy(dtype=bool),
    )


@dataclass(frozen=True, slots=True)
class Households:
    """labels: one cluster label per record position; refused: positions of the edges (into `Edges`)
    whose ends were kept apart, with the rule of each."""

    labels: npt.NDArray[np.int64]
    refused: npt.NDArray[np.int64]
    rules: npt.NDArray[np.object_]


def split_households(
    count: int, edges: Edges, tokens: npt.NDArray[np.object_], matcher: NameMatcher
) -> Households:
    """Cluster `count` records joined by `edges`, keeping apart the people their names tell apart.

    tokens: each record's first-name token (`models.normalise.given_names.name_token`), None if missing.
    """
    agree = matcher.agree(tokens[edges.left], tokens[edges.right])
    first = _components(count, edges.left[agree], edges.right[agree])
    clashing = _clashing_labels(first, tokens, matcher)
    if not len(clashing):
        return _households(first, edges, agree)
    split = _Split(edges, tokens, matcher=matcher, agree=agree, first=first, clashing=clashing)
    final = split.assemble(restrict=None)
    still = _clashing_labels(final, tokens, matcher)
    if len(still):
        final = split.assemble(restrict=still)
    return _households(final, edges, agree)


class _Split:
    """Steps 1 to 5 of the module docstring, for the records of the groups labelled `clashing` in
    `first` (the components of the agreeing edges)."""

    def __init__(
        self,
        edges: Edges,
        tokens: npt.NDArray[np.object_],
        *,
        matcher: NameMatcher,
        agree: npt.NDArray[np.bool_],
        first: npt.NDArray[np.int64],
        clashing: npt.NDArray[np.int64],
    ) -> None:
        count = len(tokens)
        in_clash = np.isin(first, clashing)
        self.count, self.edges, self.tokens, self.matcher = count, edges, tokens, matcher
        self.agree, self.in_clash = agree, in_clash
        # 1. Unclear and named records.
        self.unclear = in_clash & (pd.isna(tokens) | _ambiguous(first, tokens, matcher, in_clash))
        self.named = in_clash & ~self.unclear
        # 2. People: named records joined by agreeing edges between named records.
        self.between_named = agree & self.named[edges.left] & self.named[edges.right]
        self.people = _components(count, edges.left[self.between_named], edges.right[self.between_named])
        # 3. Unclear records beside the people they reach directly.
        self.joins = self._joins()
        # 4. Unclear records that reach nobody directly, nor were torn between people.
        torn = np.zeros(count, dtype=bool)
        torn[self.joins.loc[~self.joins["agreed"], "record"].to_numpy(dtype=np.int64)] = True
        reached = np.zeros(count, dtype=bool)
        reached[self.joins["record"].to_numpy(dtype=np.int64)] = True
        self.floating = self.unclear & ~reached & ~torn

    def _joins(self) -> pd.DataFrame:
        """record, person, agreed: each unclear record beside the people it joins.

        Each identifier an unclear record holds reaches some people; it is *decisive* when their names
        and the record's own all agree (a couple's address reaching both partners is not). The record
        joins the people its decisive emails reach, failing any those its decisive phones reach, when
        they agree with one another; reached by no decisive identifier, or by disagreeing ones, it is
        torn (``agreed`` False, beside every person it reaches)."""
        edges = self.edges
        ends = pd.concat(
            [
                pd.DataFrame({"record": edges.left, "other": edges.right, "code": edges.code}),
                pd.DataFrame({"record": edges.right, "other": edges.left, "code": edges.code}),
            ],
            ignore_index=True,
        )
        ends["email"] = np.concatenate([edges.is_email, edges.is_email])
        useful = (
            np.concatenate([self.agree, self.agree])
            & self.unclear[ends["record"].to_numpy()]
            & self.named[ends["other"].to_numpy()]
        )
        ends = ends[useful]
        reach = ends.assign(person=self.people[ends["other"].to_numpy()]).drop_duplicates(
            ["record", "code", "person"]
        )
        reach = reach.loc[:, ["record", "code", "email", "person"]]
        decisive = reach[~self._torn(reach, ["record", "code"])]
        by_email = decisive.groupby("record")["email"].transform("any")
        chosen = decisive[decisive["email"] | ~by_email].drop_duplicates(["record", "person"])
        joined = ~self._torn(chosen, ["record"])
        agreed = chosen.loc[joined, ["record", "person"]].assign(agreed=True)
        torn = reach[~reach["record"].isin(agreed["record"])].drop_duplicates(["record", "person"])
        result = pd.concat(
            [agreed, torn.loc[:, ["record", "person"]].assign(agreed=False)], ignore_index=True
        )
        return pd.DataFrame(
            {
                "record": result["record"].to_numpy(dtype=np.int64),
                "person": result["person"].to_numpy(dtype=np.int64),
                "agreed": result["agreed"].to_numpy(dtype=bool),
            }
        )

    def _torn(self, reach: pd.DataFrame, keys: list[str]) -> npt.NDArray[np.bool_]:
        """Per row of `reach` (record, person, ...): whether, within its group by `keys`, the people's
        names and the record's own name hold two that disagree."""
        names = pd.DataFrame(
            {"person": self.people[self.named], "token": self.tokens[self.named]}
        ).drop_duplicates()
        held = reach.loc[:, [*keys, "person"]].merge(names, on="person").loc[:, [*keys, "token"]]
        own = reach.loc[:, keys].drop_duplicates()
        own["token"] = self.tokens[own["record"].to_numpy(dtype=np.int64)]
        held = pd.concat([held, own.dropna()], ignore_index=True).drop_duplicates()
        pairs = held.merge(held, on=keys, suffixes=("_a", "_b"))
        pairs = pairs[pairs["token_a"] < pairs["token_b"]]
        ok = self.matcher.agree(
            pairs["token_a"].to_numpy(dtype=object), pairs["token_b"].to_numpy(dtype=object)
        )
        bad = pairs.loc[~ok, keys].drop_duplicates().assign(_torn=True)
        marked = reach.loc[:, keys].merge(bad, on=keys, how="left")
        return marked["_torn"].fillna(False).to_numpy(dtype=bool)

    def assemble(self, restrict: npt.NDArray[np.int64] | None) -> npt.NDArray[np.int64]:
        """Final clusters: untouched groups keep their agreeing edges; clashing groups keep their people,
        the joins that agreed and the floating records' agreeing edges. With `restrict` (5.), groups
        under those labels keep only people and records that joined exactly one person."""
        edges, count = self.edges, self.count
        keep = (self.agree & ~self.in_clash[edges.left]) | self.between_named
        ok = self.joins[self.joins["agreed"]]
        join_left = ok["record"].to_numpy(dtype=np.int64)
        first_of_person = pd.Series(np.arange(count)).groupby(self.people).min()
        join_right = first_of_person.reindex(ok["person"].to_numpy()).to_numpy(dtype=np.int64)
        attached = np.zeros(count, dtype=bool)
        attached[join_left] = True
        follows = self.floating[edges.left] & (self.floating[edges.right] | attached[edges.right])
        follows |= self.floating[edges.right] & attached[edges.left]
        drifting = self.agree & follows
        if restrict is not None:
            troubled = np.isin(_labels(count, edges, keep | drifting, join_left, join_right), restrict)
            several = ok.groupby("record")["person"].transform("size").to_numpy() > 1
            cut = several & troubled[join_left]
            join_left, join_right = join_left[~cut], join_right[~cut]
            drifting &= ~(troubled[edges.left] | troubled[edges.right])
        return _labels(count, edges, keep | drifting, join_left, join_right)


def _components(
    count: int, left: npt.NDArray[np.int64], right: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    graph = coo_array((np.ones(len(left), dtype=np.int8), (left, right)), shape=(count, count))
    labels: npt.NDArray[np.int64] = connected_components(graph, directed=False)[1].astype(np.int64)
    return labels


def _token_pairs(
    labels: npt.NDArray[np.int64], tokens: npt.NDArray[np.object_], mask: npt.NDArray[np.bool_]
) -> pd.DataFrame:
    """label, a, b: every pair of distinct tokens found together under one label (records in `mask`)."""
    present = mask & pd.notna(tokens)
    found = pd.DataFrame({"label": labels[present], "token": tokens[present]}).drop_duplicates()
    found = found[found.duplicated("label", keep=False)]
    pairs = found.merge(found, on="label", suffixes=("_a", "_b"))
    pairs = pairs[pairs["token_a"] != pairs["token_b"]]
    return pairs.rename(columns={"token_a": "a", "token_b": "b"}).reset_index(drop=True)


def _clashing_labels(
    labels: npt.NDArray[np.int64], tokens: npt.NDArray[np.object_], matcher: NameMatcher
) -> npt.NDArray[np.int64]:
    """Labels under which two names disagree."""
    pairs = _token_pairs(labels, tokens, np.ones(len(labels), dtype=bool))
    if pairs.empty:
        return np.empty(0, dtype=np.int64)
    agree = matcher.agree(pairs["a"].to_numpy(dtype=object), pairs["b"].to_numpy(dtype=object))
    return np.unique(pairs.loc[~agree, "label"].to_numpy(dtype=np.int64))


def _ambiguous(
    labels: npt.NDArray[np.int64],
    tokens: npt.NDArray[np.object_],
    matcher: NameMatcher,
    mask: npt.NDArray[np.bool_],
) -> npt.NDArray[np.bool_]:
    """Records whose name agrees with two names of its group that disagree with each other."""
    pairs = _token_pairs(labels, tokens, mask)
    pairs["agree"] = matcher.agree(pairs["a"].to_numpy(dtype=object), pairs["b"].to_numpy(dtype=object))
    partners = pairs.loc[pairs["agree"], ["label", "a", "b"]]
    trios = partners.merge(partners, on=["label", "a"], suffixes=("", "_other"))
    trios = trios[trios["b"] < trios["b_other"]]
    disagree = pairs.loc[~pairs["agree"], ["label", "a", "b"]].rename(columns={"a": "b", "b": "b_other"})
    torn = trios.merge(disagree, on=["label", "b", "b_other"]).loc[:, ["label", "a"]].drop_duplicates()
    present = np.flatnonzero(mask & pd.notna(tokens))
    records = pd.DataFrame({"position": present, "label": labels[present], "a": tokens[present]})
    hit = records.merge(torn, on=["label", "a"])["position"].to_numpy(dtype=np.int64)
    result = np.zeros(len(labels), dtype=bool)
    result[hit] = True
    return result


def _labels(
    count: int,
    edges: Edges,
    keep: npt.NDArray[np.bool_],
    extra_left: npt.NDArray[np.int64],
    extra_right: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    left = np.concatenate([edges.left[keep], extra_left])
    right = np.concatenate([edges.right[keep], extra_right])
    return _components(count, left, right)


def _households(labels: npt.NDArray[np.int64], edges: Edges, agree: npt.NDArray[np.bool_]) -> Households:
    apart = np.flatnonzero(labels[edges.left] != labels[edges.right])
    rules = np.where(agree[apart], UNCLEAR_WHOSE, NAMES_DIFFER).astype(object)
    return Households(labels=labels, refused=apart, rules=rules)
