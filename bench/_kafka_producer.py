"""One measured producer configuration (the child of bench_kafka.py and bench_sim_steady.py).

Variants:
- sim: the product's simulator (EventGenerator -> TransactionLog line -> encode_event ->
  EventDelivery -> kafka-python KafkaProducer from KafkaProducerResource), assembled as
  `fin_assets.defs.simulator.session.build_simulator` does, except that the producer is created
  (and has sent one warm-up record) before the clock starts, so that connection set-up is not
  counted as throughput.
- kafka-python: a bare KafkaProducer, the product's producer settings (acks=all, idempotent),
  sending pre-generated simulator events (same keys, same bytes) as fast as it can.
- confluent: a bare confluent_kafka.Producer (librdkafka), acks=all, idempotent, same records.

The bare producers count acknowledgements in delivery callbacks; the simulator's counts
are its own (EventDelivery reads the futures). Throughput = acknowledged / (time from the
first send until flush() returned). `--rate` paces the sim variant (the steady-state runs);
`--latency` records send-to-acknowledgement latency per event and the emission times.

Prints one JSON line.
"""

from __future__ import annotations

import sys

if "--no-crc32c" in sys.argv:
    # kafka-python picks its CRC-32C implementation at import time: hide the C package so
    # that it falls back to pure Python, as in an install without the [crc32c] extra.
    sys.modules["crc32c"] = None  # type: ignore[assignment]

import argparse  # noqa: E402
import atexit  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

from fin_assets.defs.resources.kafka import KafkaProducerResource  # noqa: E402
from fin_assets.lib.simulator.events import EventGenerator  # noqa: E402
from fin_assets.lib.simulator.runner import encode_event  # noqa: E402

POOL = 10_000


def scratch_dir(args: argparse.Namespace, prefix: str) -> Path:
    """--data-dir, or a temporary folder removed when the process exits (the transactions log
    of a full-speed run is tens of MB)."""
    if args.data_dir:
        return Path(args.data_dir)
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)
    return path


def rss_mib(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def records(symbols: list[str], count: int) -> list[tuple[bytes, bytes]]:
    """Real simulator events, encoded as the simulator encodes them."""
    generator = EventGenerator(
        symbols, dict.fromkeys(symbols, 250.0), run_id=f"cli-{uuid.uuid4()}", seed=7
    )
    return [encode_event(generator.next_event()) for _ in range(count)]


def resource(args: argparse.Namespace) -> KafkaProducerResource:
    return KafkaProducerResource(
        bootstrap_servers=args.bootstrap,
        topic=args.topic,
        partitions=args.partitions,
        linger_ms=args.linger_ms,
        batch_size=args.batch_size,
        compression_type=args.compression,
    )


class Acks:
    def __init__(self, latency: bool) -> None:
        self.ok = 0
        self.failed = 0
        self.latency = latency
        self.latencies_ms: list[float] = []

    def callback_for(self, sent_at: float):
        def on_ok(*_args) -> None:
            self.ok += 1
            self.latencies_ms.append((time.perf_counter() - sent_at) * 1000)

        return on_ok

    def on_ok(self, *_args) -> None:
        self.ok += 1

    def on_failed(self, *_args) -> None:
        self.failed += 1


def run_kafka_python(args: argparse.Namespace) -> dict:
    from kafka import KafkaProducer

    kafka = resource(args)
    kafka.ensure_topic()
    producer = KafkaProducer(**kafka.producer_config())
    pool = records(args.symbols.split(","), POOL)
    producer.send(args.topic, key=pool[0][0], value=pool[0][1]).get(timeout=30)  # warm-up
    acks = Acks(False)
    send, topic = producer.send, args.topic
    source = itertools.cycle(pool)
    if args.generate:  # decomposition: the simulator's generation and log line, inline
        source = generated_records(args)
    cpu_started = time.process_time()
    started = time.perf_counter()
    deadline = started + args.duration
    sent = 0
    for key, value in source:
        future = send(topic, key=key, value=value)
        future.add_callback(acks.on_ok)
        future.add_errback(acks.on_failed)
        sent += 1
        if sent % 100 == 0 and time.perf_counter() >= deadline:
            break
    producer.flush()
    ended = time.perf_counter()
    cpu_s = time.process_time() - cpu_started
    producer.close()
    return {
        "sent": sent,
        "acknowledged": acks.ok,
        "failed": acks.failed,
        "seconds": ended - started,
        "sending_cpu_s": cpu_s,
    }


def generated_records(args: argparse.Namespace):
    """Records made per send, as the simulator makes them (event, optional log line, JSON)."""
    from fin_assets.lib.simulator.transactions_log import TransactionLog

    symbols = args.symbols.split(",")
    generator = EventGenerator(
        symbols, dict.fromkeys(symbols, 250.0), run_id=f"cli-{uuid.uuid4()}", seed=args.seed
    )
    log = None
    if args.generate == "event+log":
        data_dir = scratch_dir(args, "fin-bench-gen-")
        log = TransactionLog(data_dir / "logs_transacciones.log")
    while True:
        event = generator.next_event()
        if log is not None:
            log.write(event)
        yield encode_event(event)


def run_confluent(args: argparse.Namespace) -> dict:
    from confluent_kafka import KafkaException, Producer

    kafka = resource(args)
    kafka.ensure_topic()
    config = {
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": args.linger_ms,
        "batch.size": args.batch_size,
        "compression.type": args.compression or "none",
        "client.id": "fin_assets-bench",
    }
    producer = Producer(config)
    pool = records(args.symbols.split(","), POOL)
    acks = Acks(False)

    def on_delivery(error, _message) -> None:
        if error is None:
            acks.ok += 1
        else:
            acks.failed += 1

    producer.produce(args.topic, key=pool[0][0], value=pool[0][1])
    if producer.flush(30) != 0:
        raise KafkaException("warm-up record not delivered")
    acks.ok = 0
    produce, poll, topic = producer.produce, producer.poll, args.topic
    cpu_started = time.process_time()
    started = time.perf_counter()
    deadline = started + args.duration
    sent = 0
    for key, value in itertools.cycle(pool):
        while True:
            try:
                produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:  # the local queue is full: serve callbacks, then retry
                poll(0.01)
        sent += 1
        if sent % 100 == 0:
            poll(0)
            if time.perf_counter() >= deadline:
                break
    producer.flush()
    ended = time.perf_counter()
    return {
        "sent": sent,
        "acknowledged": acks.ok,
        "failed": acks.failed,
        "seconds": ended - started,
        "sending_cpu_s": time.process_time() - cpu_started,
    }


class InstrumentedProducer:
    """Wraps the product's KafkaProducer: passes send/flush/close through, and in latency mode
    times each record from send() to its acknowledgement callback."""

    def __init__(self, producer, acks: Acks) -> None:
        self._producer = producer
        self._acks = acks
        self.flushed_at: float | None = None
        if not acks.latency:
            self.send = producer.send  # no extra layer when only throughput counts

    def send(self, topic, key=None, value=None):
        sent_at = time.perf_counter()
        future = self._producer.send(topic, key=key, value=value)
        future.add_callback(self._acks.callback_for(sent_at))
        return future

    def flush(self, timeout=None):
        self._producer.flush(timeout=timeout)
        self.flushed_at = time.perf_counter()

    def close(self, timeout=None):
        self._producer.close(timeout=timeout)


# ids-without-syscall and buffered-log, measured before commit d82ca98, are gone: the first is
# now the product (event ids from an in-process source), the second no longer applies (the
# transactions log writes each line with one os.write and no Python buffer).
WHAT_IFS = ("confluent-backend",)


class _DeliveryFuture:
    """kafka-python's future surface over a librdkafka delivery report: add_callback /
    add_errback, and is_done / exception / get(timeout), which EventDelivery reads."""

    __slots__ = ("_ok", "_err", "_poll", "is_done", "exception", "value")

    def __init__(self, poll) -> None:
        self._ok: list = []
        self._err: list = []
        self._poll = poll
        self.is_done = False
        self.exception = None
        self.value = None

    def add_callback(self, fn) -> None:
        if self.is_done:  # reported before the callback was attached
            if self.exception is None:
                fn(self.value)
            return
        self._ok.append(fn)

    def add_errback(self, fn) -> None:
        if self.is_done:
            if self.exception is not None:
                fn(self.exception)
            return
        self._err.append(fn)

    def get(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_done:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"not delivered within {timeout} s")
            self._poll(0.01)
        if self.exception is not None:
            raise RuntimeError(str(self.exception))
        return self.value

    def report(self, error, message) -> None:
        if error is None:
            self.value = message
        else:
            self.exception = RuntimeError(str(error))
        self.is_done = True
        for fn in self._ok if error is None else self._err:
            fn(message if error is None else self.exception)


class ConfluentBackend:
    """What-if: confluent-kafka behind the interface EventDelivery uses (send -> future, flush,
    close). Delivery reports are served by poll(0) after each send and by flush()."""

    def __init__(self, args: argparse.Namespace) -> None:
        from confluent_kafka import Producer

        self._producer = Producer(
            {
                "bootstrap.servers": args.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": args.linger_ms,
                "batch.size": args.batch_size,
                "compression.type": args.compression or "none",
            }
        )

    def send(self, topic, key=None, value=None):
        future = _DeliveryFuture(self._producer.poll)
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, on_delivery=future.report)
                break
            except BufferError:
                self._producer.poll(0.01)
        self._producer.poll(0)
        return future

    def flush(self, timeout=None):
        self._producer.flush(timeout if timeout is not None else -1)

    def close(self, timeout=None):
        self._producer.flush(timeout if timeout is not None else -1)


def run_sim(args: argparse.Namespace) -> dict:
    from fin_assets.lib.simulator.delivery import EventDelivery
    from fin_assets.lib.simulator.prices import start_prices
    from fin_assets.lib.simulator.runner import Simulator
    from fin_assets.lib.simulator.transactions_log import TransactionLog

    kafka = resource(args)
    kafka.ensure_topic()
    if "confluent-backend" in args.what_if:
        producer = ConfluentBackend(args)
        producer.send(args.topic, key=b"warm-up", value=b"{}")
        producer.flush(30)
    else:
        producer = kafka.create_producer()
        producer.send(args.topic, key=b"warm-up", value=b"{}").get(timeout=30)
    acks = Acks(args.latency)
    instrumented = InstrumentedProducer(producer, acks)
    data_dir = scratch_dir(args, "fin-bench-sim-")
    symbols = args.symbols.split(",")
    generator = EventGenerator(
        symbols=symbols,
        start_prices=start_prices(symbols, data_dir / "Datos_financieros.csv"),
        run_id=f"cli-{uuid.uuid4()}",
        seed=args.seed,
    )
    emitted: list[float] = []
    if args.latency:
        next_event = generator.next_event

        def timed_next_event(now=None):
            emitted.append(time.monotonic())
            return next_event(now)

        generator.next_event = timed_next_event
    delivery = EventDelivery(topic=args.topic, connect=lambda: instrumented)
    transactions_log = TransactionLog(data_dir / "logs_transacciones.log")
    simulator = Simulator(
        generator=generator,
        delivery=delivery,
        transactions_log=transactions_log,
        rate_per_s=args.rate,
        duration_s=args.duration,
    )
    samples: list[tuple[float, float]] = []
    stop_sampling = threading.Event()

    def sample_rss() -> None:
        begin = time.monotonic()
        while not stop_sampling.is_set():
            samples.append((round(time.monotonic() - begin, 1), rss_mib()))
            stop_sampling.wait(args.rss_interval)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    if args.rss_interval:
        sampler.start()
    cpu_started = time.process_time()
    started = time.perf_counter()
    summary = simulator.run()
    ended = instrumented.flushed_at or time.perf_counter()
    cpu_s = time.process_time() - cpu_started
    stop_sampling.set()
    result = {
        "pending": summary.pending,
        "sent": summary.generated,
        "acknowledged": summary.acknowledged,
        "failed": summary.failed,
        "dropped": summary.dropped,
        "unsent": summary.unsent,
        "schedule_resets": summary.schedule_resets,
        "seconds": ended - started,
        "sending_cpu_s": cpu_s,
        "run_elapsed_s": summary.elapsed_s,
    }
    if args.latency:
        lat = acks.latencies_ms
        interval = 1.0 / args.rate
        drift = [(t - emitted[0]) - i * interval for i, t in enumerate(emitted)]
        gaps = [b - a for a, b in itertools.pairwise(emitted)]
        result.update(
            {
                "latency_ms": {
                    "n": len(lat),
                    "p50": percentile(lat, 50),
                    "p90": percentile(lat, 90),
                    "p99": percentile(lat, 99),
                    "max": max(lat) if lat else None,
                    "mean": statistics.fmean(lat) if lat else None,
                },
                "drift_ms": {
                    "p50": percentile([abs(d) * 1000 for d in drift], 50),
                    "p99": percentile([abs(d) * 1000 for d in drift], 99),
                    "max": max(abs(d) for d in drift) * 1000 if drift else None,
                    "final": drift[-1] * 1000 if drift else None,
                },
                "interval_ms": {
                    "min": min(gaps) * 1000 if gaps else None,
                    "max": max(gaps) * 1000 if gaps else None,
                },
            }
        )
    if samples:
        result["rss_samples"] = samples
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", choices=("sim", "kafka-python", "confluent"), required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1e9, help="sim: events/s (default: max)")
    parser.add_argument("--symbols", default="TSLA")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--linger-ms", type=int, default=5, help="product default 5")
    parser.add_argument("--batch-size", type=int, default=16384, help="product default 16384")
    parser.add_argument("--compression", default=None)
    parser.add_argument("--no-crc32c", action="store_true")
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--rss-interval", type=float, default=0.0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--generate",
        choices=("event", "event+log"),
        help="kafka-python: generate each record inline instead of cycling a pool",
    )
    parser.add_argument("--what-if", action="append", default=[], choices=WHAT_IFS)
    args = parser.parse_args()
    if args.compression in ("", "none"):
        args.compression = None

    from kafka.record import util

    runner = {"sim": run_sim, "kafka-python": run_kafka_python, "confluent": run_confluent}
    result = runner[args.variant](args)
    result["rate_per_s"] = result["acknowledged"] / result["seconds"]
    # Less sensitive to other people's load than the rate: what each record costs this process
    # (all its threads) while sending; a starved process is slow, not more expensive.
    result["per_cpu_s"] = result["acknowledged"] / max(result["sending_cpu_s"], 1e-9)
    result["crc32c"] = "C" if util._crc32c is not util.crc32c_py else "pure Python"
    result["peak_rss_mib"] = rss_mib("VmHWM")
    print(json.dumps(result))
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
