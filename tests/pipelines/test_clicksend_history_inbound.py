"""Received messages that ClickSend may list twice (``/sms/inbound`` and, with ``direction: in``,
``/sms/history``; the vendor does not say) are one activity row each, on a first sync and after new
replies land incrementally: the activity is the one a sync leaves when history lists sent messages
only."""

from collections import Counter
from datetime import UTC, datetime

import sqlalchemy as sa

from connectors.emulator import running_emulator
from connectors.emulator.behaviours import Behaviours
from models.warehouse.db import open_warehouse
from models.warehouse.tables import ContactActivity, RawRecord
from pipelines.runner import run_sync
from tests.pipelines.conftest import settings_for

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def _sync_twice(url: str, behaviours: Behaviours) -> list[tuple[Counter[tuple[str, bool]], int]]:
    """After each of two syncs (a change between): (message_key, whether linked to a contact) of every
    received-message row, counted, and the raw history items received. (Contact ids are minted as
    records come, so two warehouses name one person differently.)"""
    seen = []
    with running_emulator(seed=11, people=120, now=NOW, behaviours=behaviours) as emu:
        settings = settings_for(emu, url)
        for round_ in range(2):
            if round_:
                emu.mutate(seed=3, updated=10, messages=40)
                for contact in list(emu.dataset.tables["clicksend/list_contact"].values())[:6]:
                    emu.sms_received(str(contact["phone_number"]), "Yes, call me tomorrow")
            assert run_sync(settings).success
            with open_warehouse(url).connect() as connection:
                rows = connection.execute(
                    sa.select(ContactActivity.message_key, ContactActivity.contact_id).where(
                        ContactActivity.summary.like("SMS received%")
                    )
                ).all()
                copies = connection.execute(
                    sa.select(sa.func.count()).where(
                        RawRecord.source == "clicksend",
                        RawRecord.source_id.like("history:%"),
                        RawRecord.payload["direction"].as_string() == "in",
                    )
                ).scalar_one()
            seen.append((Counter((str(key), contact is not None) for key, contact in rows), int(copies)))
    return seen


def test_each_received_message_is_one_activity_row_whichever_way_history_lists_them(
    warehouse_url: str, tmp_path: object
) -> None:
    plain = _sync_twice(f"sqlite:///{tmp_path}/plain.db", Behaviours())
    doubled = _sync_twice(warehouse_url, Behaviours(clicksend_history_inbound=True))
    for (expected, none), (found, copies) in zip(plain, doubled, strict=True):
        assert none == 0
        assert copies > 0, "history listed no received message: the case is not exercised"
        assert found == expected
        assert max(found.values()) == 1
    assert sum(doubled[1][0].values()) > sum(doubled[0][0].values()), "no reply landed incrementally"
