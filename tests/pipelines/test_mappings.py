"""The mappings file end to end: a custom value set in one system reaches every mapped destination
through real syncs against the emulator, and the next sync writes nothing; a bad file stops the CLI
with one line per problem before anything is read or written."""

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.emulator import Emulator, running_emulator
from connectors.emulator.behaviours import Behaviours
from models.warehouse.db import open_warehouse
from models.warehouse.tables import Contact, ContactFieldLineage, ContactSource
from pipelines.check import run_check
from pipelines.export import export_table
from pipelines.runner import run_sync
from pipelines.show import show_contact, text_lines
from tests.pipelines.conftest import CLI, settings_for

README = Path(__file__).resolve().parents[2] / "README.md"
#: The README's sample mappings file: the one a user starts from is the one proven here.
MAPPINGS = README.read_text(encoding="utf-8").split("### Your own fields", 1)[1].split("```yaml\n", 1)[1]
MAPPINGS = MAPPINGS.split("```", 1)[0]
#: Where each mapped destination holds the plan, and the value it must hold for the golden "pro".
PLAN_AT: dict[str, tuple[tuple[str, ...], str]] = {
    "clickfunnels/contact": (("custom_attributes", "plan"), "pro"),
    "clicksend/list_contact": (("custom_1",), "pro"),
    "zoho_crm/contact": (("Customer_Plan",), "pro"),
    "zoho_bigin/contact": (("Customer_Plan",), "Pro"),
}


@pytest.fixture
def small_emulator() -> Iterator[Emulator]:
    with running_emulator(seed=23, people=40) as emu:
        yield emu


def _at(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = record
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _widest_contact(url: str) -> tuple[str, list[tuple[str, str]]]:
    """The golden contact with a Linkflow record linked to the most other mapped systems."""
    with open_warehouse(url).connect() as connection:
        rows = connection.execute(
            sa.select(
                ContactSource.contact_id, ContactSource.source, ContactSource.object, ContactSource.source_id
            )
        ).all()
    by_contact: dict[str, list[tuple[str, str]]] = {}
    for contact_id, source, obj, source_id in rows:
        by_contact.setdefault(str(contact_id), []).append((f"{source}/{obj}", str(source_id)))
    with_linkflow = {c: r for c, r in by_contact.items() if any(t == "linkflow/contact" for t, _ in r)}
    return max(with_linkflow.items(), key=lambda item: (len({t for t, _ in item[1]} & set(PLAN_AT)), item[0]))


def _record(emu: Emulator, table: str, source_id: str) -> dict[str, Any]:
    records = emu.dataset.tables[table]
    key = next(k for k in records if str(k) == source_id)
    return dict(records[key])


def test_a_value_set_in_one_system_reaches_every_mapped_destination_and_then_nothing_moves(
    small_emulator: Emulator, warehouse_url: str, tmp_path: Path
) -> None:
    emu = small_emulator
    mappings = tmp_path / "mappings.yaml"
    mappings.write_text(MAPPINGS, encoding="utf-8")
    settings = settings_for(emu, warehouse_url, contact_sync_mappings=str(mappings))
    first = run_sync(settings)
    assert first.success, first.failures

    contact_id, records = _widest_contact(warehouse_url)
    targets = [(t, i) for t, i in records if t in PLAN_AT]
    assert targets, "the dataset links no Linkflow record to another mapped system"
    linkflow_id = next(i for t, i in records if t == "linkflow/contact")
    emu.edit("linkflow/contact", int(linkflow_id), {"props": {"attr3": "Pro", "attr2": "10,000"}})
    emu.clear_writes()

    second = run_sync(settings)
    assert second.success, second.failures
    with open_warehouse(warehouse_url).connect() as connection:
        custom = connection.execute(
            sa.select(Contact.custom).where(Contact.contact_id == contact_id)
        ).scalar_one()
        lineage = connection.execute(
            sa.select(ContactFieldLineage.value, ContactFieldLineage.source).where(
                ContactFieldLineage.contact_id == contact_id, ContactFieldLineage.field == "plan"
            )
        ).one()
    assert custom == {"plan": "pro", "salary": 10000}
    assert tuple(lineage) == ("pro", "linkflow")
    shown = text_lines(show_contact(open_warehouse(warehouse_url), settings, contact_id), settings)
    assert any(line.split() == ["plan", "(mapped)", "pro"] for line in shown), shown
    assert any(line.split()[:3] == ["plan", "pro", "linkflow/contact"] for line in shown), shown
    written = 0
    opt_out = {
        str(k) for k, v in emu.dataset.clicksend_lists.items() if "opt" in str(v.get("list_name")).lower()
    }
    for table, source_id in targets:
        record = _record(emu, table, source_id)
        if table == "clicksend/list_contact" and str(record.get("list_id")) in opt_out:
            continue
        path, expected = PLAN_AT[table]
        assert _at(record, path) == expected, (table, source_id, record)
        written += 1
        if table == "clicksend/list_contact":
            assert record["custom_2"] == "10000"
    assert written
    for table, source_id in records:
        if table == "zoho_crm/lead":  # write: never
            assert _record(emu, table, source_id)["Customer_Plan"] is None

    emu.clear_writes()
    third = run_sync(settings)
    assert third.success, third.failures
    assert emu.writes() == [], "the sync after the custom values went out wrote again (an echo)"

    # A changed file rebuilds the golden contacts by itself (no migration, no flag): the contact's
    # records did not change, yet its values follow the new file.
    mappings.write_text(MAPPINGS.split("  - name: salary", maxsplit=1)[0], encoding="utf-8")
    fourth = run_sync(settings)
    assert fourth.success, fourth.failures
    assert emu.writes() == []
    with open_warehouse(warehouse_url).connect() as connection:
        custom = connection.execute(
            sa.select(Contact.custom).where(Contact.contact_id == contact_id)
        ).scalar_one()
    assert custom == {"plan": "pro"}
    with open_warehouse(warehouse_url).connect() as connection:  # no values: SQL NULL, not JSON null
        empty = connection.execute(sa.select(sa.func.count()).where(Contact.custom.is_(None))).scalar_one()
    assert empty > 0

    out = tmp_path / "contacts.jsonl"
    export_table(open_warehouse(warehouse_url), "contacts", "jsonl", str(out))
    exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert next(row for row in exported if row["contact_id"] == contact_id)["custom"] == custom


def test_a_bad_mappings_file_stops_the_sync_with_a_line_per_problem_and_reads_nothing(
    small_emulator: Emulator, sqlite_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "mappings.yaml"
    bad.write_text(
        "fields:\n"
        "  - {name: Plan, type: text, sources: {clicksend/list_contact: custom_1}}\n"
        "  - {name: tier, type: money, sources: {hubspot/contact: tier}}\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        **small_emulator.env(),
        "CONTACT_SYNC_DATABASE_URL": sqlite_url,
        "CONTACT_SYNC_MAPPINGS": str(bad),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    small_emulator.reset_counters()
    done = subprocess.run([CLI, "sync"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    known = (
        "clickfunnels/contact, clicksend/list_contact, linkflow/contact, zoho_crm/lead, zoho_crm/contact, "
        "zoho_bigin/contact"
    )
    prefix = f"contact-sync: {bad}: field"
    assert lines == [
        f"{prefix} Plan: name 'Plan' must be lower_snake_case, at most 48 characters",
        f"{prefix} tier: type must be one of text, number, boolean, date, datetime, choice; got 'money'",
        f"{prefix} tier: unknown source object 'hubspot/contact' (known: {known})",
    ]
    assert small_emulator.total_requests() == 0
    assert small_emulator.writes() == []


def test_check_names_each_mapped_path_the_account_lacks(small_emulator: Emulator, tmp_path: Path) -> None:
    """`check` compares the file's paths with the Zoho and Linkflow field lists the emulator serves."""
    mappings = tmp_path / "mappings.yaml"
    mappings.write_text(
        "fields:\n"
        "  - name: plan\n"
        "    type: choice\n"
        "    choices: [free, pro, enterprise]\n"
        "    sources:\n"
        "      zoho_crm/lead: Plan_Tier\n"
        "      zoho_crm/contact: Customer_Plan\n"
        "      linkflow/contact: props.attr9\n"
        "  - {name: salary, type: boolean, sources: {linkflow/contact: props.attr2}}\n",
        encoding="utf-8",
    )
    settings = settings_for(small_emulator, "sqlite://", contact_sync_mappings=str(mappings))
    report = run_check(settings, sources=("zoho_crm", "linkflow"))
    assert not report.would_sync
    problems = [row.advice for check in report.sources for row in check.problems()]
    assert problems == [
        f"{mappings}: field plan: zoho_crm/lead: the account has no field 'Plan_Tier'",
        f"{mappings}: field plan: linkflow/contact: the account has no field 'props.attr9'",
        f"{mappings}: field salary: linkflow/contact: 'props.attr2' is a number field; "
        "it cannot hold a boolean",
    ]
    assert small_emulator.writes() == []


def test_a_path_the_account_lacks_stops_that_object_at_sync_start_and_nothing_is_written(
    small_emulator: Emulator, sqlite_url: str, tmp_path: Path
) -> None:
    mappings = tmp_path / "mappings.yaml"
    sources = "{zoho_crm/lead: Tier__c, zoho_crm/contact: Lead_Source}"
    mappings.write_text(f"fields: [{{name: tier, type: text, sources: {sources}}}]\n", encoding="utf-8")
    settings = settings_for(small_emulator, sqlite_url, contact_sync_mappings=str(mappings))
    report = run_sync(settings, sources=("zoho_crm",))
    assert not report.success
    assert any(
        f"{mappings}: field tier: zoho_crm/lead: the account has no field 'Tier__c'" in line
        for line in report.failures
    ), report.failures
    assert small_emulator.writes() == []


@pytest.mark.parametrize("props", ["merge", "replace"])
def test_a_linkflow_prop_written_keeps_the_contacts_other_props_however_the_api_applies_it(
    props: str, sqlite_url: str, tmp_path: Path
) -> None:
    # Linkflow does not say whether `props` in a PUT merges or replaces the contact's whole object:
    # reverse sync sends it whole, as last read, so either way only the planned key changes. (What is
    # sent does not depend on the warehouse: SQLite only.)
    warehouse_url = sqlite_url
    with running_emulator(seed=23, people=40, behaviours=Behaviours(linkflow_props=props)) as emu:  # type: ignore[arg-type]
        mappings = tmp_path / "mappings.yaml"
        mappings.write_text(MAPPINGS, encoding="utf-8")
        settings = settings_for(emu, warehouse_url, contact_sync_mappings=str(mappings))
        assert run_sync(settings).success
        _, records = _widest_contact(warehouse_url)
        linkflow_id = next(i for t, i in records if t == "linkflow/contact")
        zoho_id = next((i for t, i in records if t == "zoho_crm/contact"), None)
        if zoho_id is None:
            pytest.skip("the dataset links no Zoho CRM contact to a Linkflow one")
        emu.edit("linkflow/contact", int(linkflow_id), {"props": {"attr1": "已婚", "attr2": 7500}})
        emu.edit("zoho_crm/contact", zoho_id, {"Customer_Plan": "Enterprise"})
        emu.clear_writes()
        assert run_sync(settings).success
        written = _record(emu, "linkflow/contact", linkflow_id)
        assert written["props"] == {"attr1": "已婚", "attr2": 7500, "attr3": "enterprise"}, written
        emu.clear_writes()
        assert run_sync(settings).success
        assert not emu.writes(), emu.writes()  # read back as it was sent: nothing echoes
