"""Zoho record writes (insert, update, upsert, delete): up to 100 records, one result per record.

A write answers 200 (or 201 for an all-successful insert) when every record succeeded, 207 when some
did, and the common error's status when all failed (412 when all were ``ALREADY_MODIFIED``). Each
record is checked on its own: mandatory fields on insert (``Last_Name``, and any the layout adds),
unknown ids, malformed emails, ``If-Unmodified-Since`` (optimistic concurrency) and the emulator's
rejection hook.

A record changed after ``If-Unmodified-Since`` is refused with ``ALREADY_MODIFIED``, "Record updated
time has already passed if-unmodified-since time" (Zoho's v7 update and upsert pages, api-notes
§5.7). Whether Zoho refuses that record alone or the whole call is not documented, so
``Behaviours.zoho_conflict`` plays both: ``per_record`` answers the refused records in ``data[]`` and
applies the others; ``whole_call`` checks every record of the call first and, when any is refused,
writes nothing (``refused_record`` finds it, the API answers one 412 error body).
"""

from dataclasses import dataclass
from datetime import timezone
from typing import Any

from connectors.emulator.dataset import ZOHO_CRM_LEADS, deleted_entry, deleted_table
from connectors.emulator.identifiers import record_identifiers
from connectors.emulator.records import ZOHO_READ_ONLY, minified_user, zoho_full_name, zoho_record, zoho_user
from connectors.emulator.state import EmulatorState
from connectors.emulator.store import Record
from connectors.emulator.timefmt import zoho_time

BATCH_LIMIT = 100
ALREADY_MODIFIED = "ALREADY_MODIFIED"
ALREADY_MODIFIED_MESSAGE = "Record updated time has already passed if-unmodified-since time"
_ERROR_STATUS = {ALREADY_MODIFIED: 412, "NO_PERMISSION": 403}


@dataclass(frozen=True)
class Module:
    """One Zoho module as the emulator serves it: its table, fields and org settings."""

    app: str
    api_name: str
    table: str
    fields: tuple[str, ...]
    offset: timezone
    id_prefix: str

    @property
    def is_leads(self) -> bool:
        return self.table == ZOHO_CRM_LEADS


def _named(names: tuple[str, ...], module: Module) -> tuple[str, ...]:
    return tuple(name.partition(".")[2] for name in names if name.partition(".")[0] == module.api_name)


def layout_requirements(state: EmulatorState, module: Module) -> dict[str, tuple[str, ...]]:
    """Per active layout of ``module`` (Standard, and Partner when ``zoho_partner_layout_required``
    names its fields), what a record in it must carry: ``Last_Name`` always, and what the org made
    mandatory (``Behaviours.zoho_layout_required``, in every layout)."""
    behaviours = state.behaviours
    standard = tuple(dict.fromkeys(("Last_Name", *_named(behaviours.zoho_layout_required, module))))
    partner = _named(behaviours.zoho_partner_layout_required, module)
    return {"Standard": standard, **({"Partner": (*standard, *partner)} if partner else {})}


def required_fields(state: EmulatorState, module: Module) -> tuple[str, ...]:
    """What an API insert into ``module`` must carry: its layout's mandatory fields, the layout an API
    create lands in being ``Behaviours.zoho_api_create_layout`` when the module has two."""
    layouts = layout_requirements(state, module)
    chosen = "Partner" if state.behaviours.zoho_api_create_layout == "partner" else "Standard"
    return layouts.get(chosen, layouts["Standard"])


class RecordWriteError(Exception):
    """One record of a batch failed; carries Zoho's per-record error."""

    def __init__(self, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(code)
        self.result = {"code": code, "details": details, "message": message, "status": "error"}


def batch_status(results: list[Record], all_ok: int) -> int:
    """200/201 all fine, 207 mixed, else the status of the common error."""
    failed = [result for result in results if result["status"] == "error"]
    if not failed:
        return all_ok
    if len(failed) < len(results):
        return 207
    codes = {result["code"] for result in failed}
    return _ERROR_STATUS.get(codes.pop(), 400) if len(codes) == 1 else 400


class ZohoWriter:
    """Applies one write call to one module, record by record."""

    def __init__(self, state: EmulatorState, module: Module, unmodified_since: str | None) -> None:
        self.state = state
        self.module = module
        self.unmodified_since = unmodified_since
        self.table = state.tables[module.table]

    def insert(self, item: dict[str, Any], position: int) -> Record:
        for name in required_fields(self.state, self.module):
            value = item.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise RecordWriteError(
                    "MANDATORY_NOT_FOUND",
                    "required field not found",
                    {"api_name": name, "json_path": f"$.data[{position}].{name}"},
                )
        now = self.state.now()
        record_id = self.state.dataset.zoho_id(self.module.app)
        blank = zoho_record(
            self.module.fields, record_id, now, self.module.offset, zoho_user(self.module.id_prefix)
        )
        record = self._applied(blank, item, position, now)
        self.table.put(record_id, record)
        identifiers = record_identifiers(self.module.table, record)
        self.state.attribute(self.module.table, record_id, identifiers)
        return self._success(record, "record added")

    def update(self, item: dict[str, Any], position: int) -> Record:
        record_id = item.get("id")
        if not record_id:
            raise RecordWriteError(
                "MANDATORY_NOT_FOUND",
                "required field not found",
                {"api_name": "id", "json_path": f"$.data[{position}].id"},
            )
        current = self.table.get(str(record_id))
        if current is None:
            raise RecordWriteError(
                "INVALID_DATA",
                "the id given seems to be invalid",
                {"api_name": "id", "json_path": f"$.data[{position}].id"},
            )
        return self.update_record(current, item, position)

    def update_record(self, current: Record, item: dict[str, Any], position: int) -> Record:
        self.check_writable(current)
        record = self._applied(current, item, position, self.state.now())
        self.table.put(record["id"], record)
        return self._success(record, "record updated")

    def upsert(self, item: dict[str, Any], position: int, check_fields: list[str]) -> Record:
        """Update the record matching the first duplicate-check field the item fills, else insert.

        Several matches: Zoho does not say which record it takes (api-notes §5.7), so
        ``zoho_upsert_several`` plays each answer: ``DUPLICATE_DATA``, or the oldest or the last
        modified of them updated.
        """
        for field in check_fields:
            value = item.get(field)
            if value in (None, ""):
                continue
            matches = self._upsert_matches(field, value)
            if len(matches) > 1:
                raise RecordWriteError(
                    "DUPLICATE_DATA",
                    "duplicate data",
                    {
                        "api_name": field,
                        "json_path": f"$.data[{position}].{field}",
                        "duplicate_record": {"id": matches[0], "module": {"api_name": self.module.api_name}},
                    },
                )
            if matches:
                result = self.update_record(self.table.records[matches[0]], item, position)
                return {**result, "duplicate_field": field, "action": "update"}
        return {**self.insert(item, position), "duplicate_field": None, "action": "insert"}

    def delete(self, record_id: str) -> Record:
        current = self.table.get(record_id)
        if current is None:
            raise RecordWriteError("INVALID_DATA", "the id given seems to be invalid", {"id": record_id})
        self.check_writable(current)
        delete_record(self.state, self.module, record_id, self.state.now())
        return {
            "code": "SUCCESS",
            "details": {"id": record_id},
            "message": "record deleted",
            "status": "success",
        }

    def check_writable(self, current: Record) -> None:
        """The rejection hook, then ``If-Unmodified-Since``: a record changed since then is left alone."""
        rejection = self.state.rejection(self.module.app, current["id"])
        if rejection is not None:
            raise RecordWriteError(rejection.code or "INVALID_DATA", rejection.message, {"id": current["id"]})
        if self._changed_since(current):
            raise RecordWriteError(ALREADY_MODIFIED, ALREADY_MODIFIED_MESSAGE, {"id": current["id"]})

    def refused_record(self, items: list[Any], mode: str, check_fields: list[str]) -> str | None:
        """The id of the first existing record of the call that ``If-Unmodified-Since`` refuses, found
        before anything is written (for ``whole_call``); an insert touches no existing record."""
        if self.unmodified_since is None or mode == "insert":
            return None
        for item in items:
            if not isinstance(item, dict):
                continue
            current = (
                self.table.get(str(item.get("id")))
                if mode == "update"
                else self._upsert_target(item, check_fields)
            )
            if current is not None and self._changed_since(current):
                return str(current["id"])
        return None

    def _changed_since(self, current: Record) -> bool:
        return self.unmodified_since is not None and current["Modified_Time"] > self.unmodified_since

    def _upsert_target(self, item: dict[str, Any], check_fields: list[str]) -> Record | None:
        """The record ``upsert`` would update: the match of the first filled check field that matches
        any (several matches touch nothing unless ``zoho_upsert_several`` picks one of them)."""
        for field in check_fields:
            value = item.get(field)
            if value in (None, ""):
                continue
            matches = self._upsert_matches(field, value)
            if matches:
                return self.table.records[matches[0]] if len(matches) == 1 else None
        return None

    def _upsert_matches(self, field: str, value: Any) -> list[str]:
        """The records an upsert on ``field`` = ``value`` matches: several stay several (refused)
        unless ``zoho_upsert_several`` picks the oldest or the last modified of them."""
        matches = self._matching(field, value)
        several = self.state.behaviours.zoho_upsert_several
        if len(matches) < 2 or several == "refuse":
            return matches
        records = self.table.records
        if several == "update_oldest":
            return [min(matches, key=lambda i: (str(records[i].get("Created_Time") or ""), i))]
        return [max(matches, key=lambda i: (str(records[i].get("Modified_Time") or ""), i))]

    def _matching(self, field: str, value: Any) -> list[str]:
        if field == "Email" and isinstance(value, str):
            return sorted(self.table.group("email", value.strip().lower()))
        return sorted(
            record_id for record_id, record in self.table.records.items() if record.get(field) == value
        )

    def _applied(self, current: Record, item: dict[str, Any], position: int, now: float) -> Record:
        record = dict(current)
        for field, value in item.items():
            if field not in record or field in ZOHO_READ_ONLY or field.startswith("$"):
                continue
            if (
                field in ("Email", "Secondary_Email")
                and value
                and (not isinstance(value, str) or "@" not in value)
            ):
                raise RecordWriteError(
                    "INVALID_DATA",
                    "invalid data",
                    {
                        "api_name": field,
                        "expected_data_type": "email",
                        "json_path": f"$.data[{position}].{field}",
                    },
                )
            if field == "Account_Name" and value:
                name = value.get("name") if isinstance(value, dict) else value
                record[field] = self.state.dataset.zoho_account(self.module.app, str(name))
            else:
                record[field] = value
        stamp = zoho_time(now, self.module.offset)
        record["Full_Name"] = zoho_full_name(record)
        record["Modified_Time"] = stamp
        record["Last_Activity_Time"] = stamp
        record["Modified_By"] = minified_user(zoho_user(self.module.id_prefix))
        return record

    def _success(self, record: Record, message: str) -> Record:
        details = {
            "Modified_Time": record["Modified_Time"],
            "Modified_By": record["Modified_By"],
            "Created_Time": record["Created_Time"],
            "id": record["id"],
            "Created_By": record["Created_By"],
        }
        return {"code": "SUCCESS", "details": details, "message": message, "status": "success"}


def delete_record(state: EmulatorState, module: Module, record_id: str, when: float) -> None:
    """Move a record to the recycle bin: gone from lists, listed by ``/deleted``, out of the truth."""
    record = state.tables[module.table].remove(record_id)
    if record is None:
        return
    state.forget(module.table, record_id)
    entry = deleted_entry(
        record_id,
        record.get("Full_Name") or record_id,
        kind="recycle",
        when=when,
        offset=module.offset,
        owner=zoho_user(module.id_prefix),
    )
    state.tables[deleted_table(module.table)].put(record_id, entry)
