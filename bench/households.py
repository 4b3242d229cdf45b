"""Household benchmark: how often linking puts two people into one golden contact, and what reverse sync
would then move between them.

Builds the emulator's data with households (``generate_dataset(..., households=True)``: people sharing a
landline or a couple's email, nicknames, initials and missing first names, Chinese names in Linkflow and
pinyin elsewhere), runs the canonical step and plans reverse sync, then compares the warehouse with the
generator's truth (the person behind every record, which the APIs never serve):

* pairwise precision and recall: pairs of records in one golden contact against pairs of one person;
* golden contacts holding more than one true person, and people split over several contacts;
* reverse-sync plan rows that would fill a value taken from one person's record into another person's
  record (each planned row joined to the lineage of the golden field it sends, both ends to the truth);
* the canonical step's time.

Two paths to the same tables. ``sync`` (the default up to 3,000 people) serves the data from the emulator
in this process and runs the real ``full_sync`` job with reverse sync as a dry run (a real run sends exactly
the rows a dry run plans); the canonical time is that Dagster step's. ``models`` (the default above) writes
the records straight into the warehouse through the raw store, as extract would, then calls the canonical
step's own function (a full rebuild) and reverse sync's planning of every destination, skipping only HTTP.

``CONTACT_SYNC_HOUSEHOLD_SPLIT`` is passed through to the settings (``--split on|off``, or ``both`` to
compare) and the mode each run used is printed; a build without that setting links as it always did.

    python bench/households.py                          # 2,000 people through a real sync
    python bench/households.py --people 400000          # about 1M records, models path
    python bench/households.py --split both --json out.json
"""

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from connectors.emulator import Dataset, Emulator, generate_dataset
from connectors.emulator.dataset import CONTACT_TABLES, ZOHO_TABLES, Household
from connectors.emulator.households import HOUSEHOLD_SHARE
from connectors.emulator.records import CLICKSEND_OPT_OUT_LIST_ID
from models.identity.canonical_incremental import build_canonical_incremental
from models.identity.phases import CONTACT_OBJECTS, extract_contact_records
from models.normalise.raw_keys import identify
from models.push.field_map import FIELD_MAPS, FULL_NAME, PushConfig
from models.warehouse.db import open_warehouse
from models.warehouse.store import RawRow, RawStore, StreamKey
from models.warehouse.tables import (
    ContactFieldLineage,
    ContactIdentifier,
    ContactSource,
    PushLedger,
    RawRecord,
    SuppressedIdentifier,
)
from pipelines.settings import Settings, load_settings

SPLIT_VARIABLE = "CONTACT_SYNC_HOUSEHOLD_SPLIT"
SPLIT_SETTING = SPLIT_VARIABLE.lower()
#: The data's clock: fixed, so a seed gives the same records on any day.
NOW = datetime(2026, 11, 1, tzinfo=UTC)
#: Above this many people the default path is ``models`` (a real sync of 3,000 takes about a minute).
SYNC_PATH_MAX_PEOPLE = 3_000
GOALS = {"precision": 0.995, "recall": 0.995, "cross_person_fills": 0}


@dataclass
class Figures:
    """What one run measured against the truth."""

    path: str
    split: str
    people: int
    records: int
    contacts: int
    precision: float
    recall: float
    mixed_contacts: int
    """Golden contacts holding records of more than one true person."""
    mixed_within_household: int
    """Of those, the ones whose people all belong to one household."""
    split_people: int
    """True people whose records ended in more than one golden contact."""
    planned_fills: int
    """Plan rows that would be sent (invalid ones left out)."""
    cross_person_fills: int
    """Planned rows sending a value taken from another true person's record."""
    cross_person_by_golden_field: dict[str, int] = field(default_factory=dict)
    cross_person_by_field: dict[str, int] = field(default_factory=dict)
    """The same per destination field (``zoho_crm/lead.First_Name``); in the JSON output only."""
    refused_rows: int = 0
    """Plan rows refused before sending (``invalid``), with any reason."""
    undecidable_records: int = 0
    """Records without a first name that hold a household's shared identifier: names cannot say
    which member they belong to."""
    ideal_precision: float = 1.0
    ideal_recall: float = 1.0
    """What linking on shared identifiers reaches when every link between records with two first
    names is judged rightly and a missing first name never keeps records apart: the ceiling of a
    rule that judges links by names."""
    canonical_seconds: float = 0.0
    planned: bool = True
    """False when reverse sync was not planned (``--no-plan``): no fill figures."""

    def lines(self) -> list[str]:
        mark = {True: "met", False: "NOT met"}
        return [
            f"path {self.path}, {self.split}",
            f"  records {self.records:,} of {self.people:,} people -> golden contacts {self.contacts:,}",
            f"  pairwise precision {self.precision:.4f} (goal >= {GOALS['precision']}: "
            f"{mark[self.precision >= GOALS['precision']]})",
            f"  pairwise recall    {self.recall:.4f} (goal >= {GOALS['recall']}: "
            f"{mark[self.recall >= GOALS['recall']]})",
            f"  golden contacts holding more than one true person: {self.mixed_contacts:,} "
            f"({self.mixed_within_household:,} of them one household's people)",
            f"  people split over more than one golden contact: {self.split_people:,}",
            f"  ideal name rule on this data: precision {self.ideal_precision:.4f}, recall "
            f"{self.ideal_recall:.4f} ({self.undecidable_records:,} records hold a shared identifier "
            "and no first name)",
            "  reverse-sync plan: not made (--no-plan)"
            if not self.planned
            else f"  reverse-sync plan: {self.planned_fills:,} fills, {self.refused_rows:,} refused; "
            f"{self.cross_person_fills:,} fill a value from another person's record "
            f"(goal 0: {mark[self.cross_person_fills == 0]})"
            + (
                f"\n    by golden field: {self.cross_person_by_golden_field}"
                if self.cross_person_fills
                else ""
            ),
            f"  canonical step {self.canonical_seconds:.2f} s",
        ]


# ------------------------------------------------------------------------------------------ the data


def build_dataset(people: int, seed: int, household_share: float = HOUSEHOLD_SHARE) -> Dataset:
    """The emulator's data with households, on a fixed clock."""
    return generate_dataset(seed, people, NOW, households=True, household_share=household_share)


@dataclass(frozen=True)
class Truth:
    """Who is who, kept apart from the records so a large dataset's tables can be let go.

    records: source, object, source_id, person of every contact record (activity rows left out).
    households: the generator's households (kind, members, shared identifier).
    """

    people: int
    records: pd.DataFrame
    households: dict[int, Household]

    @classmethod
    def of(cls, dataset: Dataset) -> "Truth":
        objects = {tuple(table.split("/")) for table in CONTACT_TABLES}
        rows = [(s, o, i, p) for (s, o, i), p in dataset.truth.items() if (s, o) in objects]
        frame = pd.DataFrame(rows, columns=["source", "object", "source_id", "person"])
        return cls(dataset.people, frame, dict(dataset.households))

    def household_of(self) -> dict[int, int]:
        """person -> household id, for the people who live in one."""
        return {pid: house.hid for house in self.households.values() for pid in house.members}


# ------------------------------------------------------------------------------------------ the modes


def split_known() -> bool:
    """Whether this build has the household setting (before the rule lands it does not)."""
    return SPLIT_SETTING in Settings.model_fields


@contextmanager
def split_mode(value: str | None) -> Iterator[str]:
    """Set ``CONTACT_SYNC_HOUSEHOLD_SPLIT`` for the block (None leaves the environment as it is) and
    say which mode the run uses."""
    before = os.environ.get(SPLIT_VARIABLE)
    if value is not None:
        os.environ[SPLIT_VARIABLE] = value
    try:
        current = os.environ.get(SPLIT_VARIABLE)
        if split_known():
            effective = getattr(load_settings(), SPLIT_SETTING)
            yield f"{SPLIT_VARIABLE}={effective}"
        else:
            given = f"{SPLIT_VARIABLE}={current} passed through, but no" if current else "no"
            yield f"{given} household setting in this build: today's linking"
    finally:
        if before is None:
            os.environ.pop(SPLIT_VARIABLE, None)
        else:
            os.environ[SPLIT_VARIABLE] = before


# ------------------------------------------------------------------------------------------ the paths


def run_sync_path(dataset: Dataset, database_url: str) -> float:
    """The real job against the emulator serving ``dataset``; returns the canonical step's seconds."""
    import dagster as dg

    from pipelines.runner import run_sync

    with Emulator(dataset=dataset, maton_rps=None) as emulator:
        settings = load_settings(
            contact_sync_database_url=database_url,
            contact_sync_push="dry-run",
            contact_sync_maton_rps=1000.0,
            contact_sync_linkflow_rps=1000.0,
            **{name.lower(): value for name, value in emulator.env().items()},
        )
        with dg.DagsterInstance.ephemeral() as instance:
            report = run_sync(settings, instance=instance)
            if not report.success:
                raise SystemExit(f"the sync failed: {'; '.join(report.failures)}")
            return _step_seconds(instance, report.run_id, "canonical__contacts")


def _step_seconds(instance: Any, run_id: str, step: str) -> float:
    """Start to success of one step of the run (the canonical contacts asset's is
    ``canonical__contacts``; its checks run as steps of their own)."""
    import dagster as dg

    starts: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        key = entry.step_key or ""
        if event is None or key != step:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[key] = entry.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS and key in starts:
            return float(entry.timestamp - starts[key])
    raise SystemExit(f"no {step} step in run {run_id}")


def load_raw(dataset: Dataset, database_url: str, page: int = 5_000) -> int:
    """Every contact record into ``raw_records`` through the raw store, as extract stores them."""
    store = RawStore(open_warehouse(database_url))
    count = 0
    for table in CONTACT_TABLES:
        source, _, obj = table.partition("/")
        rows = []
        for record in dataset.tables[table].values():
            if record.get("anonymous") is not None:
                continue  # ClickFunnels hides visitors from every list
            payload = {k: v for k, v in record.items() if not k.startswith("_")}
            if table in ZOHO_TABLES and payload.get("$approval_state") != "approved":
                continue
            row = identify(source, obj, None, payload)
            assert isinstance(row, RawRow), row
            rows.append(row)
        for start in range(0, len(rows), page):
            store.write_page(StreamKey(source, obj), rows[start : start + page], move_cursor=False)
        count += len(rows)
    return count


def run_models_path(database_url: str, *, plan: bool = True) -> float:
    """The canonical step's function over the loaded warehouse, then (with ``plan``) reverse sync
    planned as a dry run for every destination; returns the canonical step's seconds."""
    from pipelines.canonical import canonical_config, phone_regions
    from pipelines.resources import WarehouseResource
    from pipelines.reverse_sync import WRITABLE_STREAMS, push_destination

    settings = load_settings(contact_sync_database_url=database_url)
    warehouse = WarehouseResource(database_url=database_url)
    regions = phone_regions(settings, warehouse)
    engine = warehouse.engine()
    started = time.perf_counter()
    build_canonical_incremental(
        engine, canonical_config(settings, regions), run_id="bench-households", full=True
    )
    seconds = time.perf_counter() - started
    if not plan:
        return seconds
    config = PushConfig(
        regions=regions,
        opt_out_lists=frozenset({str(CLICKSEND_OPT_OUT_LIST_ID)}),
        overwrite=settings.push_overwrite(),
    )
    for stream in WRITABLE_STREAMS:
        push_destination(stream, engine, None, config, run_id="bench-households", dry_run=True)
    return seconds


# ------------------------------------------------------------------------------------------ measuring


def pairwise(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Pairwise precision and recall of a clustering (labels per record) against the true labels."""
    joint = pd.DataFrame({"p": predicted, "t": truth})

    def pairs(sizes: pd.Series) -> int:
        values = sizes.to_numpy(dtype=np.int64)
        return int((values * (values - 1) // 2).sum())

    together = pairs(joint.groupby(["p", "t"]).size())
    predicted_pairs, true_pairs = pairs(joint.groupby("p").size()), pairs(joint.groupby("t").size())
    return (
        together / predicted_pairs if predicted_pairs else 1.0,
        together / true_pairs if true_pairs else 1.0,
    )


def _canonical_of(destination: str, obj: str) -> dict[str, str]:
    """Destination field -> the golden field it is written from (``full_name``: first and last)."""
    return {spec.field: spec.canonical for spec in FIELD_MAPS[(destination, obj)].fields}


def measure(database_url: str, truth: Truth) -> dict[str, Any]:
    """The figures of the warehouse against the truth (all but path, split and timing)."""
    engine = open_warehouse(database_url)
    key = ["source", "object", "source_id"]
    with engine.connect() as connection:
        links = pd.DataFrame(
            connection.execute(
                sa.select(
                    ContactSource.source,
                    ContactSource.object,
                    ContactSource.source_id,
                    ContactSource.contact_id,
                )
            ).all(),
            columns=[*key, "contact_id"],
        )
        lineage = pd.DataFrame(
            connection.execute(
                sa.select(
                    ContactFieldLineage.contact_id,
                    ContactFieldLineage.field,
                    ContactFieldLineage.source,
                    ContactFieldLineage.object,
                    ContactFieldLineage.source_id,
                )
            ).all(),
            columns=["contact_id", "canonical", *key],
        )
        ledger = pd.DataFrame(
            connection.execute(
                sa.select(
                    PushLedger.destination,
                    PushLedger.object,
                    PushLedger.record_id,
                    PushLedger.contact_id,
                    PushLedger.field,
                    PushLedger.status,
                    PushLedger.reason,
                )
            ).all(),
            columns=["destination", "object", "record_id", "contact_id", "field", "status", "reason"],
        )
    known = links.merge(truth.records, on=key, how="inner").dropna(subset=["contact_id"])
    precision, recall = pairwise(
        known["contact_id"].to_numpy(dtype=object), known["person"].to_numpy(dtype=np.int64)
    )
    people_per_contact = known.groupby("contact_id")["person"].nunique()
    mixed = people_per_contact[people_per_contact > 1].index
    homes = truth.household_of()
    within = 0
    for _, persons in known[known["contact_id"].isin(mixed)].groupby("contact_id")["person"]:
        houses = {homes.get(int(p)) for p in persons.unique()}
        within += len(houses) == 1 and None not in houses
    contacts_per_person = known.groupby("person")["contact_id"].nunique()

    ideal_precision, ideal_recall, undecidable = _ideal(engine, truth)
    sendable = ledger[ledger["status"] != "invalid"]
    cross_by_golden, cross_by_field = _cross_person(sendable, lineage, truth.records)
    return {
        "people": truth.people,
        "records": len(known),
        "contacts": int(known["contact_id"].nunique()),
        "precision": precision,
        "recall": recall,
        "mixed_contacts": len(mixed),
        "mixed_within_household": int(within),
        "split_people": int((contacts_per_person > 1).sum()),
        "planned_fills": len(sendable),
        "cross_person_fills": sum(cross_by_field.values()),
        "cross_person_by_golden_field": cross_by_golden,
        "cross_person_by_field": cross_by_field,
        "refused_rows": int((ledger["status"] == "invalid").sum()),
        "undecidable_records": undecidable,
        "ideal_precision": ideal_precision,
        "ideal_recall": ideal_recall,
    }


def _ideal(engine: sa.Engine, truth: Truth) -> tuple[float, float, int]:
    """Precision and recall of the ideal name rule (see ``Figures.ideal_precision``) over the usable,
    unsuppressed identifiers the warehouse holds, with first names as the product reads them; and the
    records it cannot place."""
    objects = sa.or_(*(sa.and_(RawRecord.source == s, RawRecord.object == o) for s, o in CONTACT_OBJECTS))
    with engine.connect() as connection:
        raw = pd.DataFrame(
            connection.execute(
                sa.select(
                    RawRecord.id, RawRecord.source, RawRecord.object, RawRecord.source_id, RawRecord.payload
                )
                .where(objects, RawRecord.deleted_at.is_(None))
                .order_by(RawRecord.id)
            ).all(),
            columns=["record_key", "source", "object", "source_id", "payload"],
        )
        held = pd.DataFrame(
            connection.execute(
                sa.select(
                    ContactIdentifier.raw_record_id, ContactIdentifier.kind, ContactIdentifier.value
                ).where(ContactIdentifier.value.is_not(None))
            ).all(),
            columns=["record_key", "kind", "value"],
        ).drop_duplicates()
        suppressed = pd.DataFrame(
            connection.execute(sa.select(SuppressedIdentifier.kind, SuppressedIdentifier.value)).all(),
            columns=["kind", "value"],
        )
    records, _, _ = extract_contact_records(raw, {"linkflow": "CN"})
    records = records.merge(truth.records, on=["source", "object", "source_id"], how="inner")
    named = records.set_index("record_key")["first_name"].notna()
    person = records.set_index("record_key")["person"]
    held = held[held["record_key"].isin(person.index)]
    held = held.merge(suppressed.assign(blocked=True), on=["kind", "value"], how="left")
    held = held[held["blocked"].isna()].drop(columns="blocked")
    shared = {house.shared for house in truth.households.values()}
    on_shared = held[(held["kind"] + ":" + held["value"]).isin(shared)]["record_key"].unique()
    undecidable = int((~named.reindex(on_shared).fillna(True)).sum())

    pairs = held.merge(held, on=["kind", "value"], suffixes=("_a", "_b"))
    pairs = pairs[pairs["record_key_a"] < pairs["record_key_b"]]
    a, b = pairs["record_key_a"].to_numpy(), pairs["record_key_b"].to_numpy()
    same = person.reindex(a).to_numpy() == person.reindex(b).to_numpy()
    unnamed = ~named.reindex(a).to_numpy(dtype=bool) | ~named.reindex(b).to_numpy(dtype=bool)
    keep = same | unnamed
    keys = person.index.to_numpy(dtype=np.int64)
    order = np.argsort(keys)
    rows_a = order[np.searchsorted(keys, a[keep], sorter=order)]
    rows_b = order[np.searchsorted(keys, b[keep], sorter=order)]
    graph = coo_array((np.ones(len(rows_a), dtype=np.int8), (rows_a, rows_b)), shape=(len(keys), len(keys)))
    _, labels = connected_components(graph, directed=False)
    precision, recall = pairwise(labels, person.to_numpy(dtype=np.int64))
    return precision, recall, undecidable


def _cross_person(
    rows: pd.DataFrame, lineage: pd.DataFrame, truth: pd.DataFrame
) -> tuple[dict[str, int], dict[str, int]]:
    """Plan rows carrying a value whose golden field came from a record of another true person than
    the record it goes to: counted per golden field and per destination field."""
    if rows.empty:
        return {}, {}
    rows = rows.reset_index(drop=True).assign(row=np.arange(len(rows)))
    parts = []
    for (destination, obj), group in rows.groupby(["destination", "object"]):
        golden = group["field"].map(_canonical_of(str(destination), str(obj)))
        parts.append(group.assign(golden=golden))
    plan = pd.concat(parts, ignore_index=True)
    # A full name is made of two golden fields: it crosses when either came from someone else.
    plan["canonical"] = plan["golden"].map(
        lambda name: ("first_name", "last_name") if name == FULL_NAME else (name,)
    )
    plan = plan.explode("canonical")
    by_person = truth.set_index(["source", "object", "source_id"])["person"]
    plan["to_person"] = by_person.reindex(
        pd.MultiIndex.from_arrays([plan["destination"], plan["object"], plan["record_id"].astype(str)])
    ).to_numpy()
    origin = lineage.assign(
        from_person=by_person.reindex(
            pd.MultiIndex.from_frame(lineage[["source", "object", "source_id"]])
        ).to_numpy()
    )
    plan = plan.merge(
        origin[["contact_id", "canonical", "from_person"]], on=["contact_id", "canonical"], how="left"
    )
    crossing = plan[
        plan["to_person"].notna() & plan["from_person"].notna() & (plan["to_person"] != plan["from_person"])
    ].drop_duplicates("row")
    by_golden = crossing.groupby("golden").size()
    by_field = crossing.groupby(
        crossing["destination"] + "/" + crossing["object"] + "." + crossing["field"]
    ).size()
    return (
        {str(k): int(v) for k, v in by_golden.sort_index().items()},
        {str(k): int(v) for k, v in by_field.sort_index().items()},
    )


# ------------------------------------------------------------------------------------------ main


def copy_database(source: Path, target: Path) -> None:
    """A copy of a SQLite warehouse, WAL included (the backup API reads it through SQLite)."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def run_once(
    source: Dataset | Path, truth: Truth, split_label: str, workdir: Path, *, plan: bool = True
) -> Figures:
    """One run: a real sync serving ``source`` (a dataset), or the models path over a copy of
    ``source`` (a warehouse the records were loaded into)."""
    database = workdir / f"warehouse-{len(list(workdir.iterdir()))}.db"
    database_url = f"sqlite:///{database}"
    if isinstance(source, Dataset):
        path, seconds = "sync", run_sync_path(source, database_url)
    else:
        copy_database(source, database)
        path, seconds = "models", run_models_path(database_url, plan=plan)
    figures = measure(database_url, truth)
    return Figures(path=path, split=split_label, canonical_seconds=seconds, planned=plan, **figures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--people", type=int, default=2_000, help="people to generate (about 2.3 records each)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--household-share",
        type=float,
        default=HOUSEHOLD_SHARE,
        help=f"share of people living in a household (default {HOUSEHOLD_SHARE})",
    )
    parser.add_argument(
        "--path",
        choices=("auto", "sync", "models"),
        default="auto",
        help=f"sync: a real sync against the emulator; models: straight into the warehouse (auto: sync up to "
        f"{SYNC_PATH_MAX_PEOPLE:,} people)",
    )
    parser.add_argument(
        "--split",
        choices=("env", "on", "off", "both"),
        default="env",
        help=f"{SPLIT_VARIABLE} for the run: as the environment has it, on, off, or both one after the other",
    )
    parser.add_argument(
        "--no-plan",
        action="store_true",
        help="models path only: skip planning reverse sync (for timing the canonical step at large N)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    path = args.path if args.path != "auto" else ("sync" if args.people <= SYNC_PATH_MAX_PEOPLE else "models")
    if args.no_plan and path == "sync":
        parser.error("--no-plan needs the models path (a real sync always plans reverse sync)")

    started = time.perf_counter()
    dataset = build_dataset(args.people, args.seed, args.household_share)
    kinds: dict[str, int] = {}
    for house in dataset.households.values():
        name = f"{house.kind} x{len(house.members)}"
        kinds[name] = kinds.get(name, 0) + 1
    in_homes = sum(len(house.members) for house in dataset.households.values())
    print(
        f"generated {args.people:,} people (seed {args.seed}) in {time.perf_counter() - started:.1f} s: "
        f"{in_homes:,} in {len(dataset.households):,} households {dict(sorted(kinds.items()))}"
    )
    if args.split == "both" and not split_known():
        print(f"{SPLIT_VARIABLE} is not a setting of this build: one run, today's linking")
    choices: dict[str, list[str | None]] = {
        "env": [None],
        "on": ["on"],
        "off": ["off"],
        "both": ["off", "on"],
    }
    modes = choices[args.split]
    if not split_known():
        modes = modes[:1]
    results = []
    truth = Truth.of(dataset)
    with tempfile.TemporaryDirectory(prefix="bench-households-") as workdir:
        source: Dataset | Path = dataset
        if path == "models":
            source = Path(workdir) / "loaded.db"
            started = time.perf_counter()
            loaded = load_raw(dataset, f"sqlite:///{source}")
            print(f"loaded {loaded:,} records into a warehouse in {time.perf_counter() - started:.1f} s")
            # Only the truth is needed from here on: the records' memory is not the step's.
            del dataset
        for value in modes:
            with split_mode(value) as label:
                print(f"running: {path} path, {label} ...", flush=True)
                figures = run_once(source, truth, label, Path(workdir), plan=not args.no_plan)
            results.append(figures)
            for line in figures.lines():
                print(line, flush=True)
    if len(results) == 2:
        off, on = results
        print(
            f"canonical step with the rule / without: {on.canonical_seconds / off.canonical_seconds:.2f}x "
            f"(goal <= 1.3x at 1M records); precision {off.precision:.4f} -> {on.precision:.4f}, "
            f"recall {off.recall:.4f} -> {on.recall:.4f}, cross-person fills "
            f"{off.cross_person_fills:,} -> {on.cross_person_fills:,}"
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
