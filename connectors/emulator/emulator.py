"""``Emulator``: the five APIs on one loopback port, with the controls tests and the demo need.

Start it in a background thread (``start`` or ``with Emulator(...) as emu``), point the project at it
with ``emu.env()``, and inspect what happened with the counters and the write log. ``serve`` runs
one in the foreground for the CLI's ``sandbox`` command.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from connectors.emulator.admin import Admin
from connectors.emulator.behaviours import Behaviours
from connectors.emulator.clickfunnels import ClickFunnelsApi
from connectors.emulator.clicksend import ClickSendApi
from connectors.emulator.dataset import Dataset
from connectors.emulator.dispatch import Dispatcher, RequestCounter
from connectors.emulator.faults import APP_NAMES, FaultConfig, FaultInjector, GatewayBudget
from connectors.emulator.generate import generate_dataset
from connectors.emulator.linkflow import LinkflowApi
from connectors.emulator.mutate import (
    MutationSummary,
    Mutator,
    edit_by_hand,
    sms_opt_in,
    sms_opt_out,
    sms_received,
)
from connectors.emulator.routing import Api
from connectors.emulator.server import EmulatorHTTPServer
from connectors.emulator.state import EmulatorState, Rejection, WriteRecord
from connectors.emulator.zoho import ZohoApi
from connectors.emulator.zoho_writes import delete_record

DEFAULT_MATON_KEY = "sandbox-maton-key"
DEFAULT_LINKFLOW_KEY = "sandbox-linkflow-key"
DEFAULT_LINKFLOW_SECRET = "sandbox-linkflow-secret"  # noqa: S105 - a fixed sandbox credential by design
SANDBOX_MATON_RPS = 10.0


class Emulator:
    """The five APIs, their data and their controls. Not started until ``start`` or ``with``."""

    def __init__(  # noqa: PLR0917 - the positional signature other modules were promised
        self,
        seed: int = 7,
        people: int = 200,
        maton_key: str = DEFAULT_MATON_KEY,
        linkflow_key: str = DEFAULT_LINKFLOW_KEY,
        linkflow_secret: str = DEFAULT_LINKFLOW_SECRET,
        maton_rps: float | None = None,
        linkflow_token_ttl: float = 7200.0,
        zoho_page_token_ttl: float = 86400.0,
        faults: FaultConfig | None = None,
        bigin_honours_if_modified_since: bool = False,
        *,
        now: datetime | None = None,
        bigin_deleted_endpoint: bool = False,
        dataset: Dataset | None = None,
        behaviours: Behaviours | None = None,
        households: bool = False,
    ) -> None:
        """``now`` fixes the generated data's clock (for reproducible data); ``dataset`` serves a
        prepared one instead of generating. ``behaviours`` plays the vendors' open questions
        (``bigin_honours_if_modified_since`` and ``bigin_deleted_endpoint`` are older spellings of two
        of them and win when set). ``households`` generates people sharing landlines and emails, with
        first names varying per record (``generate_dataset``'s option of that name)."""
        self._dataset = (
            dataset if dataset is not None else generate_dataset(seed, people, now, households=households)
        )
        chosen = behaviours or Behaviours()
        if bigin_honours_if_modified_since:
            chosen = replace(chosen, bigin_honours_if_modified_since=True)
        if bigin_deleted_endpoint:
            chosen = replace(chosen, bigin_deleted="feed")
        self._state = EmulatorState(
            self._dataset,
            linkflow_token_ttl=linkflow_token_ttl,
            zoho_page_token_ttl=zoho_page_token_ttl,
            behaviours=chosen,
        )
        self._maton_key = maton_key
        self._linkflow_key = linkflow_key
        self._linkflow_secret = linkflow_secret
        self._faults = FaultInjector(faults or FaultConfig())
        self._budget = GatewayBudget(maton_rps)
        self._counter = RequestCounter()
        self._linkflow = LinkflowApi(self._state, linkflow_key, linkflow_secret)
        self._zoho = (
            ZohoApi(self._state, maton_key, bigin=False),
            ZohoApi(self._state, maton_key, bigin=True),
        )
        apis: list[Api] = [
            ClickFunnelsApi(self._state, maton_key),
            ClickSendApi(self._state, maton_key),
            self._linkflow,
            *self._zoho,
        ]
        self._dispatcher = Dispatcher(
            apis,
            admin=Admin(self),
            state=self._state,
            faults=self._faults,
            budget=self._budget,
            counter=self._counter,
        )
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self.base_url if self._server else "not started"
        return f"Emulator(seed={self._dataset.seed}, people={self._dataset.people}, {where})"

    def __enter__(self) -> "Emulator":
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, host: str = "127.0.0.1", port: int = 0) -> "Emulator":
        """Serve in a background thread; port 0 picks a free port (read it from ``base_url``)."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._server = EmulatorHTTPServer((host, port), self._dispatcher.handle)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection; safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        host, port = self._server.server_address[:2]
        text = host.decode() if isinstance(host, bytes) else host
        return f"http://[{text}]:{port}" if ":" in text else f"http://{text}:{port}"

    @property
    def maton_gateway_url(self) -> str:
        return self.base_url

    @property
    def linkflow_base_url(self) -> str:
        return self.base_url + "/linkflow"

    def env(self) -> dict[str, str]:
        """The environment variables that point contact-sync at this emulator."""
        return {
            "MATON_API_KEY": self._maton_key,
            "MATON_GATEWAY_URL": self.maton_gateway_url,
            "LINKFLOW_APP_KEY": self._linkflow_key,
            "LINKFLOW_APP_SECRET": self._linkflow_secret,
            "LINKFLOW_BASE_URL": self.linkflow_base_url,
        }

    @property
    def dataset(self) -> Dataset:
        """The live data: records as currently stored and the truth about them."""
        return self._dataset

    def truth(self) -> dict[tuple[str, str, str], int]:
        """A consistent copy of ``dataset.truth``, safe to read while the server runs."""
        with self._state.lock:
            return dict(self._dataset.truth)

    @property
    def faults(self) -> FaultConfig:
        return self._faults.config

    def set_faults(self, config: FaultConfig) -> None:
        self._faults.configure(config)

    def injected_faults(self) -> dict[str, int]:
        """Faults drawn since the faults were last set, by name (``too_many_requests``,
        ``unavailable``, ``drop``, ``challenge``, ``truncate``)."""
        return self._faults.injected()

    @property
    def behaviours(self) -> Behaviours:
        return self._state.behaviours

    def set_behaviours(self, behaviours: Behaviours) -> None:
        """Play other answers to the vendors' open questions from the next request on."""
        with self._state.lock:
            self._state.behaviours = behaviours

    @property
    def maton_rps(self) -> float | None:
        return self._budget.rps

    @maton_rps.setter
    def maton_rps(self, value: float | None) -> None:
        self._budget.rps = value

    def request_counts(self) -> dict[tuple[str, str], int]:
        """Requests per (app, "METHOD /path/{template}"), including those answered with a fault."""
        return self._counter.snapshot()

    def total_requests(self, app: str | None = None) -> int:
        return self._counter.total(app)

    def reset_counters(self) -> None:
        self._counter.reset()

    def writes(self) -> list[WriteRecord]:
        """Every change clients made, in order (one entry per record of a batch)."""
        return self._state.writes()

    def clear_writes(self) -> None:
        self._state.clear_writes()

    def mutate(  # noqa: PLR0917 - the positional signature other modules were promised
        self, seed: int, new: int = 0, updated: int = 0, deleted: int = 0, events: int = 0, messages: int = 0
    ) -> MutationSummary:
        """Change the data as the world would between syncs (see ``mutate``); the truth follows."""
        return Mutator(self._state, seed).run(
            new=new, updated=updated, deleted=deleted, events=events, messages=messages
        )

    def edit(
        self, table: str, record_id: object, fields: dict[str, Any], *, when: datetime | None = None
    ) -> dict[str, Any]:
        """A person edits one contact record by hand in the vendor's UI (not through the API), at
        ``when`` (default now): the fields change and the record shows an outside edit (a new
        modification time; Linkflow's next ``ver``; in Zoho, ``Modified_By`` a colleague rather than
        the connection's user). Returns the record as stored. ``table`` is ``source/object``."""
        key: object = record_id
        if not table.startswith("zoho_"):
            key = int(str(record_id))
        return edit_by_hand(self._state, table, key, fields, when=None if when is None else when.timestamp())

    def sms_opt_out(self, phone: str, *, when: datetime | None = None) -> dict[str, Any]:
        """The person with this number texts STOP: it joins ClickSend's opt-out list (at ``when``)."""
        return sms_opt_out(self._state, phone, when=None if when is None else when.timestamp())

    def sms_received(self, phone: str, body: str, *, when: datetime | None = None) -> dict[str, Any]:
        """The person with this number texts the account (at ``when``): an inbound message."""
        return sms_received(self._state, phone, body, when=None if when is None else when.timestamp())

    def sms_opt_in(self, phone: str) -> int:
        """The person texts START: the number leaves the opt-out list; returns the entries removed."""
        return sms_opt_in(self._state, phone)

    def expire_linkflow_tokens(self) -> None:
        self._linkflow.expire_tokens()

    def expire_linkflow_tokens_after(self, calls: int | None) -> None:
        """Each Linkflow token dies after serving ``calls`` calls (None: back to its normal life)."""
        self._linkflow.expire_tokens_after(calls)

    def expire_zoho_page_tokens(self) -> None:
        with self._state.lock:
            for api in self._zoho:
                api.expire_page_tokens()

    def delete_zoho_record(self, table: str, record_id: str, *, when: datetime | None = None) -> None:
        """Move one Zoho record to the recycle bin as a user would, at ``when`` (default now): a
        deletion placed in the past plays one the ``/deleted`` retention has already dropped."""
        modules = {module.table: module for api in self._zoho for module in api.modules.values()}
        if table not in modules:
            raise ValueError(f"unknown Zoho table {table!r}; expected one of {sorted(modules)}")
        with self._state.lock:
            moment = self._state.now() if when is None else when.timestamp()
            delete_record(self._state, modules[table], record_id, moment)

    def reject_writes(
        self,
        app: str,
        record_id: object,
        code: str | None = None,
        message: str = "rejected by the emulator's test hook",
        *,
        whole_call: bool = False,
    ) -> None:
        """Make writes to one record fail until ``allow_writes``: Zoho answers that record with
        ``code`` (default ``INVALID_DATA``), or with ``whole_call`` the whole call with that code and
        nothing written; ClickSend with that ``response_code`` (default ``BAD_REQUEST``), Linkflow
        with HTTP 500 and that code (default ``B00030``), ClickFunnels with 422 and the message."""
        if app not in APP_NAMES:
            raise ValueError(f"unknown app {app!r}; expected one of {sorted(APP_NAMES)}")
        self._state.reject(app, record_id, Rejection(code, message, whole_call))

    def allow_writes(self, app: str, record_id: object) -> None:
        self._state.reject(app, record_id, None)


@contextmanager
def running_emulator(host: str = "127.0.0.1", port: int = 0, **options: Any) -> Iterator[Emulator]:
    """A started emulator for the block; ``options`` are ``Emulator``'s keyword arguments."""
    emulator = Emulator(**options).start(host, port)
    try:
        yield emulator
    finally:
        emulator.stop()


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    seed: int = 7,
    people: int = 200,
    *,
    maton_rps: float | None = SANDBOX_MATON_RPS,
    on_ready: Callable[[Emulator], None] | None = None,
    stop: threading.Event | None = None,
    **options: Any,
) -> None:
    """Run an emulator in the foreground until ``stop`` is set or the process is interrupted.

    ``on_ready`` runs once it listens (the CLI prints ``emulator.env()`` there).
    """
    emulator = Emulator(seed=seed, people=people, maton_rps=maton_rps, **options).start(host, port)
    try:
        if on_ready is not None:
            on_ready(emulator)
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
