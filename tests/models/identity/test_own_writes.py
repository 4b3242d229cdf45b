"""Survivorship's view of our own writes: a modification we made does not make a record "newer"."""

from datetime import UTC, datetime, timedelta

import pandas as pd

from models.identity.own_writes import discount_own_writes

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def records(*rows: tuple[str, datetime | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": "zoho_crm",
            "object": "lead",
            "source_id": [r[0] for r in rows],
            "modified_at": pd.to_datetime([r[1] for r in rows], utc=True),
        }
    )


def writes(*rows: tuple[str, datetime | None, datetime]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": "zoho_crm",
            "object": "lead",
            "source_id": [r[0] for r in rows],
            "planned_modified_at": pd.to_datetime([r[1] for r in rows], utc=True),
            "written_at": pd.to_datetime([r[2] for r in rows], utc=True),
        }
    )


def test_a_modification_by_our_write_counts_as_the_time_before_it() -> None:
    frame = records(("a", at(10.01)), ("b", at(30)), ("c", at(5)))
    # a: we wrote at 10 what was last modified at 1, and it now shows our write's stamp.
    # b: we wrote at 10, and someone edited at 30: the edit counts in full.
    # c: no write of ours.
    ours = writes(("a", at(1), at(10)), ("b", at(2), at(10)))
    out = discount_own_writes(frame, ours)
    assert list(out) == [pd.Timestamp(at(1)), pd.Timestamp(at(30)), pd.Timestamp(at(5))]


def test_chains_of_our_writes_and_creates_unwind_to_a_person_or_to_never() -> None:
    frame = records(("a", at(20)), ("new", at(7)))
    ours = writes(
        ("a", at(10), at(20)),  # the second write planned on the first one's stamp
        ("a", at(3), at(10)),
        ("new", None, at(7)),  # a record we created: only we ever touched it
    )
    out = discount_own_writes(frame, ours)
    assert out.iloc[0] == pd.Timestamp(at(3))
    assert pd.isna(out.iloc[1])


def test_the_slack_absorbs_a_destination_clock_running_ahead() -> None:
    frame = records(("a", at(10) + timedelta(seconds=40)), ("b", at(10) + timedelta(seconds=90)))
    ours = writes(("a", at(1), at(10)), ("b", at(1), at(10)))
    out = discount_own_writes(frame, ours, slack=timedelta(seconds=60))
    assert list(out) == [pd.Timestamp(at(1)), pd.Timestamp(at(10) + timedelta(seconds=90))]
