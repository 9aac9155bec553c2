"""Gaps in the stream under `fin-assets dev` with the sensor on: is there a silent second?

    .venv/bin/python bench/bench_sim_gap.py --bootstrap 127.0.0.1:39092 [--duration 600]
        [--rate 1] [--run-lifetime 0] [--sensor-restart-at 0]

Starts `fin-assets dev` (webserver, daemon, code server; own process group, temp DAGSTER_HOME
and data folder, the stand-in), turns transaction_simulator_sensor on, and from the first
event on reads the topic for `--duration` seconds with a consumer. Reports the longest gap
between consecutive events' `ts`, the count against the elapsed seconds, every gap over 2 s,
and the runs that produced. `--run-lifetime S` sets FIN_SIMULATOR_RUN_LIFETIME_S (rotation, off
by default) to show the gap rotation costs; `--sensor-restart-at S` turns the sensor off and
on again S seconds in. Then SIGTERMs `fin-assets dev` and checks nothing of it is left.

The broker: KAFKA_PORT=39092 FIN_RUN_DIR=$PWD/.run/bench scripts/kafka.sh start.
Results: bench/results/sim-gap[-rotation][-sensor-restart]-<stamp>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402
from _common import REPO_DIR, header, load_average, log, write_results  # noqa: E402
from kafka import KafkaConsumer, TopicPartition  # noqa: E402

from fin_assets.cli.dev import descendants, live_processes  # noqa: E402

SENSOR = "transaction_simulator_sensor"
SELECTOR = {
    "repositoryLocationName": "fin_assets",
    "repositoryName": "__repository__",
    "sensorName": SENSOR,
}
START = """mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) {
  __typename ... on Sensor { sensorState { id status } } } }"""
STATE = """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
  ... on Sensor { sensorState { id status } } } }"""
STOP = """mutation($id: String!) { stopSensor(id: $id) { __typename } }"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(url: str, query: str, variables: dict) -> dict:
    response = requests.post(f"{url}/graphql", json={"query": query, "variables": variables})
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return body["data"]


def wait_for(condition, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except (requests.RequestException, RuntimeError, KeyError, TypeError):
            pass
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def parse_ts(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()


def gap_figures(events: list[tuple[float, str]], window_s: float) -> dict:
    """events: (ts, run_id) sorted by ts, all within the measured window."""
    stamps = [ts for ts, _ in events]
    gaps = [(b - a, a) for a, b in zip(stamps, stamps[1:], strict=False)]
    long = sorted((g for g in gaps if g[0] > 2.0), reverse=True)
    runs: dict[str, list[float]] = {}
    for ts, run_id in events:
        runs.setdefault(run_id, []).append(ts)
    return {
        "events": len(events),
        "elapsed_s": round(window_s, 3),
        "count_minus_elapsed": round(len(events) - window_s, 3),
        "longest_gap_s": round(max((g for g, _ in gaps), default=0.0), 3),
        "gaps_over_2s": [
            {"gap_s": round(g, 3), "after": dt.datetime.fromtimestamp(a, dt.UTC).isoformat()}
            for g, a in long
        ],
        "runs": {
            run_id: {"events": len(ts), "first": min(ts), "last": max(ts)}
            for run_id, ts in runs.items()
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:39092")
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--run-lifetime", type=float, default=0.0)
    parser.add_argument("--sensor-restart-at", type=float, default=0.0)
    args = parser.parse_args()

    name = "sim-gap" + ("-rotation" if args.run_lifetime else "")
    name += "-sensor-restart" if args.sensor_restart_at else ""
    payload = header(name, sys.argv)
    payload.update(vars(args))
    topic = f"bench_gap_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="fin-bench-gap-") as tmp:
        root = Path(tmp)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DAGSTER_", "FIN_", "ALPHAVANTAGE_", "KAFKA_"))
        }
        env.update(
            DAGSTER_HOME=str(root / "home"),
            FIN_DATA_DIR=str(root / "data"),
            KAFKA_BOOTSTRAP_SERVERS=args.bootstrap,
            FIN_KAFKA_TOPIC=topic,
            FIN_SIMULATOR_RATE=str(args.rate),
            FIN_SIMULATOR_RUN_LIFETIME_S=str(args.run_lifetime),
            ELASTICSEARCH_URL="http://127.0.0.1:9",
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with (root / "dev.log").open("wb") as out:
            dev = subprocess.Popen(
                [sys.executable, "-m", "fin_assets.cli", "dev", "--port", str(port)],
                cwd=REPO_DIR,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            started = time.monotonic()
            wait_for(lambda: requests.get(f"{url}/server_info").ok, 300, "fin-assets dev")
            wait_for(lambda: graphql(url, STATE, {"s": SELECTOR})["sensorOrError"], 300, "code")
            graphql(url, START, {"s": SELECTOR})
            log(f"fin-assets dev up in {time.monotonic() - started:.0f} s; sensor on")
            payload["measured"] = measure(args, topic, url)
        finally:
            tree = descendants(dev.pid, live_processes())
            dev.send_signal(signal.SIGTERM)
            stop_started = time.monotonic()
            dev.wait(timeout=180)
            deadline = time.monotonic() + 60
            while (left := tree & set(live_processes())) and time.monotonic() < deadline:
                time.sleep(0.5)
            payload["dev_stop_s"] = round(time.monotonic() - stop_started, 1)
            payload["left_after_stop"] = sorted(left)
    payload["load_at_end"] = load_average()
    payload["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    path = write_results(name, payload)
    figures = payload["measured"]
    log(f"results: {path}")
    log(
        f"events {figures['events']} in {figures['elapsed_s']:.0f} s; longest gap"
        f" {figures['longest_gap_s']} s; gaps over 2 s: {len(figures['gaps_over_2s'])}"
    )
    return 0


def measure(args: argparse.Namespace, topic: str, url: str) -> dict:
    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, enable_auto_commit=False)
    try:
        partitions = wait_for(lambda: consumer.partitions_for_topic(topic), 300, "the topic")
        assigned = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        events: list[tuple[float, str]] = []
        first_at = None
        restarted = False
        while True:
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    event = json.loads(record.value)
                    events.append((parse_ts(event["ts"]), event["run_id"]))
            if events and first_at is None:
                first_at = time.monotonic()
                log("first event; measuring")
            if first_at is None:
                continue
            elapsed = time.monotonic() - first_at
            if args.sensor_restart_at and not restarted and elapsed >= args.sensor_restart_at:
                state = graphql(url, STATE, {"s": SELECTOR})["sensorOrError"]["sensorState"]
                graphql(url, STOP, {"id": state["id"]})
                graphql(url, START, {"s": SELECTOR})
                restarted = True
                log("sensor turned off and on again")
            if elapsed >= args.duration:
                break
    finally:
        consumer.close()
    events.sort()
    start = events[0][0]
    window = [e for e in events if e[0] <= start + args.duration]
    return gap_figures(window, window[-1][0] - start)


if __name__ == "__main__":
    raise SystemExit(main())
