"""The simulator run's fence: a run that is no longer the live simulator of its shard stops
producing at once, even if it missed the news while paused (SIGSTOP, a suspended machine).

The verdict is a pure function of what the run storage says; `RunFence` asks the storage and
`FencedStop` is the stop event the simulator loop already polls before every event: it
re-checks the fence itself whenever the last check is older than a few seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dagster as dg
from dagster import DagsterRunStatus, RunsFilter

from fin_assets.defs.simulator.specs import JOB_NAME, SHARD_TAG

# Statuses in which a run may produce. CANCELING is left to Dagster's own termination (the run
# then ends CANCELED with its counts recorded); FAILURE, CANCELED etc. mean someone else (the
# sensor, a user) has declared this run over.
PRODUCING_STATUSES = (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED)
NOT_FENCED_STATUSES = (*PRODUCING_STATUSES, DagsterRunStatus.CANCELING)


@dataclass(frozen=True)
class RunState:
    run_id: str
    status: DagsterRunStatus
    storage_id: int


def fence_verdict(own: RunState | None, live_in_shard: Sequence[RunState]) -> str | None:
    """Why this run must stop producing, or None while it is the live simulator of its shard.

    `live_in_shard`: the shard's runs that are STARTING or STARTED. The newest one wins: a run
    that the concurrency guard let start, or one started outside the queue, replaces older ones.
    """
    if own is None:
        return "its run record no longer exists"
    if own.status not in NOT_FENCED_STATUSES:
        return f"its run is now {own.status.value} in the run storage (replaced or terminated)"
    newer = [r for r in live_in_shard if r.storage_id > own.storage_id and r.run_id != own.run_id]
    if newer:
        newest = max(newer, key=lambda r: r.storage_id)
        return f"a newer simulator run of its shard, {newest.run_id}, is {newest.status.value}"
    return None


def shard_of(run: dg.DagsterRun) -> str:
    return run.tags.get(SHARD_TAG) or "0"


class RunFence:
    """Asks the instance's run storage whether `run_id` is still its shard's live simulator."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, shard: str) -> None:
        self.instance = instance
        self.run_id = run_id
        self.shard = shard

    def check(self) -> str | None:
        record = self.instance.get_run_record_by_id(self.run_id)
        own = (
            RunState(record.dagster_run.run_id, record.dagster_run.status, record.storage_id)
            if record
            else None
        )
        live = self.instance.get_run_records(
            RunsFilter(job_name=JOB_NAME, statuses=list(PRODUCING_STATUSES)), limit=50
        )
        in_shard = [
            RunState(r.dagster_run.run_id, r.dagster_run.status, r.storage_id)
            for r in live
            if shard_of(r.dagster_run) == self.shard
        ]
        return fence_verdict(own, in_shard)


class FencedStop(threading.Event):
    """A stop event that also reports set once the fence says "stop".

    `verify()` is called about every second by the op's main thread. The simulator loop calls
    `is_set()` before each event; if the last successful verification is older than
    `max_unverified_s` (by the monotonic or the wall clock: a SIGSTOPped process sees its
    monotonic clock jump, a suspended machine its wall clock), `is_set()` verifies first, so a
    resumed process never sends an event before it knows it may.
    """

    def __init__(
        self,
        check: Callable[[], str | None],
        max_unverified_s: float = 3.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        retries: int = 3,
        retry_pause_s: float = 0.2,
    ) -> None:
        super().__init__()
        self._check = check
        self.max_unverified_s = max_unverified_s
        self._monotonic = monotonic
        self._wall = wall
        self._retries = retries
        self._retry_pause_s = retry_pause_s
        self._verified = (monotonic(), wall())
        self.reason: str | None = None
        self.last_error: Exception | None = None
        self.checks = 0

    def unverified_for(self) -> float:
        mono, wall = self._verified
        return max(self._monotonic() - mono, self._wall() - wall)

    def verify(self) -> str | None:
        """One check; returns the reason to stop (and sets the event) or None. A storage error
        is kept in `last_error` and raised."""
        before = (self._monotonic(), self._wall())
        self.checks += 1
        reason = self._check()
        if reason:
            self.fence(reason)
        else:
            self._verified = before
        return reason

    def fence(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.set()

    def is_set(self) -> bool:
        if super().is_set():
            return True
        if self.unverified_for() > self.max_unverified_s:
            self._verify_now()
        return super().is_set()

    def _verify_now(self) -> None:
        for attempt in range(self._retries):
            try:
                self.verify()
                return
            except Exception as exc:  # the storage is busy or gone: retry, then stop safely
                self.last_error = exc
                if attempt + 1 < self._retries:
                    time.sleep(self._retry_pause_s)
        self.fence(
            f"it could not confirm it is still the live simulator after"
            f" {self.unverified_for():.0f} s without a check ({self.last_error})"
        )
