"""Benchmark of the canonical step: field extraction, normalisation, identity resolution, survivorship.

Generates N source records over the six source objects with a known duplicate structure, runs the
canonical step over all of them as the pipeline does (payload columns in, golden contacts out), and
prints records per second, peak memory, and pairwise precision and recall against the truth. Then it
changes 1% of the records (reformatted and new contact points, records glued to another person, records
losing their contact points, new and deleted records) and times the incremental run, checking that it
agrees with a full re-run.

The records and their truth come from `synthetic_people.py` beside this file: records share a usable
identifier exactly when they belong to the same person, so each person's records are one true cluster.

    python bench/canonical.py --n 1000000                  # household splitting on, as shipped
    python bench/canonical.py --n 1000000 --households off # the linking rule without it, to compare
"""

import argparse
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import numpy as np
import pandas as pd
from synthetic_people import SOURCES, prepare

from models.identity.contact_ids import ContactIdFactory
from models.identity.linking import IdentityConfig
from models.identity.resolution import FrameIdentityStore, resolve, resolve_incremental
from models.identity.survivorship import survive
from models.normalise.contact_points import identifiers_of, normalise_contact_points, primaries
from models.normalise.fields import extract_frame


@dataclass
class Canonical:
    records: pd.DataFrame
    identifiers: pd.DataFrame
    assignment: pd.DataFrame
    golden: pd.DataFrame
    lineage: pd.DataFrame
    suppressed: pd.DataFrame
    quarantined: int


def extract_and_normalise(payloads: dict[int, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Source records (RECORD_COLUMNS + fields) and normalised contact points of these records."""
    records, points = [], []
    for index, columns in payloads.items():
        name, obj, _, default_region = SOURCES[index]
        mine = columns.index.to_numpy()
        extracted = extract_frame(name, obj, columns)
        frame = extracted.records
        region = frame["country_hint"].fillna(default_region)
        cp = extracted.contact_points.rename(columns={"row": "record_key"})
        cp["region"] = region.reindex(cp["record_key"]).to_numpy(dtype=object)
        points.append(cp)
        frame = frame.reset_index(drop=True).assign(
            record_key=mine, source=name, object=obj, source_id=mine.astype(str)
        )
        records.append(frame)
    all_records = pd.concat(records, ignore_index=True)
    normalised = normalise_contact_points(pd.concat(points, ignore_index=True))
    return all_records, normalised


def canonical_step(
    keys: np.ndarray, payloads: dict[int, pd.DataFrame], config: IdentityConfig, timings: dict[str, float]
) -> Canonical:
    start = time.perf_counter()
    records, normalised = extract_and_normalise(payloads)
    timings["extract + normalise"] = time.perf_counter() - start
    start = time.perf_counter()
    identifiers = identifiers_of(normalised)
    empty = pd.DataFrame({"record_key": pd.Series(dtype=np.int64), "contact_id": pd.Series(dtype=object)})
    names = records.loc[:, ["record_key", "first_name"]] if config.household_split else None
    resolution = resolve(keys, identifiers, empty, config=config, id_factory=ContactIdFactory(), names=names)
    timings["resolve"] = time.perf_counter() - start
    start = time.perf_counter()
    unusable = int(normalised["value"].isna().sum())
    records = _with_primaries(records, normalised)
    del normalised
    records = records.merge(resolution.assignment, on="record_key")
    golden = survive(records)
    timings["survive"] = time.perf_counter() - start
    return Canonical(
        records,
        identifiers,
        resolution.assignment,
        golden.contacts,
        golden.lineage,
        resolution.suppressed,
        unusable,
    )


def _with_primaries(records: pd.DataFrame, normalised: pd.DataFrame) -> pd.DataFrame:
    """The records with each one's primary email and phone, as survivorship reads them."""
    return records.merge(primaries(normalised), on="record_key", how="left")


def pairwise(predicted: pd.Series, truth: pd.Series) -> tuple[float, float]:
    """Pairwise precision and recall of a clustering against the truth (same record index)."""
    joint = pd.DataFrame({"p": predicted.to_numpy(), "t": truth.reindex(predicted.index).to_numpy()})

    def pairs(sizes: pd.Series) -> int:
        values = sizes.to_numpy(dtype=np.int64)
        return int((values * (values - 1) // 2).sum())

    together = pairs(joint.groupby(["p", "t"]).size())
    predicted_pairs, true_pairs = pairs(joint.groupby("p").size()), pairs(joint.groupby("t").size())
    precision = together / predicted_pairs if predicted_pairs else 1.0
    recall = together / true_pairs if true_pairs else 1.0
    return precision, recall


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = fn()
    print(f"  {label:<34} {time.perf_counter() - start:7.2f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="source records to generate")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--changed", type=float, default=0.01, help="fraction of records changed")
    parser.add_argument("--households", choices=("on", "off"), default="on", help="household splitting")
    args = parser.parse_args()

    # The generator runs in a child process, so this process holds only what the canonical step would
    # hold in the pipeline (its input columns, as read from the warehouse) and its peak RSS is the step's.
    print(f"generating {args.n:,} records in a child process ...")
    with ProcessPoolExecutor(1, mp_context=get_context("fork")) as pool:
        prepared = pool.submit(prepare, args.n, args.seed, args.changed).result()
    print(f"  generated in {prepared.seconds:.1f} s; peak RSS holding the input {rss_mib():.0f} MiB")
    config = IdentityConfig(household_split=args.households == "on")
    print(f"household splitting {args.households}")

    timings: dict[str, float] = {}
    start = time.perf_counter()
    result = canonical_step(prepared.keys, prepared.payloads, config, timings)
    elapsed = time.perf_counter() - start
    for label, seconds in timings.items():
        print(f"  {label:<34} {seconds:7.2f} s")
    precision, recall = pairwise(result.assignment.set_index("record_key")["contact_id"], prepared.truth)
    print(
        f"canonical step: {elapsed:.2f} s, {len(prepared.keys) / elapsed:,.0f} records/s, "
        f"peak RSS {rss_mib():.0f} MiB"
    )
    print(
        f"  golden contacts {len(result.golden):,}, true clusters {prepared.truth.nunique():,}, "
        f"lineage rows {len(result.lineage):,}, unusable contact points {result.quarantined:,}"
    )
    print(f"  suppressed identifiers: {result.suppressed['rule'].value_counts().to_dict()}")
    print(f"  pairwise precision {precision:.6f}  recall {recall:.6f}")

    names = result.records.loc[:, ["record_key", "first_name"]]
    store = timed(
        "build in-memory store (not timed)",
        lambda: FrameIdentityStore(result.identifiers, result.assignment, names),
    )
    changed, deleted = prepared.changed, prepared.deleted
    print(f"incremental: {len(changed):,} changed or added, {len(deleted):,} deleted")
    latest = result.assignment["contact_id"].max()
    start = time.perf_counter()
    records, normalised = extract_and_normalise(prepared.changed_payloads)
    now = identifiers_of(normalised)
    step = time.perf_counter()
    changed_names = records.loc[:, ["record_key", "first_name"]]
    resolution = resolve_incremental(
        now,
        changed,
        deleted,
        store=store,
        config=config,
        id_factory=ContactIdFactory.after(latest),
        changed_names=changed_names,
    )
    resolved = time.perf_counter()
    touched = resolution.assignment["contact_id"]
    # Stands in for selecting the records of the affected contacts from the warehouse.
    scope = resolution.assignment["record_key"]
    kept = result.records[
        result.records["record_key"].isin(scope) & ~result.records["record_key"].isin(changed)
    ]
    pool_records = pd.concat(
        [kept.drop(columns=["contact_id"]), _with_primaries(records, normalised)], ignore_index=True
    )
    survived = survive(pool_records.merge(resolution.assignment, on="record_key")).contacts
    done = time.perf_counter()
    print(f"  extract + normalise changed        {step - start:7.2f} s")
    in_scope = len(resolution.assignment)
    print(f"  resolve_incremental                {resolved - step:7.2f} s  ({in_scope:,} records in scope)")
    print(f"  survive affected contacts          {done - resolved:7.2f} s  ({touched.nunique():,} contacts)")
    kinds = resolution.merges["kind"].value_counts()
    print(
        f"incremental total: {done - start:.2f} s, merges {kinds.get('merge', 0)}, "
        f"splits {kinds.get('split', 0)}, new ids {len(resolution.new_contact_ids)}, "
        f"retired {len(resolution.retired_contact_ids)}, "
        f"golden rows rewritten {len(survived):,}"
    )

    after = store.after(resolution, now, changed, deleted, changed_names)
    all_keys = np.union1d(np.setdiff1d(prepared.keys, deleted), changed)
    identifiers = pd.concat(
        [result.identifiers[~result.identifiers["record_key"].isin(np.union1d(changed, deleted))], now]
    )
    full = timed(
        "full re-resolve to compare",
        lambda: resolve(
            all_keys,
            identifiers,
            result.assignment,
            config=config,
            id_factory=ContactIdFactory.after(latest),
            names=pd.concat([names[~names["record_key"].isin(np.union1d(changed, deleted))], changed_names]),
        ),
    )
    same = after.assignment.reset_index(drop=True).equals(full.assignment.reset_index(drop=True))
    same_merges = resolution.merges.reset_index(drop=True).equals(full.merges.reset_index(drop=True))
    precision, recall = pairwise(after.assignment.set_index("record_key")["contact_id"], prepared.truth_after)
    print(f"  incremental == full: assignment {same}, merges {same_merges}")
    print(f"  after changes: pairwise precision {precision:.6f}  recall {recall:.6f}")
    print(f"peak RSS at the end {rss_mib():.0f} MiB")
    if not (same and same_merges):
        sys.exit(1)


if __name__ == "__main__":
    main()
