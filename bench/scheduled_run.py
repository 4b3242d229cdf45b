"""A scheduled run's cost: ``full_sync`` launched through a Dagster instance, as the schedule, the UI and
``dagster job launch`` run it, with each step in a process of its own (the multiprocess executor).

The other benchmarks time the CLI's run, which is one process. A run through an instance also pays,
for every step, a process that must be started and must load the code location before its first line
of work. This runs a first sync of ``--people`` people through the emulator (in this process), then
``--runs`` scheduled-style runs, each after ``--change`` percent of the people changed, and prints per
run the wall time, each step's time from the executor starting its process to its end, and how much
of that was the process starting (from Dagster's "starting step worker" event to the step's start,
and of that the part until the new process reported in: its fork and opening the instance).

    python bench/scheduled_run.py --people 2000 --runs 3
    git worktree add --detach /tmp/before HEAD~1
    python bench/scheduled_run.py --people 2000 --runs 4 --compare /tmp/before

``--compare TREE`` runs every other run with the project imported from ``TREE`` instead (the runs
alternate, starting with this checkout's), on the same warehouse and instance, so two versions' step
processes are timed side by side. ``--versus-cli`` alternates the other way: every other run is the
command line's (``run_sync``, every step in one process, as ``contact-sync sync`` runs them) on the same
instance, so the price of the step processes is read off one warehouse. Each run is a child process
(``--child``), as a run worker is.

``--full-speed`` lifts the APIs' pacing (the client's request budgets; the emulator adds no latency),
as ``bench/scale.py`` does, so a run measures our work rather than the gateway's budget;
``--database-url`` puts the warehouse on PostgreSQL (an empty database), where activity and reverse sync
run side by side in their step processes.

    python bench/scheduled_run.py --people 42000 --runs 4 --change 10 --full-speed --versus-cli
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
INSTANCE_YAML = "telemetry:\n  enabled: false\n"


def full_sync_job() -> Any:
    """The code location's ``full_sync`` job (a reconstructable target: each step process loads it)."""
    from pipelines.definitions import defs

    return defs.resolve_job_def("full_sync")


def child(cli: bool) -> int:
    """One run through the instance of ``DAGSTER_HOME`` (with ``cli``, the command line's run in this
    process); its figures as one JSON line on stdout."""
    import dagster as dg

    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        if cli:
            from pipelines.runner import run_sync
            from pipelines.settings import load_settings

            loggers = {"console": {"config": {"log_level": "WARNING"}}}
            result: Any = run_sync(load_settings(), instance=instance, loggers=loggers)
        else:
            result = dg.execute_job(dg.reconstructable(full_sync_job), instance=instance)
        wall = time.perf_counter() - started
        times: dict[str, dict[str, float]] = {}
        for entry in instance.all_logs(result.run_id):
            event = entry.dagster_event
            if event is not None and event.step_key is not None:
                times.setdefault(event.step_key, {}).setdefault(event.event_type_value, entry.timestamp)
    steps = {}
    for key, at in times.items():
        begun = at.get("STEP_WORKER_STARTING", at.get("STEP_START"))
        ended = at.get("STEP_SUCCESS", at.get("STEP_FAILURE"))
        if begun is None or ended is None or "STEP_START" not in at:
            continue
        started_up = at.get("STEP_WORKER_STARTED", at["STEP_START"])
        steps[key] = {
            "seconds": ended - begun,
            "starting": at["STEP_START"] - begun,
            "process": started_up - begun,
        }
    print(json.dumps({"success": result.success, "wall": wall, "steps": steps}))
    return 0


def run_once(tree: Path, env: dict[str, str], *, cli: bool = False) -> dict[str, Any]:
    """One run in a child process importing the project from ``tree`` (the command line's with ``cli``)."""
    path = os.pathsep.join(p for p in (str(tree), env.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, str(HERE / "scheduled_run.py"), "--child", *(["--cli"] if cli else [])],
        env={**env, "PYTHONPATH": path},
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"run in {tree} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(lines[-1])
    if not figures["success"]:
        raise SystemExit(f"run in {tree} did not succeed:\n{done.stderr[-3000:]}")
    return figures


def show(label: str, figures: dict[str, Any]) -> None:
    steps = figures["steps"]
    starting = [step["starting"] for step in steps.values()]
    print(
        f"{label:<28} wall {figures['wall']:5.1f} s | {len(steps)} steps, their processes starting "
        f"{sum(starting):5.1f} s in all (median {statistics.median(starting):.2f} s)"
    )
    for key, step in sorted(steps.items(), key=lambda item: item[1]["seconds"], reverse=True):
        print(
            f"    {key:<56} {step['seconds']:5.2f} s, of which starting {step['starting']:4.2f} s"
            f" (until the process reported {step.get('process', 0.0):4.2f} s)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3, help="runs after the first sync")
    parser.add_argument("--change", type=float, default=1.0, help="percent of people changed per run")
    parser.add_argument("--compare", type=Path, help="every other run with the project from this tree")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--versus-cli", action="store_true", help="every other run as the CLI runs it")
    parser.add_argument("--full-speed", action="store_true", help="no request pacing")
    parser.add_argument("--database-url", help="the warehouse (an empty database); default SQLite")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cli", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.cli)
    if args.compare is not None and args.versus_cli:
        parser.error("--compare and --versus-cli each take every other run; choose one")

    from connectors.emulator import running_emulator

    own = HERE.parent
    with tempfile.TemporaryDirectory() as home, running_emulator(seed=args.seed, people=args.people) as emu:
        Path(home, "dagster.yaml").write_text(INSTANCE_YAML)
        env = {
            **os.environ,
            **emu.env(),
            "DAGSTER_HOME": home,
            "CONTACT_SYNC_DATABASE_URL": args.database_url or f"sqlite:///{home}/warehouse.db",
        }
        if args.full_speed:
            env |= {"CONTACT_SYNC_MATON_RPS": "100000", "CONTACT_SYNC_LINKFLOW_RPS": "100000"}
        print(f"scheduled-style runs of full_sync, {args.people:,} people, {os.cpu_count()} cores")
        show("first sync", run_once(own, env))
        changed = max(1, round(args.people * args.change / 100))
        for number in range(args.runs):
            tree = args.compare if args.compare is not None and number % 2 else own
            cli = args.versus_cli and number % 2 == 1
            emu.mutate(seed=args.seed + number + 1, new=changed // 3, updated=changed - changed // 3)
            label = "CLI, one process" if cli else "compared" if tree != own else "this checkout"
            show(f"run {number + 1} ({label})", run_once(tree, env, cli=cli))
    return 0


if __name__ == "__main__":
    sys.exit(main())
