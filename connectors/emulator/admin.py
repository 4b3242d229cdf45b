"""``/_admin``: the emulator's controls over HTTP, for the CLI, scripts and out-of-process tests.

No auth, so it answers loopback clients only.
"""

from datetime import datetime
from typing import Any, Protocol

from connectors.emulator.behaviours import Behaviours
from connectors.emulator.dataset import Dataset
from connectors.emulator.faults import FaultConfig
from connectors.emulator.mutate import MutationSummary
from connectors.emulator.routing import MalformedRequestError, Request, Response, json_response
from connectors.emulator.state import WriteRecord

_MUTATE_KEYS = frozenset({"seed", "new", "updated", "deleted", "events", "messages"})


class Controls(Protocol):
    """The part of the Emulator the admin endpoints drive."""

    @property
    def dataset(self) -> Dataset: ...

    @property
    def faults(self) -> FaultConfig: ...

    @property
    def maton_rps(self) -> float | None: ...

    @maton_rps.setter
    def maton_rps(self, value: float | None) -> None: ...

    def request_counts(self) -> dict[tuple[str, str], int]: ...

    def truth(self) -> dict[tuple[str, str, str], int]: ...

    def reset_counters(self) -> None: ...

    def writes(self) -> list[WriteRecord]: ...

    def set_faults(self, config: FaultConfig) -> None: ...

    @property
    def behaviours(self) -> Behaviours: ...

    def set_behaviours(self, behaviours: Behaviours) -> None: ...

    def edit(
        self, table: str, record_id: object, fields: dict[str, Any], *, when: datetime | None = None
    ) -> dict[str, Any]: ...

    def sms_opt_out(self, phone: str, *, when: datetime | None = None) -> dict[str, Any]: ...

    def sms_opt_in(self, phone: str) -> int: ...

    def mutate(  # noqa: PLR0917 - mirrors Emulator.mutate
        self, seed: int, new: int = 0, updated: int = 0, deleted: int = 0, events: int = 0, messages: int = 0
    ) -> MutationSummary: ...


def _is_loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1")


class Admin:
    def __init__(self, controls: Controls) -> None:
        self._controls = controls

    def __call__(self, request: Request) -> Response:
        if not _is_loopback(request.client_host):
            return json_response(403, {"error": "the admin endpoints answer loopback clients only"})
        handlers = {
            ("GET", "/_admin/health"): self._health,
            ("GET", "/_admin/counters"): self._counters,
            ("POST", "/_admin/counters/reset"): self._reset,
            ("GET", "/_admin/writes"): self._writes,
            ("GET", "/_admin/faults"): self._faults,
            ("POST", "/_admin/faults"): self._set_faults,
            ("GET", "/_admin/behaviours"): self._behaviours,
            ("POST", "/_admin/behaviours"): self._set_behaviours,
            ("POST", "/_admin/mutate"): self._mutate,
            ("POST", "/_admin/edit"): self._edit,
            ("POST", "/_admin/sms-opt-out"): self._sms_opt_out,
            ("POST", "/_admin/sms-opt-in"): self._sms_opt_in,
            ("GET", "/_admin/truth"): self._truth,
        }
        handler = handlers.get((request.method, request.path.rstrip("/")))
        if handler is None:
            return json_response(404, {"error": f"no admin endpoint {request.method} {request.path}"})
        try:
            return handler(request)
        except (MalformedRequestError, TypeError, ValueError) as exc:
            return json_response(400, {"error": str(exc)})

    def _health(self, request: Request) -> Response:
        dataset = self._controls.dataset
        return json_response(200, {"status": "ok", "seed": dataset.seed, "people": dataset.people})

    def _counters(self, request: Request) -> Response:
        counts = self._controls.request_counts()
        rows = [
            {"app": app, "endpoint": endpoint, "count": n} for (app, endpoint), n in sorted(counts.items())
        ]
        return json_response(200, {"total": sum(counts.values()), "counts": rows})

    def _reset(self, request: Request) -> Response:
        self._controls.reset_counters()
        return json_response(200, {"status": "ok"})

    def _writes(self, request: Request) -> Response:
        return json_response(200, {"writes": [write.to_json() for write in self._controls.writes()]})

    def _faults(self, request: Request) -> Response:
        return json_response(
            200, {"faults": self._controls.faults.to_json(), "maton_rps": self._controls.maton_rps}
        )

    def _set_faults(self, request: Request) -> Response:
        body = self._object(request)
        if "maton_rps" in body:
            rps = body.pop("maton_rps")
            self._controls.maton_rps = None if rps is None else float(rps)
        self._controls.set_faults(FaultConfig.from_mapping(body))
        return self._faults(request)

    def _behaviours(self, request: Request) -> Response:
        return json_response(200, {"behaviours": self._controls.behaviours.to_json()})

    def _set_behaviours(self, request: Request) -> Response:
        """Changes only the named behaviours; the others keep their current values."""
        body = self._object(request)
        self._controls.set_behaviours(Behaviours.from_mapping(body, self._controls.behaviours))
        return self._behaviours(request)

    def _mutate(self, request: Request) -> Response:
        body = self._object(request)
        unknown = set(body) - _MUTATE_KEYS
        if unknown:
            raise ValueError(f"unknown mutate arguments {sorted(unknown)}")
        counts = {name: int(body.get(name, 0)) for name in _MUTATE_KEYS - {"seed"}}
        summary = self._controls.mutate(int(body.get("seed", 0)), **counts)
        return json_response(200, summary.to_json())

    def _edit(self, request: Request) -> Response:
        """``{"table": "zoho_crm/lead", "id": ..., "fields": {...}, "at": ISO 8601 (optional)}``: a
        person's edit by hand (`Emulator.edit`), stamped ``at`` (default now); answers the record."""
        body = self._object(request)
        unknown = set(body) - {"table", "id", "fields", "at"}
        if unknown or not isinstance(body.get("fields"), dict) or "id" not in body:
            raise ValueError('edit takes {"table": "source/object", "id": ..., "fields": {...}, "at": ...}')
        when = datetime.fromisoformat(str(body["at"])) if body.get("at") else None
        if when is not None and when.tzinfo is None:
            raise ValueError("at needs a UTC offset")
        record = self._controls.edit(str(body.get("table")), body["id"], body["fields"], when=when)
        return json_response(200, record)

    def _sms_opt_out(self, request: Request) -> Response:
        """``{"phone": E.164, "at": ISO 8601 (optional)}``: the person texts STOP; answers the new
        opt-out list contact."""
        body = self._object(request)
        if set(body) - {"phone", "at"} or not isinstance(body.get("phone"), str):
            raise ValueError('sms-opt-out takes {"phone": "+1...", "at": ...}')
        when = datetime.fromisoformat(str(body["at"])) if body.get("at") else None
        if when is not None and when.tzinfo is None:
            raise ValueError("at needs a UTC offset")
        return json_response(200, self._controls.sms_opt_out(body["phone"], when=when))

    def _sms_opt_in(self, request: Request) -> Response:
        """``{"phone": E.164}``: the person texts START; answers how many opt-out entries went."""
        body = self._object(request)
        if set(body) != {"phone"} or not isinstance(body.get("phone"), str):
            raise ValueError('sms-opt-in takes {"phone": "+1..."}')
        return json_response(200, {"removed": self._controls.sms_opt_in(body["phone"])})

    def _truth(self, request: Request) -> Response:
        truth = self._controls.truth()
        rows = [
            {"source": source, "object": obj, "source_id": source_id, "person_id": person}
            for (source, obj, source_id), person in truth.items()
        ]
        return json_response(200, rows)

    def _object(self, request: Request) -> dict[str, Any]:
        body = request.json()
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise MalformedRequestError("the body must be a JSON object")
        return body
