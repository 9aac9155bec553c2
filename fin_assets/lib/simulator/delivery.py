"""Delivery of events to Kafka with a bounded backlog and honest counts.

The producer is built in a background thread and rebuilt on failure, because kafka-python's
constructor blocks until a broker answers (and raises after its bootstrap timeout): the
simulator keeps generating and logging meanwhile. Events wait in a bounded backlog; once a
producer exists they go to it in order. Every event ends up in exactly one count:
acknowledged (broker confirmed), failed (the producer gave up on it),
dropped (backlog overflow) or unsent (still waiting when the run stopped). Once `close()`
has returned the counts are final: an event whose outcome is still unknown then (the broker
went away with it in flight) is counted failed, and a late acknowledgement changes nothing.

Outcomes are read from the producer's futures, in send order, by the thread that sends (after
each batch of sends, and while it waits between events), not counted by two callbacks per
record on the producer's I/O thread: at full speed those callbacks and their lock cost about
as much as building the event.

When a send blocks because the topic has no metadata (deleted while the run was producing),
the producer's `ensure_topic()` (when it has one: `KafkaProducerResource.connect()` returns
such a producer) runs in the background and re-creates the topic.

`connect()` raising `ConnectRefused` (a topic configured to delete the stream) is not retried:
the delivery records it in `refused` and the simulator stops.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from kafka.errors import KafkaTimeoutError

# Delays between connection attempts, in seconds; the last one repeats.
CONNECT_RETRY_DELAYS_S = (1.0, 2.0, 5.0, 10.0)
# At most one overflow warning per this many seconds (each says the running total).
OVERFLOW_REPORT_INTERVAL_S = 10.0
# How long closing the producer may take after the flush, before pending records are aborted.
CLOSE_TIMEOUT_S = 5.0
# At most one topic check (and re-creation) per this many seconds.
TOPIC_CHECK_INTERVAL_S = 5.0
# With the in-flight limit reached, the futures behind an unfinished one are also checked
# (records on other partitions may be done), at most once per this many seconds.
FULL_SETTLE_INTERVAL_S = 1.0
# With the in-flight limit reached and a producer connected, a send first waits this long for
# the oldest record (back-pressure, as a bare producer blocks on a full buffer) before the
# event goes to the backlog, whose overflow drops the oldest: generating faster than the broker
# acknowledges is slowed, not turned into drops; a broker that stopped answering costs at most
# this per batch (the default limit, 50,000 in flight, is far above any paced rate's need).
BACKPRESSURE_WAIT_S = 0.5


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


class ConnectRefused(Exception):
    """`connect()` can never succeed as things are configured: stop trying, say why."""


class EventDelivery:
    """Sends `(key, value)` records to one topic through a producer made by `connect()`.

    `connect` returns an object with kafka-python's `send(topic, key=, value=)` -> future
    (read: `is_done`, `exception`, `get(timeout)`), `flush(timeout)` and `close(timeout)`; it
    raises when no broker answers.
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
        self.log = log
        self._retry_delays_s = retry_delays_s
        # _send_lock guards the producer, the waiting queue, the in-flight futures and the
        # counts (the simulator's thread and the background connector both send).
        self._send_lock = threading.Lock()
        self._waiting: deque[tuple[bytes, bytes]] = deque()
        # The futures of records handed to the producer, oldest first, not yet counted.
        self._in_flight: deque[Any] = deque()
        self._next_full_settle = 0.0
        self._producer: Any = None
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._send_paused_until = 0.0
        self._last_overflow_report = -OVERFLOW_REPORT_INTERVAL_S
        self._last_failure_report = -OVERFLOW_REPORT_INTERVAL_S
        self._last_blocked_report = -OVERFLOW_REPORT_INTERVAL_S
        self._next_topic_check = 0.0
        self._topic_check: threading.Thread | None = None
        self.topics_recreated = 0
        self.counts = DeliveryCounts()
        self.last_error: str | None = None
        # Why connecting was given up for good (ConnectRefused), else None.
        self.refused: str | None = None

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
            except ConnectRefused as exc:  # retrying cannot help: stop, and say why once
                self.last_error = self.refused = str(exc)
                self.log("error", f"Not producing to Kafka: {exc}")
                return
            except Exception as exc:  # any failure to reach the cluster: retry, never crash
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = self._retry_delays_s[min(attempt, len(self._retry_delays_s) - 1)]
                attempt += 1
                self.log(
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
            self.log("info", f"Connected to Kafka; sending {backlog} backlogged events")
            return

    def close(self, flush_timeout_s: float = 30.0) -> DeliveryCounts:
        """Stops connecting, flushes what the producer holds, and settles every count.

        Never raises for Kafka's sake: whatever the broker does (gone, topic deleted), the
        counts come back final, with the undeliverable events counted failed or unsent.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        with self._send_lock:
            producer = self._producer
            if producer is not None:
                self._send_paused_until = 0.0
                self._pump_locked()
        if producer is not None:
            self._shut_down(producer, flush_timeout_s)
        with self._send_lock:
            self.counts.unsent += len(self._waiting)
            self._waiting.clear()
            self._settle_locked(everything=True)
            # Still in flight after the producer was closed: the outcome is unknown (the broker
            # may have stored them without answering); they count as failed, for good.
            unknown = len(self._in_flight)
            self.counts.failed += unknown
            self._in_flight.clear()
            counts = DeliveryCounts(**asdict(self.counts))
        # The final totals, whatever the rate limiting of the warnings above let through.
        if unknown:
            self.log(
                "warning",
                f"{unknown} events were still unacknowledged when the producer closed; counted"
                " failed (the broker may or may not have stored them)",
            )
        if counts.dropped:
            self.log(
                "warning",
                f"{counts.dropped} events dropped in total because the Kafka backlog was full"
                f" ({self.backlog_limit} events)",
            )
        if counts.unsent:
            self.log("warning", f"{counts.unsent} events never reached Kafka (run stopped)")
        if counts.failed:
            self.log(
                "warning",
                f"{counts.failed} events failed in total; last Kafka error: {self.last_error}",
            )
        return counts

    def _shut_down(self, producer: Any, flush_timeout_s: float) -> None:
        try:
            producer.flush(timeout=flush_timeout_s)
        except KafkaTimeoutError:
            self.log(
                "warning",
                f"Kafka flush did not finish in {flush_timeout_s:g} s; aborting"
                f" {self.backlog_size} unacknowledged events (counted failed)",
            )
            # close() would flush (and wait) once more before raising the same error.
            _force_close(producer)
            return
        except Exception as exc:  # e.g. the producer died with a fatal error
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.log("warning", f"Kafka flush failed: {self.last_error}")
        try:
            # Records still unacknowledged are aborted here: their futures fail (counted failed).
            producer.close(timeout=CLOSE_TIMEOUT_S)
        except Exception:
            # kafka-python 3's close() flushes first and, when records remain, raises
            # KafkaTimeoutError without closing: its I/O thread would keep them in flight.
            _force_close(producer)

    # -- sending ----------------------------------------------------------------------------

    @property
    def backlog_size(self) -> int:
        """Events not yet counted acknowledged or failed: waiting for a producer plus in flight."""
        return len(self._waiting) + len(self._in_flight)

    def submit(self, key: bytes, value: bytes) -> None:
        self.submit_many(((key, value),))

    def submit_many(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Takes the records in order; each ends up in exactly one count."""
        with self._send_lock:
            # Only this method writes `generated`, always under _send_lock.
            self.counts.generated += len(records)
            in_flight = self._in_flight
            if in_flight and in_flight[0].is_done:
                self._settle_locked()
            producer = self._producer
            if (
                producer is None
                or self._waiting
                or (self._send_paused_until and time.monotonic() < self._send_paused_until)
            ):
                self._queue_locked(records)
                return
            # The common case, kept short: nothing waiting and a producer ready.
            send, topic, limit = producer.send, self.topic, self.backlog_limit
            for index, (key, value) in enumerate(records):
                if len(in_flight) >= limit and not self._make_room_locked():
                    self._queue_locked(records[index:])
                    return
                try:
                    in_flight.append(send(topic, key=key, value=value))
                except Exception as exc:
                    if not self._on_send_error_locked(producer, exc):
                        self._queue_locked(records[index:])
                        return

    def pump(self) -> None:
        """Counts finished records and moves waiting events to the producer (called between
        events and when idle)."""
        with self._send_lock:
            self._settle_locked()
            self._pump_locked()

    def _make_room_locked(self) -> bool:
        """True once fewer than backlog_limit records are in flight, after waiting at most
        BACKPRESSURE_WAIT_S for the oldest one."""
        self._settle_locked(everything=True)
        in_flight = self._in_flight
        if len(in_flight) < self.backlog_limit:
            return True
        with contextlib.suppress(Exception):  # a failure is counted by the settling below
            in_flight[0].get(timeout=BACKPRESSURE_WAIT_S)
        self._settle_locked()
        return len(self._in_flight) < self.backlog_limit

    def _queue_locked(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        self._waiting.extend(records)
        self._enforce_backlog_limit_locked()
        self._pump_locked()

    def _settle_locked(self, everything: bool = False) -> None:
        """Counts the finished records at the front of the in-flight queue; with `everything`
        (at most once per FULL_SETTLE_INTERVAL_S unless closing) also those behind an
        unfinished one."""
        in_flight = self._in_flight
        acknowledged = 0
        while in_flight and in_flight[0].is_done:
            future = in_flight.popleft()
            if future.exception is None:
                acknowledged += 1
            else:
                self._count_failure(future.exception)
        self.counts.acknowledged += acknowledged
        if not everything or not in_flight:
            return
        now = time.monotonic()
        if not self._stop.is_set() and now < self._next_full_settle:
            return
        self._next_full_settle = now + FULL_SETTLE_INTERVAL_S
        unfinished = []
        for future in in_flight:
            if not future.is_done:
                unfinished.append(future)
            elif future.exception is None:
                self.counts.acknowledged += 1
            else:
                self._count_failure(future.exception)
        # In place: callers hold the deque.
        in_flight.clear()
        in_flight.extend(unfinished)

    def _enforce_backlog_limit_locked(self) -> None:
        # Drop the oldest waiting events: for a live feed the newest matter most, and the
        # order of what remains is preserved.
        dropped_now = 0
        while self._waiting and len(self._waiting) + len(self._in_flight) > self.backlog_limit:
            self._waiting.popleft()
            dropped_now += 1
        self.counts.dropped += dropped_now
        total_dropped = self.counts.dropped
        now = time.monotonic()
        if dropped_now and now - self._last_overflow_report >= OVERFLOW_REPORT_INTERVAL_S:
            self._last_overflow_report = now
            self.log(
                "warning",
                f"Kafka backlog full ({self.backlog_limit} events): {total_dropped} events"
                " dropped so far (they remain in the transactions log)",
            )

    def _pump_locked(self) -> None:
        producer = self._producer
        if producer is None or time.monotonic() < self._send_paused_until:
            return
        self._send_paused_until = 0.0
        waiting = self._waiting
        while waiting:
            key, value = waiting[0]
            if not self._send_one_locked(producer, key, value):
                return
            waiting.popleft()

    def _send_one_locked(self, producer: Any, key: bytes, value: bytes) -> bool:
        """Hands one event to the producer; False when it must wait (send blocked)."""
        try:
            self._in_flight.append(producer.send(self.topic, key=key, value=value))
        except Exception as exc:
            return self._on_send_error_locked(producer, exc)
        return True

    def _on_send_error_locked(self, producer: Any, exc: Exception) -> bool:
        """False when the event must wait (send blocked); True when it was counted failed."""
        if isinstance(exc, KafkaTimeoutError):
            # No metadata or no buffer space within max_block_ms: keep the event, try later.
            self._on_send_blocked(producer, exc)
            return False
        # Not retriable (e.g. record too large): count it.
        self.counts.failed += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.log("error", f"Kafka refused an event: {self.last_error}")
        return True

    def _on_send_blocked(self, producer: Any, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        self._send_paused_until = now + 1.0
        if now - self._last_blocked_report >= OVERFLOW_REPORT_INTERVAL_S:
            self._last_blocked_report = now
            self.log(
                "warning",
                f"Kafka send blocked ({self.last_error}); {self.backlog_size} events waiting;"
                " will retry",
            )
        # Missing metadata may mean the topic is gone: check it (and re-create it) aside.
        ensure_topic = getattr(producer, "ensure_topic", None)
        checking = self._topic_check is not None and self._topic_check.is_alive()
        if ensure_topic is None or checking or now < self._next_topic_check:
            return
        self._next_topic_check = now + TOPIC_CHECK_INTERVAL_S
        self._topic_check = threading.Thread(
            target=self._check_topic, args=(ensure_topic,), name="kafka-topic-check", daemon=True
        )
        self._topic_check.start()

    def _check_topic(self, ensure_topic: Callable[[], bool]) -> None:
        try:
            created = ensure_topic()
        except Exception as exc:  # broker unreachable, not authorised...: say so, keep going
            self.log(
                "warning",
                f"Could not check that topic {self.topic} exists: {type(exc).__name__}: {exc}",
            )
            return
        if created:
            self.topics_recreated += 1
            self.log(
                "warning",
                f"Topic {self.topic} did not exist any more (deleted while producing?):"
                " re-created it; sending resumes",
            )

    def _count_failure(self, exc: BaseException) -> None:
        self.counts.failed += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        # One line per burst, not per event: an expiring batch fails thousands at once.
        now = time.monotonic()
        if now - self._last_failure_report >= OVERFLOW_REPORT_INTERVAL_S:
            self._last_failure_report = now
            self.log(
                "error",
                f"Kafka did not deliver an event ({self.last_error});"
                f" {self.counts.failed} failed so far",
            )


def _force_close(producer: Any) -> None:
    """Aborts what a kafka-python producer still holds (errbacks fire) and closes it."""
    sender = getattr(producer, "_sender", None)
    if sender is not None and sender.is_alive():
        sender.force_close()
        sender.join(CLOSE_TIMEOUT_S)
    # Nothing more can be done if this fails too: the aborted records have been counted.
    with contextlib.suppress(Exception):
        producer.close(timeout=0)
