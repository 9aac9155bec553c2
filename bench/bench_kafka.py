"""Simulator throughput against bare producers, on one local Apache Kafka broker.

    KAFKA_PORT=39092 FIN_RUN_DIR=$PWD/.run/bench scripts/kafka.sh start
    .venv/bin/python bench/bench_kafka.py --bootstrap 127.0.0.1:39092 [--duration 10]
        [--repeats 5] [--knob-repeats 3] [--only baseline]

Configurations (each run a fresh process, a fresh 3-partition topic deleted afterwards):
- baseline, the product's producer settings (acks=all, idempotent, linger_ms=5,
  batch_size=16384, no compression, crc32c C extension): the simulator, a bare kafka-python
  producer sending the same records, a bare confluent-kafka producer (librdkafka).
- the same baseline rounds also run the decomposition of the gap (bare kafka-python that
  generates each record inline, with and without the log line) and one candidate change
  applied from the outside (the simulator on a confluent-kafka backend, see
  _kafka_producer.py).
- knobs, for the simulator and bare kafka-python: linger_ms, batch_size, compression, the
  crc32c extension off, and a combination.

Variants run interleaved, round by round. Results: bench/results/kafka-<stamp>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import statistics
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    BENCH_DIR,
    PYTHON,
    REPO_DIR,
    cpu_busy_pct,
    header,
    load_average,
    log,
    measure,
    summarise,
    write_results,
)

# (variant, name, flags) run every baseline round: the three compared producers, the
# decomposition of the gap (bare kafka-python that also generates each record as the
# simulator does) and candidate fixes tried from the outside (see _kafka_producer.py).
BASELINE: list[tuple[str, str, list[str]]] = [
    ("sim", "defaults", []),
    ("kafka-python", "defaults", []),
    ("confluent", "defaults", []),
    ("kafka-python", "+ event generation", ["--generate", "event"]),
    ("kafka-python", "+ event generation + log line", ["--generate", "event+log"]),
    ("sim", "what-if: confluent-kafka backend", ["--what-if", "confluent-backend"]),
]
# name -> producer flags; the knob configurations run for the simulator and bare kafka-python.
KNOBS: dict[str, list[str]] = {
    "linger_ms=0": ["--linger-ms", "0"],
    "linger_ms=20": ["--linger-ms", "20"],
    "linger_ms=100": ["--linger-ms", "100"],
    "batch_size=65536": ["--batch-size", "65536"],
    "batch_size=262144": ["--batch-size", "262144"],
    "compression=gzip": ["--compression", "gzip"],
    "compression=lz4": ["--compression", "lz4"],
    "compression=zstd": ["--compression", "zstd"],
    "no crc32c extension": ["--no-crc32c"],
    "linger_ms=20 batch_size=262144 lz4": [
        "--linger-ms",
        "20",
        "--batch-size",
        "262144",
        "--compression",
        "lz4",
    ],
}
CODEC_MODULES = {"gzip": "gzip", "lz4": "lz4", "zstd": "zstandard", "snappy": "snappy"}
METRICS = (
    "child.rate_per_s",
    "child.per_cpu_s",
    "cpu_s",
    "peak_rss_mib",
    "wall_s",
    "child.seconds",
)


def codec_available(flags: list[str]) -> bool:
    if "--compression" not in flags:
        return True
    codec = flags[flags.index("--compression") + 1]
    return importlib.util.find_spec(CODEC_MODULES[codec]) is not None


def delete_topic(bootstrap: str, topic: str) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([topic])
    except Exception as exc:  # a leftover topic only costs disk
        log(f"could not delete {topic}: {exc}")
    finally:
        admin.close()


def paired_ratios(runs: dict[str, list[dict]], numerator: str, denominator: str) -> dict:
    """Per round, numerator / denominator for the rate and for records per CPU-second (the
    two ran back to back in that round, so they saw about the same machine load)."""
    result = {}
    for metric in ("rate_per_s", "per_cpu_s"):
        ratios = [
            a["child"][metric] / b["child"][metric]
            for a, b in zip(runs.get(numerator, []), runs.get(denominator, []), strict=False)
            if (a.get("child") or {}).get(metric) and (b.get("child") or {}).get(metric)
        ]
        if ratios:
            result[metric] = {
                "median": statistics.median(ratios),
                "min": min(ratios),
                "max": max(ratios),
                "per_round": ratios,
            }
    return result


def run_one(args: argparse.Namespace, variant: str, flags: list[str]) -> dict:
    topic = f"bench-{variant}-{uuid.uuid4().hex[:8]}"
    cmd = [
        PYTHON,
        str(BENCH_DIR / "_kafka_producer.py"),
        "--variant",
        variant,
        "--bootstrap",
        args.bootstrap,
        "--topic",
        topic,
        "--duration",
        str(args.duration),
        *flags,
    ]
    background = cpu_busy_pct(0.5)  # what the rest of the machine does just before
    result = measure(cmd, cwd=REPO_DIR, timeout=args.duration * 20 + 120)
    result["background_cpu_pct"] = background
    result["load_1m"] = load_average()[0]
    delete_topic(args.bootstrap, topic)
    if result["returncode"] != 0 or not result["child"]:
        log(f"FAILED {variant} {flags}: {result.get('stderr_tail', '')[-1500:]}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:39092")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of sending per run")
    parser.add_argument("--repeats", type=int, default=5, help="baseline rounds")
    parser.add_argument("--knob-repeats", type=int, default=3, help="rounds per knob")
    parser.add_argument("--only", choices=("baseline", "knobs"), default=None)
    args = parser.parse_args()

    payload = header("kafka", sys.argv)
    payload["duration_s"] = args.duration
    runs: dict[str, list[dict]] = {}
    plan: list[tuple[str, list[tuple[str, str, list[str]]]]] = []
    if args.only != "knobs":
        plan += [("baseline", BASELINE)] * args.repeats
    if args.only != "baseline":
        for name, flags in KNOBS.items():
            if not codec_available(flags):
                log(f"skip {name}: codec not installed")
                payload.setdefault("skipped", []).append(name)
                continue
            plan += [("knob", [(v, name, flags) for v in ("sim", "kafka-python")])] * (
                args.knob_repeats
            )
    for index, (_, variants) in enumerate(plan):
        ordered = variants if index % 2 == 0 else variants[::-1]
        for variant, name, flags in ordered:
            result = run_one(args, variant, flags)
            runs.setdefault(f"{variant}/{name}", []).append(result)
            child = result["child"] or {}
            log(
                f"{index + 1}/{len(plan)} {variant:12} {name:36} "
                f"{child.get('rate_per_s', float('nan')):9.0f} msg/s"
                f" {child.get('per_cpu_s', float('nan')):9.0f} per CPU-s"
                f" cpu {result['cpu_s']:.1f} s"
            )
    summary = {key: summarise(value, METRICS) for key, value in runs.items()}
    ratios = {}  # knob -> simulator / bare kafka-python with the same knob
    over_bare = {}  # baseline entry -> its rate / bare kafka-python with the product settings
    bare_defaults = summary.get("kafka-python/defaults", {}).get("child.rate_per_s")
    for key in summary:
        variant, name = key.split("/", 1)
        rate = summary[key].get("child.rate_per_s")
        if not rate:
            continue
        if variant == "sim" and f"kafka-python/{name}" in summary:
            bare = summary[f"kafka-python/{name}"]["child.rate_per_s"]["median"]
            ratios[name] = rate["median"] / bare
        if bare_defaults and (variant, name) in {(v, n) for v, n, _ in BASELINE}:
            over_bare[key] = rate["median"] / bare_defaults["median"]
    paired = {
        f"{numerator} / {denominator}": paired_ratios(runs, numerator, denominator)
        for numerator, denominator in (
            ("sim/defaults", "kafka-python/defaults"),
            ("sim/defaults", "confluent/defaults"),
            ("kafka-python/defaults", "confluent/defaults"),
        )
    }
    payload.update(
        {
            "runs": runs,
            "summary": summary,
            "sim_over_kafka_python": ratios,
            "baseline_over_bare_kafka_python": over_bare,
            "paired_ratios": paired,
        }
    )
    payload["load_at_end"] = load_average()
    payload["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    path = write_results("kafka", payload)
    log(f"results: {path}")
    for key, value in summary.items():
        if "child.rate_per_s" in value:
            log(f"{key:60} median {value['child.rate_per_s']['median']:9.0f} msg/s")
    for name, ratio in ratios.items():
        log(f"sim / bare kafka-python, {name}: {ratio:.2f}")
    for key, ratio in over_bare.items():
        log(f"{key} / bare kafka-python defaults: {ratio:.2f}")
    for pair, by_metric in paired.items():
        for metric, stats in by_metric.items():
            log(
                f"paired per round, {pair}, {metric}: median {stats['median']:.2f}"
                f" ({stats['min']:.2f}-{stats['max']:.2f})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
