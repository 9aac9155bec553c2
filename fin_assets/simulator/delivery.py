"""Delivery of events to Kafka with a bounded backlog and honest counts.

The producer is built in a background thread and rebuilt on failure, because kafka-python's
constructor blocks until a broker answers (and raises after its bootstrap timeout): the
simulator keeps generating and logging meanwhile. Events wait in a bounded backlog; once a
producer exists they go to it in order. Every event ends up in exactly one count:
acknowledged (broker confirmed, delivery callback), failed (the producer gave up on it),
dropped (backlog overflow) or unsent (still waiting when the run stopped).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from kafka.errors import KafkaTimeoutError

# Delays between connection attempts, in seconds; the last one repeats.
CONNECT_RETRY_DELAYS_S = (1.0, 2.0, 5.0, 10.0)
# At most one overflow warning per this many seconds (each says the running total).
OVERFLOW_REPORT_INTERVAL_S = 10.0


@dataclass
class DeliveryCounts:
    generated: int = 0
    acknowledged: int = 0
    failed: int = 0
    dropped: int = 0
    unsent: int = 0

    @property
    def pending(self) -> int:
        """Generated but not yet settled (waiting or in flight)."""
        return self.generated - self.acknowledged - self.failed - self.dropped - self.unsent

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "pending": self.pending}


def _log_nothing(level: str, message: str) -> None:
    pass


class EventDelivery:
    """Sends `(key, value)` records to one topic through a producer made by `connect()`.

    `connect` returns an object with kafka-python's `send(topic, key=, value=)` -> future,
    `flush(timeout)` and `close(timeout)`; it raises when no broker answers.
    `log(level, message)` receives status lines (level: "info" / "warning" / "error").
    """

    def __init__(
        self,
        topic: str,
        connect: Callable[[], Any],
        backlog_limit: int = 50_000,
        log: Callable[[str, str], None] = _log_nothing,
        retry_delays_s: tuple[float, ...] = CONNECT_RETRY_DELAYS_S,
    ) -> None:
        if backlog_limit < 1:
            raise ValueError("backlog_limit must be >= 1")
        self.topic = topic
        self.backlog_limit = backlog_limit
        self._connect = connect
        self._log = log
        self._retry_delays_s = retry_delays_s
        # _send_lock guards the producer and the waiting queue; _counts_lock guards the counts.
        # Two locks because delivery callbacks run on the producer's I/O thread while the main
        # thread may be blocked inside producer.send() holding _send_lock.
        self._send_lock = threading.Lock()
        self._counts_lock = threading.Lock()
        self._waiting: deque[tuple[bytes, bytes]] = deque()
        self._in_flight = 0
        self._producer: Any = None
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._send_paused_until = 0.0
        self._last_overflow_report = -OVERFLOW_REPORT_INTERVAL_S
        self._last_failure_report = -OVERFLOW_REPORT_INTERVAL_S
        self.counts = DeliveryCounts()
        self.last_error: str | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._connect_loop, name="kafka-connect", daemon=True
        )
        self._thread.start()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def _connect_loop(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                producer = self._connect()
            except Exception as exc:  # any failure to reach the cluster: retry, never crash
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = self._retry_delays_s[min(attempt, len(self._retry_delays_s) - 1)]
                attempt += 1
                self._log(
                    "warning",
                    f"Kafka not reachable ({self.last_error}); {self.backlog_size} events waiting"
                    f" in the backlog; retrying in {delay:g} s",
                )
                self._stop.wait(delay)
                continue
            with self._send_lock:
                if self._stop.is_set():  # the run ended while we were connecting
                    producer.close(timeout=1)
                    return
                self._producer = producer
                self._connected.set()
                backlog = len(self._waiting)
                self._pump_locked()
            self._log("info", f"Connected to Kafka; sending {backlog} backlogged events")
            return

    def close(self, flush_timeout_s: float = 30.0) -> DeliveryCounts:
        """Stops connecting, flushes what the producer holds, and settles every count."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        with self._send_lock:
            producer = self._producer
            if producer is not None:
                self._send_paused_until = 0.0
                self._pump_locked()
        if producer is not None:
            try:
                producer.flush(timeout=flush_timeout_s)
            except KafkaTimeoutError:
                self._log("warning", f"Kafka flush did not finish in {flush_timeout_s:g} s")
            # Records still unacknowledged are aborted here and reach their errbacks (failed).
            producer.close(timeout=5)
        with self._send_lock, self._counts_lock:
            self.counts.unsent += len(self._waiting)
            self._waiting.clear()
            counts = DeliveryCounts(**asdict(self.counts))
        # The final totals, whatever the rate limiting of the warnings above let through.
        if counts.dropped:
            self._log(
                "warning",
                f"{counts.dropped} events dropped in total because the Kafka backlog was full"
                f" ({self.backlog_limit} events)",
            )
        if counts.unsent:
            self._log("warning", f"{counts.unsent} events never reached Kafka (run stopped)")
        return self.counts

    # -- sending ----------------------------------------------------------------------------

    @property
    def backlog_size(self) -> int:
        """Events not yet acknowledged or failed: waiting for a producer plus in flight."""
        with self._counts_lock:
            return len(self._waiting) + self._in_flight

    def submit(self, key: bytes, value: bytes) -> None:
        with self._send_lock:
            with self._counts_lock:
                self.counts.generated += 1
            self._waiting.append((key, value))
            self._enforce_backlog_limit_locked()
            self._pump_locked()

    def pump(self) -> None:
        """Moves waiting events to the producer (called between events and when idle)."""
        with self._send_lock:
            self._pump_locked()

    def _enforce_backlog_limit_locked(self) -> None:
        # Drop the oldest waiting events: for a live feed the newest matter most, and the
        # order of what remains is preserved.
        with self._counts_lock:
            dropped_now = 0
            while self._waiting and len(self._waiting) + self._in_flight > self.backlog_limit:
                self._waiting.popleft()
                dropped_now += 1
            self.counts.dropped += dropped_now
            total_dropped = self.counts.dropped
        now = time.monotonic()
        if dropped_now and now - self._last_overflow_report >= OVERFLOW_REPORT_INTERVAL_S:
            self._last_overflow_report = now
            self._log(
                "warning",
                f"Kafka backlog full ({self.backlog_limit} events): {total_dropped} events"
                " dropped so far (they remain in the transactions log)",
            )

    def _pump_locked(self) -> None:
        producer = self._producer
        if producer is None or time.monotonic() < self._send_paused_until:
            return
        while self._waiting:
            key, value = self._waiting[0]
            try:
                future = producer.send(self.topic, key=key, value=value)
            except KafkaTimeoutError as exc:
                # No metadata or no buffer space within max_block_ms: keep the event, try later.
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._send_paused_until = time.monotonic() + 1.0
                self._log("warning", f"Kafka send blocked ({self.last_error}); will retry")
                return
            except Exception as exc:  # not retriable (e.g. record too large): count it
                self._waiting.popleft()
                with self._counts_lock:
                    self.counts.failed += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._log("error", f"Kafka refused an event: {self.last_error}")
                continue
            self._waiting.popleft()
            with self._counts_lock:
                self._in_flight += 1
            future.add_callback(self._on_acknowledged)
            future.add_errback(self._on_failed)

    def _on_acknowledged(self, _metadata: Any) -> None:
        with self._counts_lock:
            self._in_flight -= 1
            self.counts.acknowledged += 1

    def _on_failed(self, exc: BaseException) -> None:
        with self._counts_lock:
            self._in_flight -= 1
            self.counts.failed += 1
            total_failed = self.counts.failed
        self.last_error = f"{type(exc).__name__}: {exc}"
        # One line per burst, not per event: an expiring batch fails thousands at once.
        now = time.monotonic()
        if now - self._last_failure_report >= OVERFLOW_REPORT_INTERVAL_S:
            self._last_failure_report = now
            self._log(
                "error",
                f"Kafka did not deliver an event ({self.last_error}); {total_failed} failed so far",
            )
