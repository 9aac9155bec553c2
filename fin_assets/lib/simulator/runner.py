"""The simulation loop: generate on schedule, log every event, hand it to Kafka delivery.

Shared by `fin-assets simulate` and the Dagster job; it knows neither argparse nor Dagster.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from fin_assets.lib.simulator.delivery import EventDelivery
from fin_assets.lib.simulator.events import EventGenerator
from fin_assets.lib.simulator.pacing import Pacer
from fin_assets.lib.simulator.transactions_log import TransactionLog

# The loop wakes at least this often while waiting for the next slot, so that stop requests,
# the duration limit and progress reports are handled promptly even at very low rates.
MAX_IDLE_S = 0.5
# Below this share of the requested rate the summary and the progress lines say that the
# machine cannot keep up (the pacer skips slots instead of bursting).
RATE_SHORTFALL_RATIO = 0.9
# At full speed events go in small batches: one log write(2) and one pass through the delivery
# for up to MAX_BATCH events whose slots fall within BATCH_WINDOW_S of the schedule. Below
# 1 / BATCH_WINDOW_S events/s every batch is one event, so pacing and latency are unchanged.
MAX_BATCH = 32
BATCH_WINDOW_S = 0.001


def batch_limit(rate_per_s: float) -> int:
    """Events per batch at most: the slots of BATCH_WINDOW_S, between 1 and MAX_BATCH."""
    return max(1, min(MAX_BATCH, int(rate_per_s * BATCH_WINDOW_S)))


@dataclass
class SimulationSummary:
    """What a run did; every field is a plain int/float/str (safe as Dagster metadata)."""

    generated: int = 0
    acknowledged: int = 0
    failed: int = 0
    dropped: int = 0
    unsent: int = 0
    pending: int = 0
    elapsed_s: float = 0.0
    schedule_resets: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    # The rate asked for, and how long events were generated (elapsed_s also covers the flush).
    requested_rate_per_s: float = 0.0
    generating_s: float = 0.0
    # Events that went to Kafka but could not be written to logs_transacciones.log.
    unlogged: int = 0
    log_error: str | None = None
    topics_recreated: int = 0
    # Kafka refused for good (e.g. a compacted topic): the run stopped producing at once.
    refused: str | None = None

    @property
    def generated_per_s(self) -> float:
        return self.generated / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def acknowledged_per_s(self) -> float:
        return self.acknowledged / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def achieved_rate_per_s(self) -> float:
        """Events generated per second of generating (the flush at the end not counted)."""
        return self.generated / self.generating_s if self.generating_s > 0 else 0.0

    @property
    def rate_shortfall(self) -> bool:
        """The machine did not reach the requested rate (judged after at least 1 s)."""
        return (
            self.requested_rate_per_s > 0
            and self.generating_s >= 1.0
            and self.achieved_rate_per_s < RATE_SHORTFALL_RATIO * self.requested_rate_per_s
        )

    @property
    def all_delivered(self) -> bool:
        return self.acknowledged == self.generated

    def describe(self) -> str:
        text = (
            f"generated={self.generated} acknowledged={self.acknowledged} failed={self.failed}"
            f" dropped={self.dropped} unsent={self.unsent} pending={self.pending}"
            f" in {self.elapsed_s:.1f} s ({self.generated_per_s:.1f} events/s)"
        )
        if self.rate_shortfall:
            text += (
                f"; BELOW THE REQUESTED RATE: achieved {self.achieved_rate_per_s:.0f} events/s"
                f" of {self.requested_rate_per_s:g} requested (this machine cannot keep up)"
            )
        if self.unlogged:
            text += f"; {self.unlogged} events not written to the transactions log"
        if self.topics_recreated:
            text += f"; topic re-created {self.topics_recreated}x"
        if self.refused:
            text += f"; STOPPED, Kafka refused: {self.refused}"
        return text


class NonFiniteValueError(ValueError):
    """An event carries NaN or Infinity, which JSON cannot represent."""


def encode_event(event: dict[str, Any]) -> tuple[bytes, bytes]:
    """Kafka key (the symbol: keeps each symbol's events in order on one partition) and value.

    orjson writes NaN and Infinity as null, silently: refuse them instead. Checking every
    field costs more than the encoding itself, so the fields are checked only when the output
    contains `null` at all (an api_error's http_status, or a NaN/Infinity turned into null).
    """
    value = orjson.dumps(event)
    if b"null" in value and any(
        type(field) is float and not math.isfinite(field) for field in event.values()
    ):
        raise NonFiniteValueError(_non_finite_description(event))
    return event["symbol"].encode(), value


def _non_finite_description(event: dict[str, Any]) -> str:
    fields = [
        f"{name}={value!r}"
        for name, value in event.items()
        if type(value) is float and not math.isfinite(value)
    ]
    return (
        f"event {event.get('event_id')} ({event.get('symbol')}, seq {event.get('seq')}) has"
        f" {', '.join(fields)}: JSON has no NaN or Infinity"
    )


def require_positive_finite(name: str, value: float) -> float:
    """`value` as a float, or ValueError naming `name` (NaN, inf, 0 and negatives refused)."""
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def _log_nothing(level: str, message: str) -> None:
    pass


class Simulator:
    def __init__(
        self,
        generator: EventGenerator,
        delivery: EventDelivery,
        transactions_log: TransactionLog,
        rate_per_s: float = 1.0,
        duration_s: float | None = None,
        flush_timeout_s: float = 30.0,
        progress_interval_s: float = 30.0,
        on_progress: Callable[[SimulationSummary], None] | None = None,
        stop: threading.Event | None = None,
        log: Callable[[str, str], None] | None = None,
    ) -> None:
        self.rate_per_s = require_positive_finite("rate_per_s", rate_per_s)
        self.duration_s = (
            None if duration_s is None else require_positive_finite("duration_s", duration_s)
        )
        if not (math.isfinite(flush_timeout_s) and flush_timeout_s >= 0):
            raise ValueError(f"flush_timeout_s must be finite and >= 0, got {flush_timeout_s!r}")
        self.generator = generator
        self.delivery = delivery
        self.transactions_log = transactions_log
        self.flush_timeout_s = flush_timeout_s
        self.progress_interval_s = require_positive_finite(
            "progress_interval_s", progress_interval_s
        )
        self.on_progress = on_progress
        # Status lines go where the delivery's go unless told otherwise.
        self.log = log or getattr(delivery, "log", _log_nothing)
        self.stop = stop or threading.Event()
        self.pacer = Pacer(self.rate_per_s, stop=self.stop)
        self.batch_limit = batch_limit(self.rate_per_s)
        self._by_type: Counter[str] = Counter()
        self._started = 0.0
        self._generation_ended: float | None = None
        self._unlogged = 0
        self._log_error: str | None = None
        self.summary = SimulationSummary(requested_rate_per_s=self.rate_per_s)

    def snapshot(self) -> SimulationSummary:
        counts = self.delivery.counts
        now = time.monotonic()
        generation_end = self._generation_ended or now
        return SimulationSummary(
            generated=counts.generated,
            acknowledged=counts.acknowledged,
            failed=counts.failed,
            dropped=counts.dropped,
            unsent=counts.unsent,
            pending=counts.pending,
            elapsed_s=round(now - self._started, 3) if self._started else 0.0,
            schedule_resets=self.pacer.resets,
            by_type=dict(self._by_type),
            last_error=self.delivery.last_error,
            requested_rate_per_s=self.rate_per_s,
            generating_s=round(generation_end - self._started, 3) if self._started else 0.0,
            unlogged=self._unlogged,
            log_error=self._log_error,
            topics_recreated=getattr(self.delivery, "topics_recreated", 0),
            refused=getattr(self.delivery, "refused", None),
        )

    def run(self) -> SimulationSummary:
        """Runs until `stop` is set, the duration is over, or an exception (e.g. Dagster's
        interruption) arrives; in every case flushes Kafka and settles the counts first."""
        self._started = time.monotonic()
        deadline = self._started + self.duration_s if self.duration_s else None
        next_progress = self._started + self.progress_interval_s
        self.delivery.start()
        stop, pacer, limit = self.stop, self.pacer, self.batch_limit
        delivery = self.delivery
        try:
            # One stop check per batch: at full speed microseconds before its first event
            # (a FencedStop check costs clock reads), after the wait otherwise.
            while not stop.is_set():
                if getattr(delivery, "refused", None):  # a compacted topic...: events would be lost
                    break
                count, wait = pacer.take_due(limit)
                if count:
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    self._emit(count)
                    next_progress = self._maybe_report(next_progress)
                    continue
                due_at = time.monotonic() + wait
                if deadline is not None and due_at >= deadline:
                    break
                # Wait in short steps: stay responsive to stop, progress and a late connection.
                remaining = wait
                while remaining > 0 and not stop.is_set():
                    if getattr(delivery, "refused", None):
                        break
                    stop.wait(min(remaining, MAX_IDLE_S))
                    self.delivery.pump()
                    next_progress = self._maybe_report(next_progress)
                    remaining = due_at - time.monotonic()
        finally:
            self._generation_ended = time.monotonic()
            try:
                self.delivery.close(self.flush_timeout_s)
            finally:
                self.transactions_log.close()
                self.summary = self.snapshot()
                self._report_end()
        return self.summary

    def _emit(self, count: int) -> None:
        """Generates `count` events, logs them (one write), then hands them to delivery."""
        next_event = self.generator.next_event
        events: list[dict[str, Any]] = []
        records: list[tuple[bytes, bytes]] = []
        try:
            for _ in range(count):
                event = next_event()
                # Encode before logging: the log never holds an event Kafka could not be given.
                records.append(encode_event(event))
                events.append(event)
        finally:
            # Also when an event failed to build: those before it are logged and sent.
            if events:
                self._log_and_submit(events, records)

    def _log_and_submit(
        self, events: list[dict[str, Any]], records: list[tuple[bytes, bytes]]
    ) -> None:
        # Log first: the lines exist even if Kafka never takes the events.
        logged = self.transactions_log.write_many(events)
        if logged < len(events):
            self._on_log_failure(len(events) - logged)
        self.delivery.submit_many(records)
        self._by_type.update([event["event_type"] for event in events])

    def _on_log_failure(self, unlogged: int) -> None:
        reported = self._unlogged > 0
        self._unlogged += unlogged
        if not reported:  # reported once; the total goes into the summary
            error = self.transactions_log.last_error
            self._log_error = f"{type(error).__name__}: {error}"
            self.log(
                "error",
                f"Cannot write the transactions log {self.transactions_log.path}"
                f" ({self._log_error}); events still go to Kafka, and the events not logged"
                " are counted (unlogged) in the summary",
            )

    def _report_end(self) -> None:
        summary = self.summary
        if summary.unlogged:
            self.log(
                "warning",
                f"{summary.unlogged} of {summary.generated} events were not written to"
                f" {self.transactions_log.path} ({summary.log_error})",
            )
        if summary.rate_shortfall:
            self.log(
                "warning",
                f"Requested {summary.requested_rate_per_s:g} events/s, achieved"
                f" {summary.achieved_rate_per_s:.0f}: this machine cannot keep up"
                f" ({summary.schedule_resets} schedule resets)",
            )

    def _maybe_report(self, next_progress: float) -> float:
        now = time.monotonic()
        if now < next_progress:
            return next_progress
        if self.on_progress is not None:
            self.on_progress(self.snapshot())
        return now + self.progress_interval_s
