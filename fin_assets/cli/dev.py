"""`fin-assets dev`: `dagster dev` in its own process group, and a shutdown that stops
everything it started, the simulator's run workers included.

Measured with dagster 1.13 on Linux: the run worker is a multiprocessing child of the code
server, in dagster dev's process group; stopping only the `dagster dev` process leaves it
producing. So on SIGTERM/SIGINT/SIGHUP we (1) cancel live simulator runs through the instance
(graceful: the op flushes Kafka and records its counts), (2) SIGTERM the whole group, twice
(dagster dev may restart its code server during the first), (3) SIGKILL what is left of the
group and of our descendants (this process is a child subreaper, so descendants that left the
group are reparented here), (4) mark simulator runs that were killed CANCELED, so that the next
start replaces them at once instead of waiting for the stale-heartbeat limit.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from fin_assets.lib.processes import stat_fields

PR_SET_CHILD_SUBREAPER = 36
RUN_STOP_TIMEOUT_S = 40.0
GROUP_STOP_TIMEOUT_S = 20.0


class StopRequested(Exception):
    """Raised in the main thread by the stop-signal handler."""


def become_subreaper() -> bool:
    """Orphaned descendants get reparented to this process (Linux), so none can escape."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def live_processes() -> dict[int, tuple[int, int]]:
    """{pid: (ppid, pgid)} of every non-zombie process, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields and fields[0] != "Z":
                found[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return found


def descendants(root: int, processes: dict[int, tuple[int, int]] | None = None) -> set[int]:
    processes = live_processes() if processes is None else processes
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def remaining(pgid: int, root: int) -> set[int]:
    """Live processes of the group `pgid` and descendants of `root` (ourselves)."""
    processes = live_processes()
    in_group = {pid for pid, (_, group) in processes.items() if group == pgid}
    return (in_group | descendants(root, processes)) - {root}


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _wait_gone(pgid: int, timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while True:
        _reap()
        left = remaining(pgid, os.getpid())
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def stop_tree(process: subprocess.Popen, timeout: float = GROUP_STOP_TIMEOUT_S) -> set[int]:
    """SIGTERM the group (twice), then SIGKILL what is left; returns the pids SIGKILLed."""
    pgid = process.pid
    for _ in range(2):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        if not _wait_gone(pgid, timeout / 2):
            return set()
    killed = remaining(pgid, os.getpid())
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    for pid in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_gone(pgid, 10)
    return killed


def cancel_simulator_runs(instance, timeout: float, log: Callable[[str], None]) -> list[str]:
    """Cancel every live simulator run through the run coordinator; wait until they ended.
    Returns the ids of those still not finished at the deadline."""
    from dagster import RunsFilter

    from fin_assets.defs.simulator.sensor import LIVE_STATUSES
    from fin_assets.defs.simulator.specs import JOB_NAME
    from fin_assets.defs.simulator.workers import is_stopped, kill_local_worker, local_worker_pid

    runs = instance.get_runs(RunsFilter(job_name=JOB_NAME, statuses=LIVE_STATUSES), limit=100)
    for run in runs:
        log(f"fin-assets dev: terminating simulator run {run.run_id} ({run.status.value})")
        pid = local_worker_pid(run)
        if pid is not None and is_stopped(pid):
            # Asking the code server to terminate a paused worker blocks the code server
            # (fin_assets/defs/simulator/workers.py); the group kill below ends it.
            log(f"fin-assets dev: run {run.run_id}'s worker {pid} is paused; killing it")
            kill_local_worker(run)
            continue
        try:
            instance.run_coordinator.cancel_run(run.run_id)
        except Exception as exc:  # its code server is gone: the group kill below stops it
            log(f"fin-assets dev: could not terminate run {run.run_id}: {exc}")
    deadline = time.monotonic() + timeout
    pending = [run.run_id for run in runs]
    while pending and time.monotonic() < deadline:
        time.sleep(0.5)
        pending = [
            run_id
            for run_id in pending
            if (run := instance.get_run_by_id(run_id)) is not None and not run.is_finished
        ]
    return pending


def mark_killed_runs_canceled(
    instance, shutdown_started: float, log: Callable[[str], None]
) -> list[str]:
    """After the whole tree is gone, no simulator run can still be running: mark those the
    storage still shows running CANCELED (one whose worker ignored the termination), and those
    the sensor queued during the shutdown, so the next start replaces them at once. A run that
    was already waiting in the queue before (a user's launch) stays queued."""
    from dagster import DagsterRunStatus, RunsFilter

    from fin_assets.defs.simulator.specs import JOB_NAME

    running = [
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
        DagsterRunStatus.CANCELING,
    ]
    records = instance.get_run_records(
        RunsFilter(job_name=JOB_NAME, statuses=[*running, DagsterRunStatus.QUEUED]), limit=100
    )
    runs = [
        r.dagster_run
        for r in records
        if r.dagster_run.status in running or r.create_timestamp.timestamp() >= shutdown_started
    ]
    for run in runs:
        log(f"fin-assets dev: run {run.run_id} ({run.status.value}) left over; canceled")
        instance.report_run_canceled(
            run, message="fin-assets dev stopped: its worker (if any) was killed with dagster dev."
        )
    return [run.run_id for run in runs]


def _default_stop_signals() -> None:
    # A parent started in the background hands down "ignore SIGINT", and dagster dev then
    # ignores SIGINT and SIGTERM: give it default dispositions.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_dagster_dev(command: list[str], log: Callable[[str], None]) -> int:
    """Runs `command` (dagster dev) until it exits or we get SIGTERM/SIGINT/SIGHUP; then stops
    everything it started. Returns its exit code (0 after a requested stop)."""
    import dagster as dg

    become_subreaper()

    def request_stop(signum, _frame):
        raise StopRequested(signal.Signals(signum).name)

    previous = {
        s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    }
    ui = subprocess.Popen(command, start_new_session=True, preexec_fn=_default_stop_signals)
    try:
        try:
            code = ui.wait()
            reason = f"dagster dev exited with {code}"
        except StopRequested as stop:
            code, reason = 0, f"{stop} received"
        # Further stop signals must not interrupt the shutdown itself (it has deadlines).
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        shutdown_started = time.time()
        log(f"fin-assets dev: {reason}; stopping the simulator runs, then dagster dev")
        with dg.DagsterInstance.get() as instance:
            cancel_simulator_runs(instance, RUN_STOP_TIMEOUT_S, log)
            killed = stop_tree(ui)
            if killed:
                log(f"fin-assets dev: SIGKILLed {sorted(killed)} after SIGTERM was not enough")
            mark_killed_runs_canceled(instance, shutdown_started, log)
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
