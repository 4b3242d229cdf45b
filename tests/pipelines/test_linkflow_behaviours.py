"""Linkflow end to end under each answer to the vendor's open questions: the same warehouse as the default.

Each scenario runs a first sync, lets the world change (new, edited and deleted contacts, more new
events than a page holds) and runs an incremental sync, with small pages so that every mechanism is
exercised on little data. The warehouse it leaves is compared with the one the emulator's default
behaviour leaves: both emulators generate the same data (one fixed ``now``) and change it the same
way, but the changes are stamped with the clock of the moment and the zone renders times its own way,
so ``dateCreated``, ``lastUpdated`` and ``eventDate`` are left out of the comparison; everything else
must match row for row.
"""

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.emulator import running_emulator
from connectors.emulator.behaviours import Behaviours
from connectors.linkflow import LinkflowClient
from models.identity.activity import build_activity
from models.identity.canonical import build_canonical
from models.identity.phases import CanonicalConfig
from models.warehouse.db import open_warehouse
from models.warehouse.store import RawStore
from models.warehouse.tables import ContactActivity, RawRecord
from pipelines.clients import clients_for
from pipelines.extract import run_extract
from pipelines.streams import STREAMS
from tests.pipelines.conftest import settings_for

LINKFLOW = tuple(s for s in STREAMS if s.source == "linkflow")
TIMES = ("dateCreated", "lastUpdated", "eventDate")
REGIONS = {"linkflow": "CN"}
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
Rows = dict[tuple[str, str], tuple[dict[str, Any], bool]]


def sync_twice(url: str, behaviours: Behaviours) -> set[str]:
    """A first and an incremental sync around a change; returns the ids of visitors' events."""
    with running_emulator(seed=5, people=150, now=NOW, behaviours=behaviours) as emu:
        settings = settings_for(emu, url)
        store = RawStore(open_warehouse(url))
        for round_ in range(2):
            if round_:
                emu.mutate(seed=9, new=6, updated=25, deleted=3, events=30)
            with clients_for(settings, ("linkflow",)) as clients:
                assert clients.linkflow is not None
                clients.linkflow = LinkflowClient(
                    clients.linkflow.http, event_page_size=6, id_cap=20, id_page_size=10
                )
                for stream in LINKFLOW:
                    run_extract(stream, clients, store)
        contacts = emu.dataset.tables["linkflow/contact"]
        return {
            str(i) for i, e in emu.dataset.tables["linkflow/event"].items() if e["contactId"] not in contacts
        }


def warehouse(url: str) -> Rows:
    """(object, id) -> (payload without its times, live or not)."""
    query = sa.select(RawRecord.object, RawRecord.source_id, RawRecord.payload, RawRecord.deleted_at).where(
        RawRecord.source == "linkflow"
    )
    with open_warehouse(url).connect() as connection:
        return {
            (obj, source_id): ({k: v for k, v in payload.items() if k not in TIMES}, deleted is None)
            for obj, source_id, payload, deleted in connection.execute(query)
        }


def linked_events(url: str) -> dict[str, bool]:
    engine = open_warehouse(url)
    build_canonical(engine, CanonicalConfig(regions=REGIONS))
    build_activity(engine, REGIONS)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(ContactActivity.activity_id, ContactActivity.contact_id).where(
                ContactActivity.source == "linkflow"
            )
        )
        return {activity_id: contact_id is not None for activity_id, contact_id in rows}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Rows, set[str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('reference') / 'warehouse.db'}"
    visitors = sync_twice(url, Behaviours())
    return url, warehouse(url), visitors


def test_the_reference_run_holds_every_kind_of_row(reference: tuple[str, Rows, set[str]]) -> None:
    _, rows, visitors = reference
    objects = {obj for obj, _ in rows}
    assert objects == {"contact", "event"}
    assert visitors <= {source_id for obj, source_id in rows if obj == "event"}
    assert visitors, "the data must hold visitors' events for the tail comparison to mean anything"


@pytest.mark.parametrize("order", ["ascending", "descending", "newest_tail"])
def test_every_events_order_ends_with_the_reference_warehouse(
    reference: tuple[str, Rows, set[str]], tmp_path: Path, caplog: pytest.LogCaptureFixture, order: str
) -> None:
    _, expected, visitors = reference
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    caplog.set_level(logging.INFO, logger="connectors.linkflow")
    sync_twice(url, Behaviours(linkflow_events_order=order))
    said = [r.getMessage() for r in caplog.records if "/events/lite answers" in r.getMessage()]
    assert len(said) == 2  # one line per sync: each one's first page is full
    assert all(f"({order})" in line for line in said)
    got = warehouse(url)
    missing = set(expected) - set(got)
    assert set(got) <= set(expected)
    assert {key: got[key] for key in got} == {key: expected[key] for key in got}
    if order == "newest_tail":
        # Only visitors' events that sat below a tail page: no endpoint lists a visitor's contact.
        assert {source_id for obj, source_id in missing if obj == "event"} <= visitors
        assert {obj for obj, _ in missing} <= {"event"}
    else:
        assert missing == set()


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_a_zone_other_than_the_guess_ends_with_the_reference_warehouse(
    reference: tuple[str, Rows, set[str]], tmp_path: Path, caplog: pytest.LogCaptureFixture, zone: str
) -> None:
    _, expected, _ = reference
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    sync_twice(url, Behaviours(linkflow_zone=zone))
    assert "reads as already past in Asia/Shanghai time" in caplog.text  # the zone was played
    assert warehouse(url) == expected


def test_transient_bulk_omissions_retire_no_contact_and_unlink_no_event(
    reference: tuple[str, Rows, set[str]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reference_url, expected, _ = reference
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    sync_twice(url, Behaviours(linkflow_bulk_omission_rate=0.25))
    assert "came on a second ask, 0 confirmed gone" in caplog.text  # omissions were played
    assert warehouse(url) == expected
    links = linked_events(url)
    assert links == linked_events(reference_url)
    assert sum(links.values()) > 0
