"""A command-line run's steps in threads of its own process, as many at a time as the plan allows.

``execute_in_process`` runs one step after another. After identity resolution the plan has steps
that do not wait for each other: the three blocking checks, then activity linking beside reverse
sync. Their work is largely the warehouse's (SQLite's C code and a PostgreSQL server release the
interpreter while they work), so in threads they overlap where one after another they queue, and
the command line uses the second core the way a scheduled run's step processes do, without paying
for processes: the steps share the run's resources (one warehouse engine) and imported modules.

A scheduled run keeps its step processes (`pipelines.definitions.STEP_PROCESSES`). The steps were
already written for that: they run two at a time there, each opening its own connections, so none
assumes it is alone. On SQLite, which has one writer, activity and reverse sync stay one at a time in
both (`pipelines.overlap`).

This is built on Dagster's own pieces for running a plan (``ActiveExecution``, the step event
sequence the in-process executor uses), which are not public API: `tests/pipelines/test_step_threads.py`
runs the real job through it, so a Dagster upgrade that changes them fails there first.
"""

import os
import queue
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.compute_logs import create_compute_log_file_key
from dagster._core.execution.context.system import PlanExecutionContext, PlanOrchestrationContext
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.execute_in_process import core_execute_in_process, merge_run_tags
from dagster._core.execution.plan.execute_plan import dagster_event_sequence_for_step
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode
from dagster._core.executor.base import Executor

from connectors.stop import STOP
from pipelines.stopping import TERMINATED

#: Steps at a time, unless the caller says: all three checks together, then activity beside reverse
#: sync. Threads share one interpreter, so this is about waits overlapping, not cores.
MAX_CONCURRENT = 4

#: How long the run's thread waits for a step's event before it looks again for a step to start
#: (a step waiting out a retry's delay becomes ready without an event).
POLL_S = 0.2

_DONE = object()
"""A step's thread puts this last, when the step has yielded its final event."""


def execute_in_threads(
    job: dg.JobDefinition,
    *,
    run_config: Mapping[str, Any],
    instance: dg.DagsterInstance,
    run_id: str,
    tags: Mapping[str, str],
    max_concurrent: int | None = None,
    tag_concurrency_limits: list[dict[str, Any]] | None = None,
) -> dg.ExecuteInProcessResult:
    """``job.execute_in_process(..., raise_on_error=False)``, with its steps in threads.

    The result is the in-process one (events, outputs, success), built the same way: Dagster's
    ephemeral copy of the job (its default IO manager in memory), with this executor in place of the
    in-process one. ``tag_concurrency_limits`` are Dagster's (as for its multiprocess executor).
    """
    limit = max_concurrent or MAX_CONCURRENT
    ephemeral = job.as_ephemeral_job(resource_defs={}, input_values={}).with_executor_def(
        _executor(limit, tag_concurrency_limits or [])
    )
    return core_execute_in_process(
        job=InMemoryJob(job_def=ephemeral),
        run_config=run_config,
        instance=instance,
        output_capturing_enabled=True,
        raise_on_error=False,
        run_tags=merge_run_tags(
            job_def=job,
            partition_key=None,
            tags=tags,
            asset_selection=None,
            instance=instance,
            run_config=run_config,
        ),
        run_id=run_id,
        asset_selection=frozenset(),
    )


def _executor(max_concurrent: int, tag_concurrency_limits: list[dict[str, Any]]) -> dg.ExecutorDefinition:
    @dg.executor(name="step_threads")
    def step_threads(_: dg.InitExecutorContext) -> Executor:
        return StepThreadExecutor(max_concurrent, tag_concurrency_limits)

    return step_threads


class StepThreadExecutor(Executor):
    """The in-process executor's set-up (one plan context, the run's resources built once), with up
    to ``max_concurrent`` ready steps running at a time, each in a thread."""

    def __init__(self, max_concurrent: int, tag_concurrency_limits: list[dict[str, Any]]) -> None:
        self.max_concurrent = max_concurrent
        self.tag_concurrency_limits = tag_concurrency_limits

    @property
    def retries(self) -> RetryMode:
        return RetryMode.ENABLED

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        keys = execution_plan.step_keys_to_execute
        yield DagsterEvent.engine_event(
            plan_context,
            f"Executing steps in threads, up to {self.max_concurrent} at a time (pid: {os.getpid()})",
            event_specific_data=EngineEventData.in_process(os.getpid(), keys),
        )

        def steps(job_context: PlanExecutionContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
            # The run's output captured for the UI, once for the whole process, as in process.
            logs = job_context.instance.compute_log_manager
            log_key = logs.build_log_key_for_run(job_context.run_id, create_compute_log_file_key())  # type: ignore[no-untyped-call]
            with (
                InstanceConcurrencyContext(job_context.instance, job_context.dagster_run) as concurrency,
                logs.capture_logs(log_key) as log_context,
            ):
                yield DagsterEvent.capture_logs(job_context, keys, log_key, log_context)
                yield from _steps_in_threads(
                    job_context, execution_plan, concurrency, self.max_concurrent, self.tag_concurrency_limits
                )

        yield from ExecuteRunWithPlanIterable(
            execution_plan=plan_context.execution_plan,
            iterator=steps,
            execution_context_manager=PlanExecutionContextManager(
                job=plan_context.job,
                retry_mode=plan_context.retry_mode,
                execution_plan=plan_context.execution_plan,
                run_config=plan_context.run_config,
                dagster_run=plan_context.dagster_run,
                instance=plan_context.instance,
                raise_on_error=plan_context.raise_on_error,
                output_capture=plan_context.output_capture,
            ),
        )
        yield DagsterEvent.engine_event(
            plan_context,
            f"Finished steps in threads (pid: {os.getpid()})",
            event_specific_data=EngineEventData.in_process(os.getpid(), keys),
        )


def _steps_in_threads(
    job_context: PlanExecutionContext,
    plan: ExecutionPlan,
    concurrency: InstanceConcurrencyContext,
    max_concurrent: int,
    tag_concurrency_limits: list[dict[str, Any]],
) -> Iterator[DagsterEvent]:
    """Start each step as it becomes ready; hand their events on, in the order they come, from this
    thread, which alone keeps the plan's state.

    A step that raises (a stop ends a run with Dagster's interrupt) has its error raised here once
    every other running step has ended: a run never returns with a step still working in the
    background. An interrupt to this thread (Dagster's, while the run's thread waits) sets the stop
    flag and waits the same way, as `pipelines.stopping.run_in_threads` does inside a step.
    """
    events: queue.Queue[tuple[str, object]] = queue.Queue()
    with plan.start(
        retry_mode=job_context.retry_mode,
        max_concurrent=max_concurrent,
        tag_concurrency_limits=tag_concurrency_limits,
        instance_concurrency_context=concurrency,
        step_dependency_config=job_context.step_dependency_config,
    ) as active:
        running: set[str] = set()
        raised: BaseException | None = None
        while running or (raised is None and not active.is_complete):
            if raised is None:
                for step in active.get_steps_to_execute(limit=max_concurrent - len(running)):
                    step_context = job_context.for_step(step, active.get_known_state())
                    running.add(step.key)
                    threading.Thread(
                        target=_run_step,
                        args=(step.key, step_context, events),
                        name=f"step {step.key}",
                        daemon=True,
                    ).start()
                yield from active.concurrency_event_iterator(job_context)
            if not running:
                active.sleep_til_ready()
                continue
            try:
                key, item = events.get(timeout=POLL_S)
            except queue.Empty:
                continue
            except (DagsterExecutionInterruptedError, KeyboardInterrupt) as interrupt:
                STOP.request(TERMINATED)
                raised = raised or interrupt
                continue
            if isinstance(item, DagsterEvent):
                yield item
                active.handle_event(item)
            elif item is _DONE:
                running.discard(key)
                active.verify_complete(job_context, key)
                yield from active.plan_events_iterator(job_context)
            else:
                assert isinstance(item, BaseException)
                running.discard(key)
                raised = raised or item
        if raised is not None:
            raise raised


def _run_step(key: str, step_context: Any, events: "queue.Queue[tuple[str, object]]") -> None:
    """One step's events onto the queue, then ``_DONE``, or the error that ended it."""
    try:
        for event in dagster_event_sequence_for_step(step_context):
            events.put((key, event))
    except BaseException as error:  # handed to the run's thread, which raises it
        events.put((key, error))
        return
    events.put((key, _DONE))
