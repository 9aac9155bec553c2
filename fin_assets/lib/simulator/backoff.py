"""How long the sensor waits before replacing a simulator that keeps failing (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class EndedRun:
    """What the backoff needs to know about one past run of a shard."""

    run_id: str
    failed: bool
    start_time: float | None  # unix seconds; None when it never started
    end_time: float | None


def consecutive_failures(runs_newest_first: Sequence[EndedRun], healthy_run_s: float) -> int:
    """Failed runs in a row, newest first, up to the first run that did not fail.

    A failed run that had lived at least `healthy_run_s` ends the streak too (it counts as one
    failure): a simulator that ran for hours and then crashed is replaced at once.
    """
    count = 0
    for run in runs_newest_first:
        if not run.failed:
            break
        count += 1
        if run.start_time and run.end_time and run.end_time - run.start_time >= healthy_run_s:
            break
    return count


def backoff_delay_s(failures: int, base_s: float, cap_s: float) -> float:
    """0 after none or one failure (replace at once), then base, 2*base, 4*base ... up to cap."""
    if failures <= 1:
        return 0.0
    return min(cap_s, base_s * 2 ** min(failures - 2, 30))


@dataclass(frozen=True)
class Backoff:
    failures: int
    delay_s: float
    last_failed_run_id: str | None
    retry_at: float  # unix seconds; 0 when there is nothing to wait for


def backoff(
    runs_newest_first: Sequence[EndedRun], base_s: float, cap_s: float, healthy_run_s: float
) -> Backoff:
    """The wait before the next launch, counted from the newest failed run's end."""
    failures = consecutive_failures(runs_newest_first, healthy_run_s)
    delay = backoff_delay_s(failures, base_s, cap_s)
    if not failures or not delay:
        return Backoff(failures, 0.0, runs_newest_first[0].run_id if failures else None, 0.0)
    newest = runs_newest_first[0]
    ended = newest.end_time or newest.start_time or 0.0
    return Backoff(failures, delay, newest.run_id, ended + delay)
