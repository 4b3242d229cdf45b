"""``DAGSTER_HOME``: the folder of the Dagster instance that commands and the UI share.

Dagster refuses a ``DAGSTER_HOME`` that does not exist with a traceback. A first-time user who sets
it as the README says has usually not made the folder yet, so commands create it, with the instance
settings of the repository's own ``.dagster_home`` (telemetry off, one slot per concurrency pool);
a value that can never work (a relative path, a file, a place that cannot be written) is refused in
one line. An existing folder is used as it is.
"""

import os
from pathlib import Path

NEW_HOME_CONFIG = """\
# The Dagster instance used by ./scripts/dev and the CLI when DAGSTER_HOME points here.
# Telemetry and the first-run pop-up are off: the first would try to send data out, the second
# covers the UI.
telemetry:
  enabled: false
nux:
  enabled: false
# Concurrency pools default to one slot. Extract and reverse sync each run as one step that works on
# the sources in parallel threads; every stream holds a lock in the warehouse that dies with its
# holder, so two runs never read or write the same stream at once.
concurrency:
  pools:
    default_limit: 1
"""
"""The ``dagster.yaml`` a created ``DAGSTER_HOME`` starts with: the repository's ``.dagster_home`` one."""


class DagsterHomeError(ValueError):
    """``DAGSTER_HOME`` names a folder that cannot be used; ``str()`` is the line to show."""


def ensure_dagster_home() -> tuple[Path | None, bool]:
    """The folder ``DAGSTER_HOME`` names (None when unset), made if missing; and whether it was made."""
    value = os.environ.get("DAGSTER_HOME", "").strip()
    if not value:
        return None, False
    path = Path(value).expanduser()
    if not path.is_absolute():  # Dagster resolves it in each of its processes' own directories
        raise DagsterHomeError(f"DAGSTER_HOME must be an absolute path; got {value!r}")
    if path.is_dir():
        return path, False
    if path.exists():
        raise DagsterHomeError(f"DAGSTER_HOME {value} is a file, not a folder")
    try:
        path.mkdir(parents=True)
        (path / "dagster.yaml").write_text(NEW_HOME_CONFIG)
    except OSError as exc:
        raise DagsterHomeError(
            f"DAGSTER_HOME {value} does not exist and cannot be created ({exc.strerror})"
        ) from None
    return path, True
