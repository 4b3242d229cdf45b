"""Benchmark of the mappings file's cost in the canonical step: reading and converting mapped values
from payloads, then choosing them per contact (recency for two fields, a source priority for one).

    python bench/mappings.py --n 200000

Prints seconds and records per second for each phase; not part of the test suite.
"""

import argparse
import random
import time

import pandas as pd

from models.identity.custom_fields import custom_columns, survive_custom
from models.mappings import parse_mappings

MAPPINGS = parse_mappings(
    """
fields:
  - {name: plan, type: choice, choices: [free, pro, enterprise], sources: {linkflow/contact: props.attr3}}
  - {name: salary, type: number, survivorship: [linkflow], sources: {linkflow/contact: props.attr2}}
  - {name: status, type: text, sources: {linkflow/contact: props.attr1}}
""",
    "bench",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="records (two per contact)")
    n = parser.parse_args().n
    rng = random.Random(1)
    payloads = pd.Series(
        [
            {
                "props": {
                    "attr1": rng.choice(["单身", "已婚", ""]),
                    "attr2": 500 * rng.randrange(60),
                    "attr3": rng.choice(["Free", "Pro", "Enterprise", "unknown"]),
                }
            }
            for _ in range(n)
        ]
    )
    started = time.perf_counter()
    columns, reasons = custom_columns("linkflow", "contact", payloads, MAPPINGS)
    read = time.perf_counter() - started
    records = pd.DataFrame(
        {
            "record_key": range(n),
            "contact_id": [f"c_{i // 2:012d}" for i in range(n)],
            "source": "linkflow",
            "object": "contact",
            "source_id": [str(i) for i in range(n)],
            "modified_at": pd.to_datetime(
                [1.7e9 + rng.randrange(10**7) for _ in range(n)], unit="s", utc=True
            ),
        }
    )
    records = pd.concat([records, columns], axis=1)
    started = time.perf_counter()
    golden = survive_custom(records, MAPPINGS)
    chosen = time.perf_counter() - started
    print(
        f"read and convert: {n:,} records x 3 fields in {read:.2f}s ({n / read:,.0f} records/s), "
        f"{len(reasons):,} values skipped"
    )
    print(
        f"survivorship: {len(golden.contacts):,} contacts in {chosen:.2f}s ({n / chosen:,.0f} records/s), "
        f"{len(golden.lineage):,} lineage rows"
    )


if __name__ == "__main__":
    main()
