"""From the raw emails and phones of source records to what identity resolution and survivorship take.

This is the glue between `models.normalise.fields` (which finds the values in payloads),
`models.normalise.identifiers` (which makes them comparable) and `models.identity.linking` /
`models.identity.survivorship`: one long frame of contact points, one row per value a record carries,
normalised in bulk; then the usable ones as identifiers, and each record's primary email and phone (its first
usable value in layout order: Email before Secondary_Email, Phone before Mobile, ...).
"""

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.normalise.identifiers import normalise_emails, normalise_phones

POINT_COLUMNS = ("record_key", "kind", "field", "position", "raw", "region")


def normalise_contact_points(
    points: pd.DataFrame, *, alias_domains: frozenset[str] = frozenset()
) -> pd.DataFrame:
    """points: POINT_COLUMNS (region: ISO alpha-2 to read this record's phones, the record's own country
    if it has one, else its source's region; ignored for emails). Returns the same rows and index with
    value (normalised, or None) and reason (why unusable, or None) added."""
    result = points.loc[:, list(POINT_COLUMNS)].copy()
    result["value"] = pd.Series(None, index=points.index, dtype=object)
    result["reason"] = pd.Series(None, index=points.index, dtype=object)
    emails = (points["kind"] == "email").to_numpy()
    if emails.any():
        found = normalise_emails(points.loc[emails, "raw"], alias_domains=alias_domains)
        result.loc[emails, "value"] = found["email"].to_numpy(dtype=object)
        result.loc[emails, "reason"] = found["reason"].to_numpy(dtype=object)
    phones = (points["kind"] == "phone").to_numpy()
    if phones.any():
        found = normalise_phones(points.loc[phones, ["raw", "region"]])
        result.loc[phones, "value"] = found["phone"].to_numpy(dtype=object)
        result.loc[phones, "reason"] = found["reason"].to_numpy(dtype=object)
    return result


def identifiers_of(normalised: pd.DataFrame) -> pd.DataFrame:
    """record_key, kind, value of the usable contact points, each pair once."""
    usable = normalised.loc[normalised["value"].notna(), ["record_key", "kind", "value"]]
    return usable.drop_duplicates().reset_index(drop=True)


def primaries(normalised: pd.DataFrame, junk: npt.NDArray[np.bool_] | None = None) -> pd.DataFrame:
    """record_key, email, phone: each record's first usable email and phone (None when it has none);
    only records with at least one usable value appear, sorted by record_key.

    ``junk`` (per row of ``normalised``): values that link no one (a blocklisted email, a placeholder
    phone); a record's junk value is its primary only when it holds no other of that kind."""
    present = normalised["value"].notna().to_numpy()
    usable = normalised[present]
    keys = usable["record_key"].to_numpy(dtype=np.int64)
    is_phone = (usable["kind"] == "phone").to_numpy(dtype=bool)
    last = np.zeros(len(usable), dtype=bool) if junk is None else np.asarray(junk, dtype=bool)[present]
    order = np.lexsort((usable["position"].to_numpy(), last, is_phone, keys))
    first = np.ones(len(order), dtype=bool)
    first[1:] = (keys[order][1:] != keys[order][:-1]) | (is_phone[order][1:] != is_phone[order][:-1])
    chosen = order[first]
    records = np.unique(keys)
    slot = np.searchsorted(records, keys[chosen])
    values = usable["value"].to_numpy(dtype=object)[chosen]
    phone_rows = is_phone[chosen]
    email = np.full(len(records), None, dtype=object)
    phone = np.full(len(records), None, dtype=object)
    email[slot[~phone_rows]] = values[~phone_rows]
    phone[slot[phone_rows]] = values[phone_rows]
    return pd.DataFrame(
        {
            "record_key": records,
            "email": pd.Series(email, dtype=object),
            "phone": pd.Series(phone, dtype=object),
        }
    )
