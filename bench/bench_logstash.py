"""The search leg under load: `fin-assets simulate` at a fixed offered rate -> real Kafka -> the
real Logstash (scripts/logstash.sh, the project's pipelines) -> the real secured Elasticsearch.

    .venv/bin/python bench/bench_logstash.py [--rate 5000] [--duration 60]
        [--variants shipped,checkpoint-1,memory-queue] [--latency-duration 60]

Starts its own Kafka broker, secured Elasticsearch (with its root-endpoint front) and, per
variant, a fresh Logstash on a fresh topic and empty indices; stops everything at the end.

Per variant, in one run: events/s produced (topic end offsets), documents/s indexed
(Elasticsearch's index_total), the lag (produced - indexed) every second and its slope over the
second half of the offered window, events lost (produced - documents) and duplicated
(index operations - documents), Logstash's CPU (its process group, from /proc) and the machine's
iowait. A variant changes one pipelines.yml setting (a copy; the repository's file is what
`shipped` runs) or the index refresh_interval. Then NRT latency at 1 event/s: each event's `ts` to
the moment a search first returns it (polled every 50 ms), p50/p95/p99.

Results: bench/results/logstash-<stamp>.json. Not a test: CI never runs it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, REPO_DIR, header, linear_fit, log, write_results  # noqa: E402

SCRIPTS = REPO_DIR / "scripts"
PIPELINES_YML = REPO_DIR / "logstash" / "config" / "pipelines.yml"
TEMPLATES = REPO_DIR / "logstash" / "templates"
NRT = "transacciones_nrt"

# name -> (changes to the fin_unificado entry of pipelines.yml, index refresh_interval or None)
VARIANTS: dict[str, tuple[dict, str | None]] = {
    "shipped": ({}, None),
    "checkpoint-1": ({"queue.checkpoint.writes": 1}, None),
    "checkpoint-128": ({"queue.checkpoint.writes": 128}, None),
    "checkpoint-1024": ({"queue.checkpoint.writes": 1024}, None),
    "memory-queue": ({"queue.type": "memory"}, None),
    "workers-1": ({"pipeline.workers": 1}, None),
    "batch-125": ({"pipeline.batch.size": 125}, None),
    "batch-1000": ({"pipeline.batch.size": 1000}, None),
    "batch-delay-5": ({"pipeline.batch.delay": 5}, None),
    "refresh-5s": ({}, "5s"),
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], env: dict, **kwargs) -> None:
    subprocess.run(cmd, env=env, check=True, **kwargs)


class Stack:
    """Kafka and the secured Elasticsearch, once for the whole benchmark."""

    def __init__(self, root: Path):
        self.root = root
        self.kafka_port = free_port()
        self.es_port, self.front_port = free_port(), free_port()
        self.passwords = {u: secrets.token_urlsafe(18) for u in ("elastic", "logstash_writer")}
        base = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "ES_"))}
        self.kafka_env = {**base, "KAFKA_PORT": str(self.kafka_port), "FIN_RUN_DIR": str(root)}
        self.es_env = {
            **base,
            "FIN_RUN_DIR": str(root),
            "ES_PORT": str(self.es_port),
            "ES_FRONT_PORT": str(self.front_port),
            "ES_SECURITY": "1",
            "ELASTIC_PASSWORD": self.passwords["elastic"],
            "ES_HEAP": os.environ.get("BENCH_ES_HEAP", "1g"),
        }
        self.bootstrap = f"127.0.0.1:{self.kafka_port}"
        self.url = f"https://127.0.0.1:{self.es_port}"
        self.ca = root / f"elasticsearch-{self.es_port}" / "config" / "certs" / "ca" / "ca.crt"
        self.http = requests.Session()
        self.http.auth = ("elastic", self.passwords["elastic"])

    def start(self) -> None:
        run([str(SCRIPTS / "kafka.sh"), "start"], self.kafka_env)
        run([str(SCRIPTS / "elasticsearch.sh"), "start"], self.es_env)
        run(
            [str(SCRIPTS / "elasticsearch.sh"), "useradd", "logstash_writer", "logstash_writer"],
            self.es_env,
            input=self.passwords["logstash_writer"] + "\n",
            text=True,
        )  # returns once the node authenticates the user: no wait of our own

    def stop(self) -> None:
        subprocess.run([str(SCRIPTS / "elasticsearch.sh"), "stop"], env=self.es_env, check=False)
        subprocess.run([str(SCRIPTS / "kafka.sh"), "stop"], env=self.kafka_env, check=False)

    def es(self, method: str, path: str, user: str = "elastic", **kwargs) -> requests.Response:
        auth = (user, self.passwords[user])
        return self.http.request(
            method, f"{self.url}/{path}", auth=auth, verify=str(self.ca), timeout=30, **kwargs
        )

    def reset_indices(self, refresh_interval: str | None) -> None:
        for path in sorted(TEMPLATES.glob("*.json")):
            self.es("PUT", f"_index_template/{path.stem}", json=json.loads(path.read_text()))
        for index in ("finanzas_batch", NRT):
            self.es("DELETE", index)
        if refresh_interval:
            body = {"settings": {"index.refresh_interval": refresh_interval}}
            self.es("PUT", NRT, json=body).raise_for_status()

    def indexed(self) -> int:
        answer = self.es("GET", f"{NRT}/_stats/indexing")
        if answer.status_code != 200:
            return 0
        # A just-created index may not list its primaries' stats yet.
        return answer.json()["_all"]["primaries"].get("indexing", {}).get("index_total", 0)

    def documents(self) -> int:
        self.es("POST", f"{NRT}/_refresh")
        answer = self.es("GET", f"{NRT}/_count")
        return answer.json()["count"] if answer.status_code == 200 else 0

    def new_topic(self) -> str:
        topic = f"bench_transacciones_{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        finally:
            admin.close()
        return topic


class TopicEnds:
    """Sum of the topic's end offsets: the events Kafka acknowledged so far."""

    def __init__(self, bootstrap: str, topic: str):
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        deadline = time.monotonic() + 30
        while not (partitions := self.consumer.partitions_for_topic(topic)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {topic} has no partitions")
            time.sleep(0.2)
        self.partitions = [TopicPartition(topic, p) for p in sorted(partitions)]

    def __call__(self) -> int:
        return sum(self.consumer.end_offsets(self.partitions).values())

    def close(self) -> None:
        self.consumer.close()


def group_cpu_seconds(pgid: int) -> float:
    """utime + stime of every live process in the group (/proc/<pid>/stat fields 14, 15)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5, pgrp, after the state and ppid
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def machine_times() -> tuple[int, int]:
    """(total jiffies, iowait jiffies) of all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values), values[4]


class Logstash:
    def __init__(self, stack: Stack, root: Path, topic: str, pipeline_changes: dict):
        self.port = free_port()
        settings = root / f"variant-{self.port}"
        settings.mkdir()
        entries = yaml.safe_load(PIPELINES_YML.read_text())
        for entry in entries:
            if entry["pipeline.id"] == "fin_unificado":
                entry.update(pipeline_changes)
        variant = settings / "pipelines.yml"
        variant.write_text(yaml.safe_dump(entries, sort_keys=False))
        data = root / f"fin_data-{self.port}"
        data.mkdir()
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("KAFKA_", "ELASTICSEARCH_", "LOGSTASH_", "FIN_"))
        }
        self.env = {
            **base,
            "FIN_RUN_DIR": str(root),
            "FIN_DATA_DIR": str(data),
            "LOGSTASH_API_PORT": str(self.port),
            "LOGSTASH_PIPELINES_YML": str(variant if pipeline_changes else PIPELINES_YML),
            "LOGSTASH_START_TIMEOUT": "400",
            "ELASTICSEARCH_HOSTS": f"https://127.0.0.1:{stack.front_port}",
            "ELASTICSEARCH_PASSWORD": stack.passwords["logstash_writer"],
            "ELASTICSEARCH_CA": str(stack.ca),
            "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
            "FIN_KAFKA_TOPIC": topic,
            "LOGSTASH_KAFKA_GROUP_ID": f"bench_{uuid.uuid4().hex[:8]}",
        }
        self.pid_file = root / f"logstash-{self.port}" / "pid"

    def start(self) -> None:
        run([str(SCRIPTS / "logstash.sh"), "start"], self.env)

    def stop(self) -> None:
        subprocess.run([str(SCRIPTS / "logstash.sh"), "stop"], env=self.env, check=False)

    @property
    def pgid(self) -> int:
        return int(self.pid_file.read_text())


def simulate(stack: Stack, topic: str, rate: float, duration: float, data: Path):
    env = {**os.environ, "FIN_DATA_DIR": str(data)}
    return subprocess.Popen(
        [
            PYTHON, "-m", "fin_assets.cli", "simulate", "--rate", str(rate),
            "--duration", str(duration), "--topic", topic, "--bootstrap-servers", stack.bootstrap,
            "--flush-timeout", "60",
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def throughput_variant(stack: Stack, root: Path, name: str, rate: float, duration: float) -> dict:
    changes, refresh = VARIANTS[name]
    stack.reset_indices(refresh)
    topic = stack.new_topic()
    logstash = Logstash(stack, root, topic, changes)
    log(f"{name}: starting Logstash ({changes or 'pipelines.yml as shipped'}, refresh {refresh})")
    logstash.start()
    ends = TopicEnds(stack.bootstrap, topic)
    samples = []
    try:
        cpu0, (tot0, io0) = group_cpu_seconds(logstash.pgid), machine_times()
        start = time.monotonic()
        simulator = simulate(stack, topic, rate, duration, root / f"sim-{logstash.port}")
        drain_deadline = start + duration + 150
        produced = indexed = 0
        while True:
            time.sleep(1.0)
            now = time.monotonic() - start
            produced, indexed = ends(), stack.indexed()
            cpu = group_cpu_seconds(logstash.pgid)
            tot, io = machine_times()
            samples.append(
                {"t": round(now, 2), "produced": produced, "indexed": indexed,
                 "lag": produced - indexed, "logstash_cpu_s": round(cpu - cpu0, 2),
                 "iowait_pct": round(100 * (io - io0) / max(1, tot - tot0), 1)}
            )  # fmt: skip
            finished = simulator.poll() is not None
            if finished and indexed >= produced:
                break
            if time.monotonic() > drain_deadline:
                log(f"{name}: not drained 150 s after the offered window")
                break
        output, _ = simulator.communicate(timeout=120)
        end_cpu, (tot1, io1) = group_cpu_seconds(logstash.pgid), machine_times()
        elapsed = time.monotonic() - start
        documents = stack.documents()
        produced, indexed = ends(), stack.indexed()
    finally:
        ends.close()
        logstash.stop()
    window = [s for s in samples if s["t"] <= duration]
    at_window_end = window[-1] if window else samples[-1]
    second_half = [s for s in window if s["t"] >= duration / 2]
    slope = (
        linear_fit([s["t"] for s in second_half], [s["lag"] for s in second_half])[1]
        if len(second_half) >= 3
        else float("nan")
    )
    drained_at = next((s["t"] for s in samples if s["indexed"] >= produced), None)
    # What Logstash and Elasticsearch do once the producer no longer takes its core: the indexing
    # rate from the end of the offered window to the end of the drain.
    after = [s for s in samples if s["t"] > duration + 2]
    drain_rate = (
        round((after[-1]["indexed"] - after[0]["indexed"]) / (after[-1]["t"] - after[0]["t"]), 1)
        if len(after) >= 3 and after[-1]["t"] > after[0]["t"]
        else None
    )
    result = {
        "variant": name,
        "pipeline_changes": changes,
        "refresh_interval": refresh or "1s (template default)",
        "offered_rate": rate,
        "duration_s": duration,
        "produced": produced,
        "produced_per_s": round(at_window_end["produced"] / at_window_end["t"], 1),
        "indexed_per_s_in_window": round(at_window_end["indexed"] / at_window_end["t"], 1),
        "indexed_over_offered": round(at_window_end["indexed"] / (rate * at_window_end["t"]), 3),
        "lag_at_window_end": at_window_end["lag"],
        "lag_slope_second_half_per_s": round(slope, 1),
        "drained_after_s": drained_at,
        "indexed_per_s_after_the_producer": drain_rate,
        "documents": documents,
        "lost": produced - documents,
        "duplicated": indexed - documents,
        "logstash_cpu_pct_of_one_core": round(100 * (end_cpu - cpu0) / elapsed, 1),
        "iowait_pct": round(100 * (io1 - io0) / max(1, tot1 - tot0), 1),
        "load_average_after": os.getloadavg(),
        "simulator_tail": output.strip().splitlines()[-3:],
        "samples": samples,
    }
    r = result
    log(
        f"{name}: produced {r['produced_per_s']}/s, indexed {r['indexed_per_s_in_window']}/s"
        f" ({r['indexed_over_offered']} of offered), lag slope {r['lag_slope_second_half_per_s']}"
        f"/s, after the producer {r['indexed_per_s_after_the_producer']}/s, lost {r['lost']},"
        f" duplicated {r['duplicated']}, Logstash CPU"
        f" {r['logstash_cpu_pct_of_one_core']} %, iowait {r['iowait_pct']} %"
    )
    return result


def latency(stack: Stack, root: Path, duration: float) -> dict:
    """1 event/s; each event's ts to the first search that returns it (50 ms polls)."""
    stack.reset_indices(None)
    topic = stack.new_topic()
    logstash = Logstash(stack, root, topic, {})
    logstash.start()
    seen: dict[str, float] = {}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            answer = stack.es(
                "GET", f"{NRT}/_search",
                json={"size": 50, "sort": [{"ts": "desc"}], "_source": ["event_id", "ts"]},
            )  # fmt: skip
            now = time.time()
            if answer.status_code == 200:
                for hit in answer.json()["hits"]["hits"]:
                    seen.setdefault(hit["_id"], now - iso_seconds(hit["_source"]["ts"]))
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        simulator = simulate(stack, topic, 1, duration, root / f"sim-{logstash.port}")
        simulator.communicate(timeout=duration + 120)
        deadline = time.monotonic() + 30
        while len(seen) < duration * 0.95 and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)
    finally:
        stop.set()
        poller.join(5)
        logstash.stop()
    values = sorted(seen.values())
    q = statistics.quantiles(values, n=100, method="inclusive")
    result = {
        "events": len(values),
        "p50_s": round(q[49], 3),
        "p95_s": round(q[94], 3),
        "p99_s": round(q[98], 3),
        "max_s": round(values[-1], 3),
    }
    log(f"latency at 1 event/s: {result}")
    return result


def iso_seconds(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--variants", default="shipped")
    parser.add_argument("--latency-duration", type=float, default=60)
    args = parser.parse_args()
    names = [n for n in args.variants.split(",") if n]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    payload = header("logstash", sys.argv)
    root = Path(tempfile.mkdtemp(prefix="fin-bench-logstash-"))
    root.chmod(0o755)  # the Elasticsearch node runs as nobody when we are root
    stack = Stack(root)
    try:
        stack.start()
        payload["throughput"] = [
            throughput_variant(stack, root, name, args.rate, args.duration) for name in names
        ]
        if args.latency_duration > 0:
            payload["latency_1_per_s"] = latency(stack, root, args.latency_duration)
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)
    payload["load_at_end"] = os.getloadavg()
    path = write_results("logstash", payload)
    log(f"results: {path.relative_to(REPO_DIR)}")


if __name__ == "__main__":
    main()
