"""Reverse sync of the mappings file's golden fields: one plan row per record and mapped path.

The rules are the built-in fields' (`models.push.plan`): a destination field is filled when empty,
replaced only when the mapping opts in (``write: overwrite``), never cleared, and never written when
its write rule is ``never``. A record already holding the golden value, compared as it reads back
(`models.mappings.values.same`, so "Pro" in Zoho is the golden "pro"), gets no row: that is what
keeps the next cycle from echoing. Values go out in the destination's form (a choice through its
value map backwards; text to ClickFunnels and ClickSend).

The rows carry the plan's own columns, so they share its ledger, batches and concurrency guard;
the destination field is the mapped path, nested on the way out (`models.mappings.values.nested`).
"""

from typing import Any

import numpy as np
import pandas as pd

from models.mappings import Mappings
from models.mappings.values import at_path, outgoing, same

#: The columns `models.push.plan` assembles a planned row from.
ROW_COLUMNS = ("row", "field", "canonical_field", "before_value", "after_value", "reason", "invalid_reason")


def custom_rows(
    dest: str,
    obj: str,
    payloads: Any,
    custom: Any,
    mappings: Mappings | None,
    *,
    create: bool = False,
) -> pd.DataFrame:
    """Plan rows (`ROW_COLUMNS`) for the mapped fields of one destination object.

    payloads: per record row, its latest payload (empty mappings for creates); custom: per row, the
    golden contact's custom values (a dict or None). ``create`` plans every value a new record takes.
    """
    rows: list[tuple[Any, ...]] = []
    payload_items = list(payloads)
    custom_items = list(custom)
    for field, mapping in mappings.for_object(dest, obj) if mappings else ():
        if mapping.write == "never":
            continue
        for row, (payload, values) in enumerate(zip(payload_items, custom_items, strict=True)):
            golden = values.get(field.name) if isinstance(values, dict) else None
            if golden is None:
                continue
            held = None if create else at_path(payload, mapping.path)
            if held is not None and same(field, mapping, held, golden):
                continue
            empty = held is None or (isinstance(held, str) and not held.strip())
            if create:
                reason = "create"
            elif empty:
                reason = "fill_empty"
            elif mapping.write == "overwrite":
                reason = "overwrite_opt_in"
            else:
                continue
            after = outgoing(field, mapping, golden)
            rows.append((row, mapping.path, f"custom:{field.name}", held, after, reason, None))
    frame = pd.DataFrame(rows, columns=list(ROW_COLUMNS), dtype=object)
    frame["row"] = frame["row"].to_numpy(dtype=np.int64)
    return frame
