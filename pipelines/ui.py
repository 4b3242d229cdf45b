"""``contact-sync ui``: the Dagster webserver and daemon, as ``dagster dev`` starts them, stopped by the
first Ctrl-C within a few seconds.

``dagster dev`` shuts its services down one after another and waits for each code server's own grace
period, 10 to 15 s here after Ctrl-C (and it ignores the signal outright when started in the
background of a script, where SIGINT is ignored). This command starts the two services itself, each
in a process group of its own, and on the first SIGINT or SIGTERM sends SIGTERM to both groups at
once: a run in progress hears it as Dagster's interrupt and stops as a sync stops (no new request,
the run canceled). Whatever is still alive after ``GRACE_S`` is killed; a second signal kills at once.
Nothing of the warehouse depends on these processes ending gracefully.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

GRACE_S = 5.0
"""How long the services get to end after SIGTERM before they are killed."""


def _bin(name: str) -> str:
    """The executable installed beside this Python (the venv's), else whatever PATH finds."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else name


def code_location_args(cwd: Path) -> list[str]:
    """The repository's ``workspace.yaml`` where it is (location ``contact_sync``), else the module."""
    workspace = cwd / "workspace.yaml"
    if workspace.exists():
        return ["-w", str(workspace)]
    return ["-m", "pipelines.definitions", "-a", "defs"]


@dataclass
class Services:
    """The service processes and the signal that stops them."""

    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    signal: int | None = None
    killed: bool = False

    def signal_groups(self, signum: int) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):  # ended between the poll and the signal
                    os.killpg(process.pid, signum)

    def alive(self) -> list[str]:
        return [name for name, process in self.processes.items() if process.poll() is None]

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for every service to end; True when they all did."""
        deadline = time.monotonic() + seconds
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.alive()

    def reap_groups(self) -> None:
        """Kill what is left of each group (code servers, orphan watchers), ended or not."""
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes.values():
            process.wait()


def run_ui(
    *,
    host: str,
    port: int,
    daemon: bool = True,
    echo: Callable[[str], None],
    cwd: Path | None = None,
    grace_s: float = GRACE_S,
) -> int:
    """Serve the UI (and the daemon) until SIGINT or SIGTERM; returns 128 + that signal's number, or 1
    when a service ends by itself (its output, on this terminal, says why)."""
    cwd = cwd or Path.cwd()
    env = dict(os.environ)
    if not env.get("DAGSTER_HOME"):
        home = cwd / ".dagster_home"
        home.mkdir(exist_ok=True)
        env["DAGSTER_HOME"] = str(home)
    # Both services would create a fresh instance's tables at once, and one of them fails on it
    # ("table ... already exists"); created here first, as ``dagster dev`` does.
    import dagster as dg

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]):
        pass
    location = code_location_args(cwd)
    commands: dict[str, Sequence[str]] = {
        "webserver": [_bin("dagster-webserver"), *location, "-h", host, "-p", str(port)],
    }
    if daemon:
        commands["daemon"] = [_bin("dagster-daemon"), "run", *location]
    services = Services()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if services.signal is None:
            services.signal = signum
            echo(
                f"contact-sync ui: {name}: stopping the UI and daemon (a run in progress is canceled); "
                f"{'Ctrl-C' if signum == signal.SIGINT else 'the signal'} again kills them at once"
            )
            services.signal_groups(signal.SIGTERM)
        else:
            services.killed = True
            services.signal_groups(signal.SIGKILL)

    from pipelines.cli import handled_signals

    previous = {sig: signal.signal(sig, on_signal) for sig in handled_signals()}
    try:
        for name, command in commands.items():
            # A group of its own: the terminal's Ctrl-C reaches this process only, which then stops
            # the services together instead of each on its own schedule.
            services.processes[name] = subprocess.Popen(  # noqa: S603 (our own fixed command)
                command, cwd=cwd, env=env, start_new_session=True
            )
        echo(
            f"contact-sync ui: http://{host}:{port} (DAGSTER_HOME={env['DAGSTER_HOME']}"
            f"{', with the daemon' if daemon else ''}); Ctrl-C stops it"
        )
        while services.signal is None and len(services.alive()) == len(services.processes):
            time.sleep(0.2)
        if services.signal is None:  # a service ended by itself
            ended = [name for name in services.processes if name not in services.alive()]
            services.signal_groups(signal.SIGTERM)
            services.wait(grace_s)
            services.reap_groups()
            echo(f"contact-sync ui: the {', '.join(ended)} ended by itself; stopped the rest")
            return 1
        clean = services.wait(grace_s)
        services.reap_groups()
        name = signal.Signals(services.signal).name
        how = "killed" if services.killed or not clean else "stopped"
        echo(f"contact-sync ui: {how} by {name}")
        return 128 + services.signal
    finally:
        if services.processes:
            services.reap_groups()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
