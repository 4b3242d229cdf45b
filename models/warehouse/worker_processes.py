"""Run independent pieces of CPU-bound work in worker processes, results back in task order.

A full rebuild spends most of its time in Python reading slices of raw records, parsing their
payloads and normalising their values, one slice after another on one core, though no slice needs
another. Threads cannot share that work (the GIL), so the slices go to worker processes.

A worker is a new interpreter running this module (``python -m models.warehouse.worker_processes``),
not a fork: a sync's process runs threads that use SQLite (Dagster's run storage, the terminate
watch), and a fork taken while one of them holds one of SQLite's process-wide mutexes (its
allocator's, with memory statistics on, as by default) leaves the child waiting on it for ever. Nor
is it one of ``multiprocessing``'s spawned processes: those first import the program's main module
again (for the CLI, Dagster and everything else, about 2 s more), and fail in a program that calls a
rebuild without an ``if __name__ == "__main__"`` guard. A worker imports only what its tasks need
(about 1 s), so a caller sends work here only when it outweighs that.

Each task goes to a worker pickled with the callable that runs it (defined at module level), and its
result or exception comes back pickled, on the worker's standard output (whatever the work prints
goes to standard error). A thread deals the tasks round robin, each as soon as its worker's pipe
takes it, and results are read in task order. A worker opens its own database connections, so
every task reads in its own transaction: callers give tasks that do not need one snapshot between
them (disjoint ranges of records).
"""

import math
import os
import pickle
import queue
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Sized
from pathlib import Path
from typing import IO, Any, TypeVar

Task = TypeVar("Task")
Result = TypeVar("Result")

#: The most worker processes a map uses: each holds the imported code and a task's working set
#: beside the caller's memory, so more would add memory faster than this machine's cores add speed.
MAX_PROCESSES = 4


_CGROUPS = Path("/sys/fs/cgroup")


def available_processes(cgroups: Path = _CGROUPS) -> int:
    """The CPUs this process may use, at most `MAX_PROCESSES`: those it may run on (its affinity,
    not the machine's count), fewer where its control group's CPU quota allows less time than that.

    A container is often given a quota (``docker run --cpus 1``) on a host whose every CPU it may
    run on: counted by affinity, it would start workers that only share the one CPU of time it has,
    each holding its own memory."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = cpu_quota(cgroups)
    if quota is not None:
        cpus = min(cpus, quota)
    return max(1, min(cpus, MAX_PROCESSES))


def cpu_quota(cgroups: Path = _CGROUPS) -> int | None:
    """The CPUs' worth of time this process's control group may use per period, rounded up (None:
    no quota, or none to be read): cgroup v2's ``cpu.max`` ("150000 100000" is 2; "max 100000" is
    none), else v1's ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us`` (a quota of -1 is none)."""
    try:
        quota, _, period = (cgroups / "cpu.max").read_text().strip().partition(" ")
    except OSError:
        try:
            quota = (cgroups / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroups / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        allowed, every = int(quota), int(period)
    except ValueError:  # "max": no quota
        return None
    if allowed <= 0 or every <= 0:
        return None
    return max(1, math.ceil(allowed / every))


def map_in_processes(
    work: Callable[[Task], Result], tasks: Iterable[Task], *, processes: int
) -> Iterator[Result]:
    """``work`` of every task, in task order, by up to ``processes`` worker processes (here, one
    after another, with fewer than two). A task's exception is raised here; the workers are
    stopped when the iteration ends or is abandoned (a stop raised between results).

    ``tasks`` may be a generator: each task is made only when a worker is ready for it, so a caller
    whose tasks carry data (slices of a frame) holds a few at a time, not all of them."""
    count = min(processes, len(tasks)) if isinstance(tasks, Sized) else processes
    if count < 2:
        yield from map(work, tasks)
        return
    workers = [_start() for _ in range(count)]
    sent: queue.SimpleQueue[int | BaseException | None] = queue.SimpleQueue()
    feeder = threading.Thread(target=_feed, args=(workers, work, tasks, sent), daemon=True)
    try:
        feeder.start()
        while (item := sent.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield _receive(workers[item])
    finally:
        for worker in workers:
            _stop(worker)
        feeder.join()


def _feed(
    workers: "list[subprocess.Popen[bytes]]",
    work: Callable[[Task], Result],
    tasks: Iterable[Task],
    sent: "queue.SimpleQueue[int | BaseException | None]",
) -> None:
    """Send the tasks round robin, each as soon as its worker's pipe takes it, and say in ``sent``
    which worker has each (None after the last; an exception where making or sending one failed).

    A thread of its own: a task larger than a pipe holds waits for its worker to read it, and
    meanwhile the caller must go on reading results, or a worker waiting to hand one over and the
    caller waiting to hand it a task would wait on each other for ever."""
    try:
        for number, task in enumerate(tasks):
            worker = number % len(workers)
            _send(workers[worker], (work, task))
            sent.put(worker)
    except BaseException as error:  # handed to the caller, raised there (unless it has stopped)
        sent.put(error)
        return
    sent.put(None)


def _start() -> "subprocess.Popen[bytes]":
    """A worker, finding the code where this process finds it."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(path or os.curdir for path in sys.path)}
    return subprocess.Popen(  # noqa: S603 - this interpreter running this module, no outside input
        [sys.executable, "-m", __name__],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=environment,
    )


def _send(worker: "subprocess.Popen[bytes]", message: Any) -> None:
    stdin: IO[bytes] = worker.stdin  # type: ignore[assignment]
    pickle.dump(message, stdin, protocol=pickle.HIGHEST_PROTOCOL)
    stdin.flush()


def _receive(worker: "subprocess.Popen[bytes]") -> Any:
    """The next result of ``worker``, or its task's exception raised."""
    try:
        # Written by the worker this process started, on its own pipe.
        failed, value = pickle.load(worker.stdout)  # type: ignore[arg-type]  # noqa: S301
    except EOFError:
        raise RuntimeError(f"a worker process ended without its result (exit code {worker.wait()})") from None
    if failed:
        raise value
    return value


def _stop(worker: "subprocess.Popen[bytes]") -> None:
    """End ``worker`` at once, done or not: it only reads, so it holds nothing worth waiting for."""
    worker.kill()
    worker.wait()
    for stream in (worker.stdin, worker.stdout):
        if stream:
            stream.close()


def _serve(tasks: IO[bytes], results: IO[bytes]) -> None:
    """In a worker: run each task read from ``tasks`` until they end, each result or exception
    written to ``results``."""
    while True:
        try:
            work, task = pickle.load(tasks)  # noqa: S301 - from the process that started this one
        except EOFError:
            return
        try:
            outcome: tuple[bool, Any] = (False, work(task))
        except Exception as error:  # handed to the caller, raised there with where it was raised
            error.add_note(f"raised in a worker process:\n{traceback.format_exc()}")
            outcome = (True, error)
        try:
            data = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # an exception or result that cannot be pickled: said as text
            data = pickle.dumps((True, RuntimeError(f"{type(error).__name__}: {error}")))
        results.write(data)
        results.flush()


if __name__ == "__main__":
    # Results go on the real standard output; anything the work prints goes to standard error.
    results = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(sys.stdin.buffer, results)
