"""The simulation loop: generate on schedule, log every event, hand it to Kafka delivery.

Shared by `fin-assets simulate` and the Dagster job; it knows neither argparse nor Dagster.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fin_assets.simulator.delivery import EventDelivery
from fin_assets.simulator.events import EventGenerator
from fin_assets.simulator.pacing import Pacer
from fin_assets.simulator.transactions_log import TransactionLog

# The loop wakes at least this often while waiting for the next slot, so that stop requests,
# the duration limit and progress reports are handled promptly even at very low rates.
MAX_IDLE_S = 0.5


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

    @property
    def generated_per_s(self) -> float:
        return self.generated / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def acknowledged_per_s(self) -> float:
        return self.acknowledged / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def all_delivered(self) -> bool:
        return self.acknowledged == self.generated

    def describe(self) -> str:
        return (
            f"generated={self.generated} acknowledged={self.acknowledged} failed={self.failed}"
            f" dropped={self.dropped} unsent={self.unsent} pending={self.pending}"
            f" in {self.elapsed_s:.1f} s ({self.generated_per_s:.1f} events/s)"
        )


def encode_event(event: dict[str, Any]) -> tuple[bytes, bytes]:
    """Kafka key (the symbol: keeps each symbol's events in order on one partition) and value."""
    value = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return event["symbol"].encode(), value.encode()


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
    ) -> None:
        self.generator = generator
        self.delivery = delivery
        self.transactions_log = transactions_log
        self.duration_s = duration_s
        self.flush_timeout_s = flush_timeout_s
        self.progress_interval_s = progress_interval_s
        self.on_progress = on_progress
        self.stop = stop or threading.Event()
        self.pacer = Pacer(rate_per_s, stop=self.stop)
        self._by_type: Counter[str] = Counter()
        self._started = 0.0
        self.summary = SimulationSummary()

    def snapshot(self) -> SimulationSummary:
        counts = self.delivery.counts
        return SimulationSummary(
            generated=counts.generated,
            acknowledged=counts.acknowledged,
            failed=counts.failed,
            dropped=counts.dropped,
            unsent=counts.unsent,
            pending=counts.pending,
            elapsed_s=round(time.monotonic() - self._started, 3) if self._started else 0.0,
            schedule_resets=self.pacer.resets,
            by_type=dict(self._by_type),
            last_error=self.delivery.last_error,
        )

    def run(self) -> SimulationSummary:
        """Runs until `stop` is set, the duration is over, or an exception (e.g. Dagster's
        interruption) arrives; in every case flushes Kafka and settles the counts first."""
        self._started = time.monotonic()
        deadline = self._started + self.duration_s if self.duration_s else None
        next_progress = self._started + self.progress_interval_s
        self.delivery.start()
        try:
            while not self.stop.is_set():
                due_at = time.monotonic() + self.pacer.seconds_until_due()
                if deadline is not None and due_at >= deadline:
                    break
                # Wait in short steps: stay responsive to stop, progress and a late connection.
                while (remaining := due_at - time.monotonic()) > 0 and not self.stop.is_set():
                    self.stop.wait(min(remaining, MAX_IDLE_S))
                    self.delivery.pump()
                    next_progress = self._maybe_report(next_progress)
                if self.stop.is_set():
                    break
                self._emit_one()
                next_progress = self._maybe_report(next_progress)
        finally:
            self.delivery.close(self.flush_timeout_s)
            self.transactions_log.close()
            self.summary = self.snapshot()
        return self.summary

    def _emit_one(self) -> None:
        event = self.generator.next_event()
        # Log first: the line exists even if Kafka never takes the event.
        self.transactions_log.write(event)
        key, value = encode_event(event)
        self.delivery.submit(key, value)
        self._by_type[event["event_type"]] += 1

    def _maybe_report(self, next_progress: float) -> float:
        now = time.monotonic()
        if now < next_progress:
            return next_progress
        if self.on_progress is not None:
            self.on_progress(self.snapshot())
        return now + self.progress_interval_s
