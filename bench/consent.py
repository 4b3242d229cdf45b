"""Benchmark of golden consent: each record's opt-out statement read from its payload, then the rule.

Generates N records over the five systems that state consent (about 4% opted out, two records per
contact), runs `models.identity.consent.golden_consent` as the canonical step does, and prints the
time and how many contacts came out opted out per channel.

    python bench/consent.py --n 1000000
"""

import argparse
import time
from typing import Any

import numpy as np
import pandas as pd

from models.identity.consent import golden_consent

_SOURCES = np.array(["clickfunnels", "clicksend", "linkflow", "zoho_crm", "zoho_bigin"], dtype=object)


def _payload(source: str, opted_out: bool) -> dict[str, Any]:
    if source == "clickfunnels":
        return {"unsubscribed_at": "2026-01-01T00:00:00.000Z" if opted_out else None}
    if source == "clicksend":
        return {"list_name": "Opt-Out List" if opted_out else "Customers", "date_added": 1767225600}
    if source.startswith("zoho"):
        return {"Email_Opt_Out": opted_out, "Modified_Time": "2026-01-01T00:00:00+00:00"}
    return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="source records")
    n = parser.parse_args().n
    rng = np.random.default_rng(1)
    sources = _SOURCES[rng.integers(0, len(_SOURCES), n)]
    objects = np.where(
        sources == "clicksend", "list_contact", np.where(sources == "zoho_crm", "lead", "contact")
    )
    opted = rng.random(n) < 0.04
    people = pd.DataFrame(
        {
            "record_key": np.arange(n),
            "contact_id": (np.arange(n) // 2).astype(str).astype(object),
            "source": sources,
            "object": objects.astype(object),
            "source_id": np.arange(n).astype(str).astype(object),
        }
    )
    raw = pd.DataFrame(
        {
            "record_key": np.arange(n),
            "payload": [_payload(s, bool(o)) for s, o in zip(sources, opted, strict=True)],
        }
    )
    started = time.perf_counter()
    golden = golden_consent(people, raw)
    seconds = time.perf_counter() - started
    email, sms = (int(golden[f"{c}_opt_out"].eq(True).sum()) for c in ("email", "sms"))
    print(
        f"{n:,} records, {len(golden):,} contacts: golden consent in {seconds:.2f} s "
        f"({n / seconds:,.0f} records/s); opted out of email {email:,}, of SMS {sms:,}"
    )


if __name__ == "__main__":
    main()
