import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.warehouse import worker_processes
from models.warehouse.worker_processes import available_processes, cpu_quota, map_in_processes


def pid_and_square(number: int) -> tuple[int, int]:
    return os.getpid(), number * number


def fails_on_three(number: int) -> int:
    if number == 3:
        raise ValueError("three is not welcome")
    return number


def children() -> set[int]:
    """This process's child processes now."""
    found: set[int] = set()
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        with open(f"/proc/{os.getpid()}/task/{task}/children") as listing:
            found.update(int(pid) for pid in listing.read().split())
    return found


def test_results_come_back_in_task_order_from_other_processes() -> None:
    results = list(map_in_processes(pid_and_square, list(range(12)), processes=2))
    assert [square for _, square in results] == [number * number for number in range(12)]
    assert os.getpid() not in {pid for pid, _ in results}


def test_one_process_or_one_task_runs_here() -> None:
    assert {pid for pid, _ in map_in_processes(pid_and_square, [1, 2, 3], processes=1)} == {os.getpid()}
    assert list(map_in_processes(pid_and_square, [4], processes=4)) == [(os.getpid(), 16)]
    assert list(map_in_processes(pid_and_square, [], processes=4)) == []


def test_a_task_that_fails_raises_here_and_the_workers_go() -> None:
    before = children()
    with pytest.raises(ValueError, match="three is not welcome") as raised:
        list(map_in_processes(fails_on_three, list(range(8)), processes=2))
    assert "in fails_on_three" in "".join(raised.value.__notes__)
    assert children() <= before


def test_stopping_between_results_ends_the_workers() -> None:
    """A stop raised while results come back (the rebuild's checkpoint) leaves no worker running."""
    before = children()
    results = map_in_processes(pid_and_square, list(range(50)), processes=2)

    def read_until_nine() -> None:
        for _, square in results:
            if square == 9:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        read_until_nine()
    assert children() != before
    results.close()
    assert children() <= before


def test_at_most_the_cpus_this_process_may_use(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_quota = tmp_path  # no cgroup files: no quota
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0})
    assert available_processes(no_quota) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(64)))
    assert available_processes(no_quota) == worker_processes.MAX_PROCESSES


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "100000 100000\n"}, 1),
        ({"cpu.max": "150000 100000\n"}, 2),
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),
        ({"cpu/cpu.cfs_quota_us": "garbage\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ],
)
def test_a_control_group_quota_caps_the_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, files: dict[str, str], quota: int | None
) -> None:
    """A container given one CPU of time on a host of 64 runs no workers beside its own process."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cpu_quota(tmp_path) == quota
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(64)))
    expected = worker_processes.MAX_PROCESSES if quota is None else min(quota, worker_processes.MAX_PROCESSES)
    assert available_processes(tmp_path) == expected


def prints_and_returns(number: int) -> int:
    print("a line of output that must not reach the results")
    return number + 1


def test_what_the_work_prints_does_not_mix_with_its_results(capfd: pytest.CaptureFixture[str]) -> None:
    assert list(map_in_processes(prints_and_returns, [1, 2, 3, 4], processes=2)) == [2, 3, 4, 5]
    assert "a line of output that must not reach the results" in capfd.readouterr().err


def dies(number: int) -> int:
    os._exit(3)


def test_a_worker_that_dies_is_said_with_its_exit_code() -> None:
    with pytest.raises(RuntimeError, match=r"ended without its result \(exit code 3\)"):
        list(map_in_processes(dies, [1, 2], processes=2))


def doubled(text: str) -> str:
    return text * 2


def test_tasks_and_results_larger_than_a_pipe_holds_do_not_stall() -> None:
    """A worker blocked handing over a large result while its next large task waits to be sent:
    the tasks go from threads of their own, so neither side waits on the other for ever."""
    texts = [str(number) * 300_000 for number in range(6)]
    assert list(map_in_processes(doubled, texts, processes=2)) == [text * 2 for text in texts]


def test_a_generator_of_large_tasks_is_drawn_as_the_workers_take_them() -> None:
    """Tasks carrying data are made as workers are ready for them, so the caller holds a few at a
    time: when the first result comes back, at most four of the ten have been made."""
    made: list[int] = []

    def tasks() -> Iterator[str]:
        for number in range(10):
            made.append(number)
            yield str(number) * 300_000

    results = map_in_processes(doubled, tasks(), processes=2)
    assert next(results) == "0" * 600_000
    assert len(made) <= 4
    assert [len(result) for result in results] == [600_000] * 9
    assert len(made) == 10
