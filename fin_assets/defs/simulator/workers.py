"""Finding and stopping a simulator run's worker process on this host, by its identity.

Measured with dagster 1.13 under `dagster dev`: `DefaultRunLauncher.terminate` of a run whose
worker is paused (SIGSTOP) blocks inside the code server (it sets a multiprocessing event whose
lock the paused worker may hold), the code server then cannot start the replacement run, and
the sensor tick times out after 60 s. A stale run's worker is therefore stopped here, with
SIGKILL (which also ends a stopped process), when it runs on this host; the run's own fence
covers a worker elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket

import dagster as dg

from fin_assets.lib.processes import stat_fields

# "<host>:<pid>:<start time in clock ticks since boot>", stamped by the op when it starts; the
# start time tells a reused pid from the worker itself.
WORKER_TAG = "fin_assets/worker"


def process_start_ticks(pid: int) -> str | None:
    fields = stat_fields(pid)
    return fields[19] if fields else None  # field 22 of stat; 3 fields precede `state`


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{process_start_ticks(os.getpid())}"


def local_worker_pid(run: dg.DagsterRun) -> int | None:
    """The pid of the run's worker if it is alive on this host and is the same process."""
    host, _, rest = (run.tags.get(WORKER_TAG) or "").partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    fields = stat_fields(pid)
    if not fields or fields[0] == "Z" or fields[19] != started:
        return None
    return pid


def is_stopped(pid: int) -> bool:
    fields = stat_fields(pid)
    return bool(fields) and fields[0] in ("T", "t")


def kill_local_worker(run: dg.DagsterRun) -> int | None:
    """SIGKILL the run's worker when it is a live process on this host; returns its pid."""
    pid = local_worker_pid(run)
    if pid is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return pid
