"""``DAGSTER_HOME``: the folder of the Dagster instance that commands and the UI share.

Dagster refuses a ``DAGSTER_HOME`` that does not exist with a traceback. A first-time user who sets
it as the README says has usually not made the folder yet, so commands create it; a value that can
never work (a relative path, a file, a place that cannot be written) is refused in one line.
"""

import os
from pathlib import Path


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
    except OSError as exc:
        raise DagsterHomeError(
            f"DAGSTER_HOME {value} does not exist and cannot be created ({exc.strerror})"
        ) from None
    return path, True
