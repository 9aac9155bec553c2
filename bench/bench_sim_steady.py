"""The simulator at its default rate (1 event/s): count, schedule drift, latency, memory.

    .venv/bin/python bench/bench_sim_steady.py latency [--runs 3] [--duration 300] [--parallel]
    .venv/bin/python bench/bench_sim_steady.py soak [--duration 1800] [--interval 30]

latency: `--runs` runs of the simulator core (product code, see _kafka_producer.py --variant
  sim) at 1 event/s for `--duration` seconds: events generated and acknowledged, drift of each
  emission from its slot on the schedule (start + i / rate), send-to-acknowledgement latency
  from the delivery callbacks (p50, p99), RSS every 10 s. `--parallel` runs them side by side
  (1 event/s each costs ~0.1 % of a core) to fit the time budget. `--linger-ms 0`: the same
  with the producer's linger off (results: sim-latency-linger0-<stamp>.json).
soak: at the same time, the simulator core and `fin-assets simulator-job` (the Dagster job,
  execute_in_process on a SQLite DAGSTER_HOME), each at 1 event/s for `--duration` seconds;
  this process samples both processes' RSS (/proc/<pid>/status VmRSS) every `--interval` s.
  Flat memory: the slope of RSS over the run after its first 2 minutes.

The broker: KAFKA_PORT=39092 FIN_RUN_DIR=$PWD/.run/bench scripts/kafka.sh start.
Results: bench/results/sim-<mode>-<stamp>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    BENCH_DIR,
    PYTHON,
    REPO_DIR,
    header,
    linear_fit,
    load_average,
    log,
    median,
    write_results,
)


def vm_rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def last_json(path: Path) -> dict | None:
    for line in reversed(path.read_text().strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


def sim_command(args: argparse.Namespace, topic: str, rss_interval: float) -> list[str]:
    return [
        PYTHON,
        str(BENCH_DIR / "_kafka_producer.py"),
        "--variant",
        "sim",
        "--bootstrap",
        args.bootstrap,
        "--topic",
        topic,
        "--rate",
        str(args.rate),
        "--duration",
        str(args.duration),
        "--latency",
        "--rss-interval",
        str(rss_interval),
        "--linger-ms",
        str(args.linger_ms),
    ]


def spawn(cmd: list[str], out: Path, env: dict | None = None) -> subprocess.Popen:
    with out.open("w") as handle:
        return subprocess.Popen(
            cmd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_DIR,
            start_new_session=True,
        )


def rss_slope(samples: list[tuple[float, float]], skip_s: float = 120) -> dict:
    """RSS at the start/end and the least-squares slope (MiB per hour) after `skip_s`."""
    steady = [(t, r) for t, r in samples if t >= skip_s]
    out = {
        "first_mib": samples[0][1] if samples else None,
        "max_mib": max(r for _, r in samples) if samples else None,
        "last_mib": samples[-1][1] if samples else None,
    }
    if len(steady) >= 3:
        _, slope = linear_fit([t for t, _ in steady], [r for _, r in steady])
        out["after_2_min_first_mib"] = steady[0][1]
        out["slope_mib_per_hour"] = slope * 3600
    return out


def latency(args: argparse.Namespace, workdir: Path) -> dict:
    results = []
    pending: list[tuple[subprocess.Popen, Path]] = []
    for index in range(args.runs):
        out = workdir / f"latency-{index}.out"
        topic = f"bench-steady-{uuid.uuid4().hex[:8]}"
        process = spawn(sim_command(args, topic, 10), out)
        log(f"run {index + 1}: pid {process.pid}, topic {topic}")
        pending.append((process, out))
        if not args.parallel:
            process.wait()
    for process, out in pending:
        process.wait()
        result = last_json(out)
        if process.returncode != 0 or result is None:
            log(f"FAILED: {out.read_text()[-2000:]}")
            raise SystemExit(1)
        result["memory"] = rss_slope(result.pop("rss_samples", []))
        results.append(result)
        log(
            f"generated {result['sent']} acknowledged {result['acknowledged']} latency p50"
            f" {result['latency_ms']['p50']:.2f} ms p99 {result['latency_ms']['p99']:.2f} ms,"
            f" drift max {result['drift_ms']['max']:.2f} ms"
        )

    def med(path: str) -> float:
        values = []
        for result in results:
            value = result
            for part in path.split("."):
                value = value[part]
            values.append(value)
        return median(values)

    keys = (
        "sent",
        "acknowledged",
        "latency_ms.p50",
        "latency_ms.p90",
        "latency_ms.p99",
        "latency_ms.max",
        "drift_ms.p50",
        "drift_ms.p99",
        "drift_ms.max",
        "drift_ms.final",
        "interval_ms.min",
        "interval_ms.max",
        "peak_rss_mib",
    )
    return {"runs": results, "median": {key: med(key) for key in keys}}


def soak(args: argparse.Namespace, workdir: Path) -> dict:
    topic_core = f"bench-soak-core-{uuid.uuid4().hex[:8]}"
    topic_job = f"bench-soak-job-{uuid.uuid4().hex[:8]}"
    core_out, job_out = workdir / "soak-core.out", workdir / "soak-job.out"
    core = spawn(sim_command(args, topic_core, args.interval), core_out)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": args.bootstrap,
        "FIN_KAFKA_TOPIC": topic_job,
        "FIN_DATA_DIR": str(workdir / "job-data"),
        "DAGSTER_HOME": str(workdir / "dagster_home"),
        "FIN_SYMBOLS": "TSLA",
    }
    job_cmd = [
        str(Path(PYTHON).parent / "fin-assets"),
        "simulator-job",
        "--duration",
        str(args.duration),
        "--rate",
        str(args.rate),
    ]
    # `fin-assets simulator-job` needs an existing DAGSTER_HOME (`fin-assets batch` creates it).
    (workdir / "dagster_home").mkdir()
    job = spawn(job_cmd, job_out, env)
    log(f"soak: core pid {core.pid} ({topic_core}), job pid {job.pid} ({topic_job})")
    started = time.monotonic()
    samples: dict[str, list[tuple[float, float]]] = {"core": [], "job": []}
    loads: list[tuple[float, float]] = []
    while core.poll() is None or job.poll() is None:
        elapsed = round(time.monotonic() - started, 1)
        for name, process in (("core", core), ("job", job)):
            rss = vm_rss_mib(process.pid) if process.poll() is None else None
            if rss is not None:
                samples[name].append((elapsed, rss))
        loads.append((elapsed, load_average()[0]))
        if int(elapsed) % 300 < args.interval:
            log(f"soak {elapsed:.0f} s: core {samples['core'][-1:]}, job {samples['job'][-1:]}")
        time.sleep(args.interval)
    core_result = last_json(core_out)
    core_result.pop("rss_samples", None)
    job_text = job_out.read_text()
    return {
        "core": {
            "returncode": core.returncode,
            "result": core_result,
            "rss_samples": samples["core"],
            "memory": rss_slope(samples["core"]),
        },
        "job": {
            "returncode": job.returncode,
            "summary_line": [line for line in job_text.splitlines() if "finished" in line][-1:],
            "rss_samples": samples["job"],
            "memory": rss_slope(samples["job"]),
            "tail": job_text[-1500:],
        },
        "load_samples": loads,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("latency", "soak"))
    parser.add_argument("--bootstrap", default="127.0.0.1:39092")
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=None, help="300 / 1800 s")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parallel", action="store_true")
    parser.add_argument("--interval", type=float, default=30.0, help="soak: RSS sampling, s")
    parser.add_argument("--linger-ms", type=int, default=5, help="producer linger (product: 5)")
    args = parser.parse_args()
    if args.duration is None:
        args.duration = 300.0 if args.mode == "latency" else 1800.0

    name = f"sim-{args.mode}" + (f"-linger{args.linger_ms}" if args.linger_ms != 5 else "")
    payload = header(name, sys.argv)
    payload.update({"rate": args.rate, "duration_s": args.duration, "linger_ms": args.linger_ms})
    with tempfile.TemporaryDirectory(prefix=f"fin-bench-sim-{args.mode}-") as tmp:
        if args.mode == "latency":
            payload.update(latency(args, Path(tmp)))
        else:
            payload.update(soak(args, Path(tmp)))
    payload["load_at_end"] = load_average()
    payload["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    path = write_results(name, payload)
    log(f"results: {path}")
    if args.mode == "latency":
        log(json.dumps(payload["median"]))
    else:
        log(f"core memory {payload['core']['memory']}; job memory {payload['job']['memory']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
