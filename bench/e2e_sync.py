"""End-to-end benchmark: the whole ``full_sync`` job against the emulator, as a user would run it.

Unit benchmarks say how fast each part is; what a user waits for is the job, and on real APIs the job is
bound by the vendors' request budgets, not by our code. So this measures the job against those budgets:

* **Full sync** of N people with a set latency per request and the Maton gateway refusing more than its
  budget per second. The lower bound is the requests the run actually made (taken as unavoidable) over
  each budget, the two budgets used in parallel: ``max(maton / maton_rps, linkflow / linkflow_rps)``.
  The "serial" bound ``maton / maton_rps + linkflow / linkflow_rps`` is what a run that talks to one
  source at a time can reach at best; Dagster's in-process executor runs the assets one after another.
* **Incremental sync** after about 1% of the records change: requests and time as a share of the full run.
* **Reverse sync**: write requests against the minimum for the records written (Zoho 100 records per
  call, one call per record elsewhere).
* **Reverse-sync planning** of the incremental run: the records each destination's plan loaded and the
  seconds it took (it follows the change), against a full plan of the same warehouse timed right after
  (what every run planned before planning became incremental).
* **Peak memory** of a sync process per N, the emulator living in another process (it holds the whole
  dataset); pages are streamed, so the extract's peak should stay flat in N.

The emulator runs as ``contact-sync sandbox`` in a child process, so its work neither shares our GIL nor
counts in our memory; it is driven over its ``/_admin`` endpoints.

    python bench/e2e_sync.py --people 2000 --latency-ms 20
    python bench/e2e_sync.py --people 500 --memory-people 10000,30000,100000
"""

import argparse
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx

from pipelines.streams import STREAMS

MATON_APPS = ("clickfunnels", "clicksend", "zoho_crm", "zoho_bigin")
APPS = (*MATON_APPS, "linkflow")
ZOHO_APPS = ("zoho_crm", "zoho_bigin")
ZOHO_BATCH = 100
CONTACT_STREAMS = tuple(stream.name for stream in STREAMS if stream.writable)


class Sandbox:
    """``contact-sync sandbox`` in a child process, and its admin endpoints."""

    def __init__(self, people: int, seed: int) -> None:
        self.people = people
        self.seed = seed
        self.env: dict[str, str] = {}
        self._process: subprocess.Popen[str] | None = None
        self._admin: httpx.Client | None = None

    def __enter__(self) -> "Sandbox":
        port = _free_port()
        command = Path(sys.executable).parent / "contact-sync"
        self._process = subprocess.Popen(
            [
                str(command),
                "sandbox",
                "--port",
                str(port),
                "--people",
                str(self.people),
                "--seed",
                str(self.seed),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                self.env[name] = value
            if line.startswith("# stop with"):
                break
        if "MATON_GATEWAY_URL" not in self.env:
            self.__exit__()
            raise RuntimeError("the sandbox exited before printing its variables")
        self._admin = httpx.Client(base_url=self.env["MATON_GATEWAY_URL"] + "/_admin", timeout=600)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._admin is not None:
            self._admin.close()
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)

    @property
    def pid(self) -> int:
        """The sandbox's process: the emulator serves from it (its CPU is charged to the runs)."""
        assert self._process is not None
        return self._process.pid

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        assert self._admin is not None
        response = self._admin.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def configure(self, *, latency_ms: float, maton_rps: float | None) -> None:
        self._call("POST", "/faults", {"latency_ms": latency_ms, "maton_rps": maton_rps})

    def reset_counters(self) -> None:
        self._call("POST", "/counters/reset")

    def counters(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._call("GET", "/counters")["counts"]
        return rows

    def writes(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._call("GET", "/writes")["writes"]
        return rows

    def mutate(self, **counts: int) -> dict[str, Any]:
        summary: dict[str, Any] = self._call("POST", "/mutate", {"seed": self.seed + 1, **counts})
        return summary


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _settings(
    env: Mapping[str, str], database_url: str, maton_rps: float, linkflow_rps: float, push: str
) -> Any:
    from pipelines.settings import load_settings

    return load_settings(
        **{name.lower(): value for name, value in env.items()},
        contact_sync_database_url=database_url,
        contact_sync_maton_rps=maton_rps,
        contact_sync_linkflow_rps=linkflow_rps,
        contact_sync_push=push,
    )


@dataclass
class Phase:
    """One run of the job: its wall time, what the emulator saw and what the pipeline reported."""

    name: str
    seconds: float
    requests: dict[str, int]
    write_requests: dict[str, int]
    written_records: dict[str, int]
    write_minimum: dict[str, int]
    retries: int
    success: bool
    assets: dict[str, dict[str, Any]]

    def maton(self) -> int:
        return sum(self.requests[app] for app in MATON_APPS)

    def linkflow(self) -> int:
        return self.requests["linkflow"]


def _write_tally(writes: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """Distinct records written per app, and the fewest calls that could write them."""
    records: dict[str, set[tuple[str, str]]] = {app: set() for app in APPS}
    for write in writes:
        records[write["app"]].add((_module(write["path"]), str(write["record_id"])))
    minimum: dict[str, int] = {}
    for app, keys in records.items():
        if app in ZOHO_APPS:
            per_module = Counter(module for module, _ in keys)
            minimum[app] = sum(math.ceil(n / ZOHO_BATCH) for n in per_module.values())
        else:
            minimum[app] = len(keys)
    return {app: len(keys) for app, keys in records.items()}, minimum


def _module(path: str) -> str:
    """The Zoho module a write path names (``/zoho-crm/crm/v8/Leads/123`` -> ``Leads``); else the path."""
    parts = path.strip("/").split("/")
    for version in ("v8", "v2"):
        if version in parts and parts.index(version) + 1 < len(parts):
            return parts[parts.index(version) + 1]
    return path


def run_phase(name: str, sandbox: Sandbox, settings: Any) -> Phase:
    import dagster as dg

    from pipelines.runner import run_sync

    sandbox.reset_counters()
    writes_before = len(sandbox.writes())
    with dg.DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        report = run_sync(settings, instance=instance)
        seconds = time.perf_counter() - started
    requests = dict.fromkeys(APPS, 0)
    write_requests = dict.fromkeys(APPS, 0)
    for row in sandbox.counters():
        requests[row["app"]] += row["count"]
        if not row["endpoint"].startswith("GET "):
            write_requests[row["app"]] += row["count"]
    written, minimum = _write_tally(sandbox.writes()[writes_before:])
    retries = sum(int(meta.get("retries", 0) or 0) for meta in report.assets.values())
    for failure in report.failures:
        print(f"  {name}: run failure: {failure}", file=sys.stderr)
    return Phase(
        name, seconds, requests, write_requests, written, minimum, retries, report.success, report.assets
    )


def _records_read(phase: Phase, streams: tuple[str, ...]) -> int:
    return sum(int(phase.assets.get(name, {}).get("rows_read", 0) or 0) for name in streams)


def print_runs(full: Phase, incremental: Phase, maton_rps: float, linkflow_rps: float) -> None:
    print()
    header = f"{'run':<12}{'wall s':>9}" + "".join(f"{app:>14}" for app in APPS)
    header += f"{'maton':>8}{'bound s':>9}{'ratio':>7}{'serial s':>10}{'ratio':>7}{'retries':>9}"
    print(header)
    for phase in (full, incremental):
        bound = max(phase.maton() / maton_rps, phase.linkflow() / linkflow_rps)
        serial = phase.maton() / maton_rps + phase.linkflow() / linkflow_rps
        line = f"{phase.name:<12}{phase.seconds:>9.1f}" + "".join(f"{phase.requests[a]:>14}" for a in APPS)
        line += f"{phase.maton():>8}{bound:>9.1f}{_ratio(phase.seconds, bound):>7}"
        line += f"{serial:>10.1f}{_ratio(phase.seconds, serial):>7}{phase.retries:>9}"
        print(line + ("" if phase.success else "  FAILED"))
    total_full = full.maton() + full.linkflow()
    total_inc = incremental.maton() + incremental.linkflow()
    print(
        f"incremental / full: requests {total_inc}/{total_full} = {100 * total_inc / max(total_full, 1):.2f}%"
        f" (goal < 3%), time {100 * incremental.seconds / full.seconds:.1f}%"
    )
    reads_full = total_full - sum(full.write_requests.values())
    reads_inc = total_inc - sum(incremental.write_requests.values())
    print(
        f"  reads only: {reads_inc}/{reads_full} = {100 * reads_inc / max(reads_full, 1):.2f}% "
        "(write calls left out; reads include re-reading what reverse sync wrote)"
    )


def _ratio(seconds: float, bound: float) -> str:
    return f"{seconds / bound:.2f}" if bound > 0 else "-"


def print_writes(phases: tuple[Phase, ...]) -> None:
    print()
    print(f"{'reverse sync':<14}" + "".join(f"{app:>26}" for app in APPS))
    print(f"{'':<14}" + "".join(f"{'records/calls/minimum':>26}" for _ in APPS))
    for phase in phases:
        cells = [
            f"{phase.written_records[a]}/{phase.write_requests[a]}/{phase.write_minimum[a]}" for a in APPS
        ]
        print(f"{phase.name:<14}" + "".join(f"{cell:>26}" for cell in cells))
    for phase in phases:
        calls, least = sum(phase.write_requests.values()), sum(phase.write_minimum.values())
        verdict = "equal (goal met)" if calls == least else f"{calls - least:+d} calls over the minimum"
        print(f"  {phase.name}: {calls} write calls for a minimum of {least}: {verdict}")


def timing_bench(args: argparse.Namespace) -> None:
    print(
        f"end-to-end sync: {args.people} people, seed {args.seed}, latency {args.latency_ms} ms per request, "
        f"gateway budget {args.gateway_rps}/s; pipeline budgets Maton {args.maton_rps}/s, "
        f"Linkflow {args.linkflow_rps}/s"
    )
    with Sandbox(args.people, args.seed) as sandbox, tempfile.TemporaryDirectory() as tmp:
        sandbox.configure(latency_ms=args.latency_ms, maton_rps=args.gateway_rps)
        settings = _settings(
            sandbox.env, f"sqlite:///{tmp}/warehouse.db", args.maton_rps, args.linkflow_rps, "on"
        )
        full = run_phase("full", sandbox, settings)
        print(f"  full run done in {full.seconds:.1f}s", flush=True)
        if args.settle:
            # The steady state: the run after a full one reads back the records the full run pushed to.
            settle = run_phase("settle", sandbox, settings)
            print(
                f"  settling run (reads our own pushes back): {settle.maton() + settle.linkflow()} requests, "
                f"{sum(settle.write_requests.values())} writes, {settle.seconds:.1f}s",
                flush=True,
            )
        contacts = _records_read(full, CONTACT_STREAMS)
        change = max(1, round(contacts * args.change / 100))
        new = deleted = change // 10
        mutated = sandbox.mutate(
            new=new,
            updated=change - new - deleted,
            deleted=deleted,
            events=max(1, round(_records_read(full, ("linkflow/event",)) * args.change / 100)),
            messages=max(1, round(_records_read(full, ("clicksend/sms",)) * args.change / 100)),
        )
        print(f"  changed {change} of {contacts} contact records at the sources ({args.change}%): {mutated}")
        incremental = run_phase("incremental", sandbox, settings)
        # Planning alone, on a second change of the same size: a run without push reads and resolves
        # it, then each destination is planned both ways on the same warehouse, one after another.
        sandbox.mutate(new=new, updated=change - new - deleted, deleted=deleted)
        run_phase("change, no push", sandbox, settings.model_copy(update={"contact_sync_push": "off"}))
        plans = time_plans(settings)
    print(
        "columns: requests per source as the emulator counted them (429s included); bound = "
        "max(maton/maton_rps, linkflow/linkflow_rps) with every request made taken as unavoidable; "
        "serial = the two summed; retries = the extract assets' retry counts (push assets report none)"
    )
    print_runs(full, incremental, args.maton_rps, args.linkflow_rps)
    print_writes((full, incremental))
    print_planning(full, incremental, plans)


def time_plans(settings: Any) -> dict[str, tuple[str, int, float, int, float]]:
    """Per destination, on the same warehouse: the plan a sync would make now (kind, records loaded,
    seconds) and a full plan (records, seconds). Plans are made and thrown away: nothing is recorded
    or sent. The settings are the sync's own, so the stored watermarks apply."""
    from models.warehouse.db import open_warehouse
    from pipelines.canonical import phone_regions
    from pipelines.clients import clients_for
    from pipelines.resources import WarehouseResource
    from pipelines.reverse_sync import WRITABLE_STREAMS, _plan, opt_out_lists, push_config

    engine = open_warehouse(settings.database_url)
    regions = phone_regions(settings, WarehouseResource(database_url=settings.database_url))
    with clients_for(settings, ("clicksend",)) as clients:
        config = push_config(settings, regions, opt_out_lists(clients))
    timed: dict[str, tuple[str, int, float, int, float]] = {}
    for stream in WRITABLE_STREAMS:
        _, now, _ = _plan(stream, engine, config, full_plan=False)
        _, whole, _ = _plan(stream, engine, config, full_plan=True)
        timed[stream.name] = (
            now.plan,
            now.targets_loaded,
            now.plan_seconds,
            whole.targets_loaded,
            whole.plan_seconds,
        )
    return timed


def print_planning(
    full: Phase, incremental: Phase, plans: Mapping[str, tuple[str, int, float, int, float]]
) -> None:
    print()
    print(
        "reverse-sync planning, records loaded / seconds (in a run: the destination's thread, beside others)"
    )
    print(
        f"{'destination':<24}{'first run':>14}{'incremental run':>18}{'alone: incremental':>24}{'full':>14}"
    )
    totals = [0.0, 0.0, 0.0, 0.0]
    for name, (kind, records, seconds, all_records, all_seconds) in plans.items():
        first = full.assets.get(f"reverse_sync/{name}", {})
        now = incremental.assets.get(f"reverse_sync/{name}", {})
        cells = (
            f"{first.get('targets_loaded', '-')}/{float(first.get('plan_seconds', 0)):.2f}",
            f"{now.get('targets_loaded', '-')}/{float(now.get('plan_seconds', 0)):.2f}",
            f"{kind} {records}/{seconds:.2f}",
            f"{all_records}/{all_seconds:.2f}",
        )
        totals[0] += float(first.get("plan_seconds", 0))
        totals[1] += float(now.get("plan_seconds", 0))
        totals[2] += seconds
        totals[3] += all_seconds
        print(f"{name:<24}{cells[0]:>14}{cells[1]:>18}{cells[2]:>24}{cells[3]:>14}")
    print(
        f"  planning seconds in all: first run {totals[0]:.2f}, incremental run {totals[1]:.2f}; "
        f"after another change, alone: incremental {totals[2]:.2f}, full {totals[3]:.2f}"
    )


def _max_rss_mib() -> float:
    """Peak resident set of this process; Linux reports KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(env: dict[str, str], database_url: str) -> dict[str, float]:
    """In a fresh process: the extract assets alone, then the whole job; peak RSS after each.

    Reverse sync runs as a dry run: it plans every write (the memory we want to see) without spending
    minutes sending them one request at a time.
    """
    import dagster as dg

    from pipelines.definitions import build_definitions
    from pipelines.extract import extract_assets
    from pipelines.runner import run_sync

    settings = _settings(env, database_url, 100_000.0, 100_000.0, "dry-run")
    result: dict[str, float] = {"imports": _max_rss_mib()}
    with dg.DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        extract = dg.materialize(
            extract_assets,
            resources=build_definitions(settings).resources,
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        result["extract_s"] = time.perf_counter() - started
        result["extract"] = _max_rss_mib()
        started = time.perf_counter()
        report = run_sync(settings, instance=instance)
        result["rest_s"] = time.perf_counter() - started
        result["full"] = _max_rss_mib()
        result["records"] = sum(
            int(meta.get("rows_read", 0) or 0)
            for event in extract.get_asset_materialization_events()
            for meta in [_metadata(event)]
        )
        result["ok"] = float(extract.success and report.success)
    return result


def _metadata(event: Any) -> dict[str, Any]:
    metadata = event.step_materialization_data.materialization.metadata
    return {key: getattr(value, "value", value) for key, value in metadata.items()}


def memory_bench(sizes: list[int], seed: int) -> None:
    print()
    print("peak RSS of the syncing process (MiB); emulator in its own process, no budget, no latency")
    print(f"{'people':>8}{'records':>9}{'imports':>9}{'extract':>9}{'full':>8}{'extract s':>11}{'rest s':>8}")
    context = get_context("spawn")
    for people in sizes:
        with Sandbox(people, seed) as sandbox, tempfile.TemporaryDirectory() as tmp:
            sandbox.configure(latency_ms=0, maton_rps=None)
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                peak = pool.submit(memory_child, sandbox.env, f"sqlite:///{tmp}/warehouse.db").result()
        print(
            f"{people:>8}{int(peak['records']):>9}{peak['imports']:>9.0f}{peak['extract']:>9.0f}"
            f"{peak['full']:>8.0f}{peak['extract_s']:>11.1f}{peak['rest_s']:>8.1f}"
            + ("" if peak["ok"] else "  FAILED"),
            flush=True,
        )


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=1000, help="people in the emulator for the timed runs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--settle",
        action="store_true",
        help="run one more sync after the full one, before the change, so the incremental run starts "
        "from the steady state (our own pushes already read back)",
    )
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added to every emulator answer")
    parser.add_argument("--gateway-rps", type=float, default=10.0, help="the emulated Maton gateway's limit")
    parser.add_argument("--maton-rps", type=float, default=9.5, help="CONTACT_SYNC_MATON_RPS for the runs")
    parser.add_argument("--linkflow-rps", type=float, default=5.0, help="CONTACT_SYNC_LINKFLOW_RPS")
    parser.add_argument("--change", type=float, default=1.0, help="percent of contact records changed")
    parser.add_argument(
        "--memory-people",
        type=_sizes,
        default=[],
        help="comma-separated N for the memory runs, e.g. 10000,30000",
    )
    parser.add_argument("--skip-timing", action="store_true", help="only the memory runs")
    args = parser.parse_args(argv)
    os.environ.pop("DAGSTER_HOME", None)
    if not args.skip_timing:
        timing_bench(args)
    if args.memory_people:
        memory_bench(args.memory_people, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
