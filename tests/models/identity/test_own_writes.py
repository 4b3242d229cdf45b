"""Survivorship's view of our own writes: a modification we made does not make a record "newer"."""

from datetime import UTC, datetime, timedelta

import pandas as pd

from models.identity.own_writes import discount_own_writes, echoed_fields, judge_own_writes

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


# ---------------------------------------------------------------- what the APIs tell, not the clock


def current(source: str, obj: str, *rows: tuple[str, datetime, dict[str, object]]) -> pd.DataFrame:
    """Records as the warehouse holds them now: id, modification time and payload."""
    return pd.DataFrame(
        {
            "source": source,
            "object": obj,
            "source_id": [r[0] for r in rows],
            "modified_at": pd.to_datetime([r[1] for r in rows], utc=True),
            "payload": pd.Series([r[2] for r in rows], dtype=object),
        }
    )


def stamped(
    source: str, obj: str, *rows: tuple[str, datetime | None, datetime, dict[str, object]], **extra: object
) -> pd.DataFrame:
    """Writes whose answers told the record's modification time (and ``extra`` per write)."""
    frame = pd.DataFrame(
        {
            "source": source,
            "object": obj,
            "source_id": [r[0] for r in rows],
            "planned_modified_at": pd.to_datetime([r[1] for r in rows], utc=True),
            "written_at": pd.to_datetime([r[2] for r in rows], utc=True),
            "result_modified_at": pd.to_datetime([r[2] for r in rows], utc=True),
            "sent": pd.Series([r[3] for r in rows], dtype=object),
        }
    )
    for name, value in extra.items():
        frame[name] = pd.Series([value] * len(frame), dtype=object)
    return frame


SECOND = timedelta(seconds=1)


def test_the_answers_stamp_decides_not_a_window_of_time() -> None:
    # a: still shows our write's stamp, read long after: ours. b: modified one second after our write,
    # a field we did not write: someone else's edit, in full. new: created by us, untouched.
    frame = current(
        "clicksend",
        "list_contact",
        ("a", at(10), {"address_city": "Springfield"}),
        ("b", at(10) + SECOND, {"address_city": "Springfield", "custom_1": "theirs"}),
        ("new", at(12), {"first_name": "Ann"}),
    )
    ours = stamped(
        "clicksend",
        "list_contact",
        ("a", at(1), at(10), {"address_city": "Springfield"}),
        ("b", at(1), at(10), {"address_city": "Springfield"}),
        ("new", None, at(12), {"first_name": "Ann"}),
    )
    out = discount_own_writes(frame, ours, slack=timedelta(hours=1))
    assert out.iloc[0] == pd.Timestamp(at(1))
    assert out.iloc[1] == pd.Timestamp(at(10) + SECOND)
    assert pd.isna(out.iloc[2])


def test_chains_of_stamped_writes_unwind_and_stop_at_a_person() -> None:
    frame = current("clickfunnels", "contact", ("a", at(20), {}), ("b", at(20), {}))
    ours = pd.concat(
        [
            # a: the second write was planned on the first one's stamp; b: someone edited between.
            stamped("clickfunnels", "contact", ("a", at(10), at(20), {}), ("a", at(3), at(10), {})),
            stamped("clickfunnels", "contact", ("b", at(15), at(20), {}), ("b", at(3), at(10), {})),
        ],
        ignore_index=True,
    )
    out = discount_own_writes(frame, ours)
    assert list(out) == [pd.Timestamp(at(3)), pd.Timestamp(at(15))]


def test_linkflow_versions_tell_ours_from_a_later_edit_within_the_same_second() -> None:
    frame = current(
        "linkflow",
        "contact",
        ("ours", at(10), {"ver": 4, "city": "Hangzhou"}),
        ("theirs", at(10), {"ver": 5, "city": "Hangzhou"}),  # same second, one version on
        ("late-read", at(10) + SECOND, {"ver": 4, "city": "Hangzhou"}),  # a stamp off, the version ours
    )
    ours = stamped(
        "linkflow",
        "contact",
        ("ours", at(1), at(10), {"city": "Hangzhou"}),
        ("theirs", at(1), at(10), {"city": "Hangzhou"}),
        ("late-read", at(1), at(10), {"city": "Hangzhou"}),
        result_version=4,
    )
    out = discount_own_writes(frame, ours)
    assert list(out) == [pd.Timestamp(at(1)), pd.Timestamp(at(10)), pd.Timestamp(at(1))]


def test_a_zoho_record_last_modified_by_another_user_is_their_edit() -> None:
    us, colleague = {"id": "u1", "name": "API"}, {"id": "u2", "name": "Sales"}
    frame = current(
        "zoho_crm",
        "lead",
        ("ours", at(10), {"Modified_By": us, "City": "Austin"}),
        ("theirs", at(10), {"Modified_By": colleague, "City": "Austin"}),  # within our write's second
    )
    ours = stamped(
        "zoho_crm",
        "lead",
        ("ours", at(1), at(10), {"City": "Austin"}),
        ("theirs", at(1), at(10), {"City": "Austin"}),
        written_by="u1",
    )
    out = discount_own_writes(frame, ours)
    assert list(out) == [pd.Timestamp(at(1)), pd.Timestamp(at(10))]


def test_a_value_we_did_not_send_is_not_ours_and_a_form_we_did_is() -> None:
    frame = current(
        "linkflow",
        "contact",
        ("changed", at(10), {"city": "Ningbo", "email": "ann@example.com"}),
        ("same", at(10), {"mobilePhone": "13774202819", "email": "Ann@Example.com", "country": "China"}),
    )
    ours = stamped(
        "linkflow",
        "contact",
        ("changed", at(1), at(10), {"city": "Hangzhou", "email": "ann@example.com"}),
        (
            "same",
            at(1),
            at(10),
            {"mobilePhone": "+8613774202819", "email": "ann@example.com", "country": "CN"},
        ),
    )
    out = discount_own_writes(frame, ours)
    assert list(out) == [pd.Timestamp(at(10)), pd.Timestamp(at(1))]


def test_without_a_stamp_the_window_stays_and_the_values_overrule_it() -> None:
    """A write whose answer was lost has no stamp: the clock window traces it, unless the values we
    sent are no longer there."""
    frame = current(
        "clickfunnels",
        "contact",
        ("kept", at(10) + SECOND, {"phone_number": "+14155550100"}),
        ("edited", at(10) + SECOND, {"phone_number": "+14155550199"}),
    )
    ours = stamped(
        "clickfunnels",
        "contact",
        ("kept", at(1), at(10), {"phone_number": "+14155550100"}),
        ("edited", at(1), at(10), {"phone_number": "+14155550100"}),
    ).assign(result_modified_at=pd.NaT)
    out = discount_own_writes(frame, ours)
    assert list(out) == [pd.Timestamp(at(1)), pd.Timestamp(at(10) + SECOND)]


def test_the_values_we_wrote_and_nobody_changed_are_echoes() -> None:
    """Per record, the surviving fields holding what we sent (compared as they read); a field changed
    since, a value we did not send and the values an undo put back are the record's own."""
    frame = current(
        "linkflow",
        "contact",
        ("a", at(10), {"name": "Ann Lee", "country": "China", "city": "Ningbo", "title": "CEO"}),
        ("b", at(30), {"mobilePhone": "13774202819", "email": "bo@example.com"}),
        ("undone", at(40), {"city": "Hangzhou"}),
        ("never", at(5), {"city": "Hangzhou"}),
    )
    ours = pd.concat(
        [
            stamped(
                "linkflow",
                "contact",
                ("a", at(1), at(10), {"name": "Ann Lee", "country": "CN", "city": "Hangzhou"}),
                ("b", at(1), at(10), {"mobilePhone": "+8613774202819", "email": "other@example.com"}),
            ),
            stamped("linkflow", "contact", ("undone", at(1), at(40), {"city": "Hangzhou"}), restores=True),
        ],
        ignore_index=True,
    )
    echoes = echoed_fields(frame, ours)
    assert list(echoes) == [
        frozenset({"first_name", "last_name", "country"}),
        frozenset({"phone"}),  # b was edited since (at 30), but the phone is still ours
        frozenset(),
        frozenset(),
    ]


def test_records_judged_in_slices_are_judged_as_all_at_once() -> None:
    """A rebuild judges each slice of records while it holds their payloads, with the writes to that
    slice alone (`judge_own_writes`): every record (by version, modifier or value) gets the answer it
    gets among all of them, aligned with its own row."""
    us, colleague = {"id": "u1", "name": "API"}, {"id": "u2", "name": "Sales"}
    frame = pd.concat(
        [
            current(
                "linkflow",
                "contact",
                ("ours", at(10), {"ver": 4, "city": "Hangzhou", "note": "x", "tags": ["a"]}),
                ("theirs", at(10), {"ver": 5, "city": "Hangzhou", "address": {"street": "1 Rd"}}),
                ("edited", at(10), {"city": "Ningbo", "email": "ann@example.com", "title": "CEO"}),
            ),
            current(
                "zoho_crm",
                "lead",
                ("zoho", at(10), {"Modified_By": colleague, "City": "Austin", "Description": "long"}),
                ("mine", at(10), {"Modified_By": us, "City": "Austin", "Email": "bo@example.com"}),
            ),
        ],
        ignore_index=True,
    )
    ours = pd.concat(
        [
            stamped(
                "linkflow",
                "contact",
                ("ours", at(1), at(10), {"city": "Hangzhou"}),
                ("theirs", at(1), at(10), {"city": "Hangzhou"}),
                ("edited", at(1), at(10), {"city": "Hangzhou", "email": "ann@example.com"}),
                result_version=4,
            ),
            stamped(
                "zoho_crm",
                "lead",
                ("zoho", at(1), at(10), {"City": "Austin"}),
                ("mine", at(1), at(10), {"City": "Austin", "Email": "bo@example.com"}),
                written_by="u1",
            ),
        ],
        ignore_index=True,
    )
    whole = judge_own_writes(frame, ours)
    key = ["source", "object", "source_id"]
    parts = []
    for rows in ([0, 3], [1], [2, 4]):
        part = frame.iloc[rows]
        parts.append(judge_own_writes(part, ours.merge(part.loc[:, key], on=key)))
    pd.testing.assert_frame_equal(pd.concat(parts).sort_index(), whole)
    assert whole["person_modified_at"].tolist() == discount_own_writes(frame, ours).tolist()
    assert whole["echoes"].tolist() == echoed_fields(frame, ours).tolist()
    assert whole["person_modified_at"].lt(frame["modified_at"]).tolist() == [True, False, False, False, True]
