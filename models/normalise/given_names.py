"""First names as the household rule compares them: one comparable token per record, and which tokens
may name the same person.

Two records that share only a landline are one person when their first names agree, and two people when
they clearly do not. "Clearly" is the hard part: "Bob" and "Robert" agree, "J." agrees with "John",
"Élodie" with "elodie", and the Linkflow record written 伟 with the Zoho record written "Wei". So a name is
reduced to a token (accents and case folded, Chinese characters read as toneless pinyin, letters only,
words run together so "Mary Ann" and "Xiao Ming" compare as "maryann" and "xiaoming"), and two tokens
agree when they are equal, one begins the other ("J" and "John", "Chris" and "Christopher", "Mary" and
"Mary Ann"), one is a listed nickname of the other (or the initial of one: "A." and "Tony"), or they
differ by one slip of the keyboard: two neighbouring letters swapped or one letter more ("Jhon" and
"John", "Micheal" and "Michael", "Phillip" and "Philip"), for names of four letters or more. One letter
replaced by another is not a slip here: "Mary" and "Mark", "Jean" and "Joan" are different people.
Anything that cannot be read as a name (digits, punctuation) gives no token, and a missing token never
separates records.

The nickname pairs come from the `nicknames` package (a maintained list of English given names and their
diminutives, ~2,700 pairs), plus any pairs the user adds. Only direct pairs count, never two nicknames of
one name: the list is generous enough (Robert's include both Bob and Bill) that siblings would let "Bill"
agree with "Bob".
"""

import csv
import re
import unicodedata
from collections.abc import Iterable
from functools import cache
from importlib.resources import files
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_NOT_LETTER = re.compile(r"[^a-z]+")


def name_token(first_name: object) -> str | None:
    """The comparable token of one first name, or None when it holds no usable name."""
    if not isinstance(first_name, str):
        return None
    text = first_name.strip()
    if not text:
        return None
    if _HAN.search(text):
        text = _pinyin(text)
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").casefold()
    token = _NOT_LETTER.sub("", folded)
    return token or None


def _pinyin(text: str) -> str:
    """Chinese characters as toneless pinyin (伟 -> wei, 小明 -> xiaoming); other characters kept."""
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(text))


def name_tokens(first_names: pd.Series) -> pd.Series:
    """`name_token` of every value, computed once per distinct value (names repeat a great deal)."""
    codes, distinct = pd.factorize(first_names.astype(object), use_na_sentinel=True)
    tokens = np.array([name_token(value) for value in distinct] + [None], dtype=object)
    return pd.Series(tokens[codes], index=first_names.index, dtype=object)


class NameMatcher:
    """Which pairs of name tokens may belong to one person.

    nickname_pairs: (name, nickname) pairs beyond the built-in list, already in token form or not
        (they are tokenised here).
    """

    def __init__(self, nickname_pairs: Iterable[tuple[str, str]] = ()) -> None:
        extra = [(name_token(a), name_token(b)) for a, b in nickname_pairs]
        pairs = [*_builtin_pairs(), *((a, b) for a, b in extra if a and b and a != b)]
        frame = pd.DataFrame(pairs, columns=["a", "b"], dtype=object)
        both = pd.concat([frame, frame.rename(columns={"a": "b", "b": "a"})], ignore_index=True)
        self._related = set(zip(both["a"], both["b"], strict=True))
        # An initial stands for any form of the name: "A." agrees with "Tony" because Tony is Anthony.
        letters = both.assign(letter=both["b"].str[0]).groupby("a")["letter"].agg(frozenset)
        self._initials: dict[str, frozenset[str]] = {str(k): v for k, v in letters.items()}

    def agree(self, left: npt.NDArray[np.object_], right: npt.NDArray[np.object_]) -> npt.NDArray[np.bool_]:
        """Per position: True when the two tokens may name one person. A missing token agrees with
        anything; a token agrees with every token it begins (an initial, a short form)."""
        result = np.ones(len(left), dtype=bool)
        both = np.flatnonzero(pd.notna(left) & pd.notna(right))
        if not len(both):
            return result
        a = left[both].astype(str)
        b = right[both].astype(str)
        prefix = np.char.startswith(a, b) | np.char.startswith(b, a)
        undecided = np.flatnonzero(~prefix)
        related = np.zeros(len(a), dtype=bool)
        related[undecided] = np.fromiter(
            (
                (a[i], b[i]) in self._related or self._initial_of(a[i], b[i]) or _one_slip(a[i], b[i])
                for i in undecided
            ),
            dtype=bool,
            count=len(undecided),
        )
        result[both] = prefix | related
        return result

    def _initial_of(self, a: str, b: str) -> bool:
        """Whether one token is a lone initial of a nickname or full form of the other."""
        if len(a) == 1:
            return a in self._initials.get(b, frozenset())
        return len(b) == 1 and b in self._initials.get(a, frozenset())


#: The shortest name a slip is forgiven in: below it, one letter more is another name ("Jon", "Joan").
_SLIP_MIN_LENGTH = 4


def _one_slip(a: str, b: str) -> bool:
    """Whether `a` and `b` differ by two neighbouring letters swapped or one letter inserted."""
    if min(len(a), len(b)) < _SLIP_MIN_LENGTH:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    if len(long) - len(short) != 1:
        return False
    first = next((i for i in range(len(short)) if short[i] != long[i]), len(short))
    return short[first:] == long[first + 1 :]


@cache
def _builtin_pairs() -> tuple[tuple[str, str], ...]:
    """The `nicknames` package's (name, nickname) pairs, read from its data file."""
    text = files("nicknames").joinpath("names.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    return tuple(
        (row["name1"].casefold(), row["name2"].casefold())
        for row in rows
        if row.get("relationship") == "has_nickname" and row["name1"] != row["name2"]
    )


def read_nickname_file(path: Path) -> list[tuple[str, str]]:
    """Extra pairs from a CSV file of `name,nickname` lines (a header line and `#` comments allowed).

    Raises ValueError naming the file and line of the first line that is not two names."""
    pairs: list[tuple[str, str]] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            cells = [cell.strip() for cell in row]
            if not cells or not any(cells) or cells[0].startswith("#"):
                continue
            if cells[:2] == ["name", "nickname"]:
                continue
            if len(cells) != 2 or not name_token(cells[0]) or not name_token(cells[1]):
                raise ValueError(f"{path}:{number}: expected two names, name,nickname; found {row!r}")
            pairs.append((cells[0], cells[1]))
    return pairs
