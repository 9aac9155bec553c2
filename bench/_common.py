"""Shared helpers of the benchmarks: run one measured configuration in a fresh process, record
the machine and its load, summarise repeated runs.

Not a test module: nothing here is collected by pytest and CI never runs it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
PYTHON = sys.executable


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def cpu_busy_pct(seconds: float = 0.5) -> float:
    """Share of all cores busy over `seconds` (from /proc/stat): the load other processes put
    on the machine, when sampled while no measured process runs."""

    def read() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values), idle

    total0, idle0 = read()
    time.sleep(seconds)
    total1, idle1 = read()
    return 100.0 * (1 - (idle1 - idle0) / max(1, total1 - total0))


def busy_processes(min_cpu_pct: float = 5.0) -> list[str]:
    """Processes whose lifetime average CPU is >= min_cpu_pct (ps' %CPU): who else is around."""
    try:
        out = subprocess.run(
            ["ps", "-eo", "pid=,pcpu=,rss=,comm="], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    busy = []
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and float(parts[1]) >= min_cpu_pct and int(parts[0]) != os.getpid():
            busy.append(f"{parts[3]}({parts[0]}) {parts[1]}% cpu")
    return busy


def machine() -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        mem_kb = int(info.readline().split()[1])
    versions = {}
    for package in (
        "dagster",
        "pandas",
        "requests",
        "kafka-python",
        "crc32c",
        "confluent-kafka",
        "numpy",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        import confluent_kafka

        versions["librdkafka"] = confluent_kafka.libversion()[0]
    except ImportError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
        "disk_free_gib": round(shutil.disk_usage(REPO_DIR).free / 2**30, 1),
    }


def measure(
    cmd: list[str],
    env: dict | None = None,
    timeout: float = 1800,
    cwd: Path | None = None,
    keep_output: bool = False,
) -> dict:
    """Run `cmd` in a fresh process and measure it alone: wall time from the parent, user+system
    CPU from `wait4`, i.e. this child's own rusage (plus any children it waited for), not the
    cumulative RUSAGE_CHILDREN of every earlier run.

    Peak RSS: the child's own VmHWM when it reports `peak_rss_mib` (Linux carries the parent's
    RSS at fork into the child's ru_maxrss, so rusage overstates a small child of a big parent);
    otherwise ru_maxrss.

    The child's last stdout line, when it is a JSON object, is returned under "child". The
    output's tails are kept when the child fails, or always with `keep_output`.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            cmd, stdout=out, stderr=err, env=env, cwd=cwd, start_new_session=True
        )
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(process.pid, 15)
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    child = None
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                child = json.loads(line)
            break
    result = {
        "returncode": process.returncode,
        "wall_s": wall,
        "cpu_user_s": usage.ru_utime,
        "cpu_sys_s": usage.ru_stime,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": (child or {}).get("peak_rss_mib") or usage.ru_maxrss / 1024,
        "rusage_maxrss_mib": usage.ru_maxrss / 1024,  # Linux: KiB
        "child": child,
    }
    if process.returncode != 0 or keep_output:
        result["stderr_tail"] = stderr[-3000:]
        result["stdout_tail"] = stdout[-2000:]
    return result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(runs: list[dict], keys: tuple[str, ...]) -> dict:
    """Median, min and max of each key over the runs (keys may be dotted: child.run_s)."""

    def get(run: dict, key: str):
        value = run
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    summary = {}
    for key in keys:
        values = [v for v in (get(r, key) for r in runs) if v is not None]
        if values:
            summary[key] = {
                "median": median(values),
                "min": min(values),
                "max": max(values),
                "n": len(values),
            }
    return summary


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares intercept and slope."""
    slope, intercept = statistics.linear_regression(xs, ys)
    return intercept, slope


def write_results(name: str, payload: dict) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    text = json.dumps(payload, indent=2, default=str)
    path.write_text(text)
    (RESULTS_DIR / f"{name}-latest.json").write_text(text)
    return path


def git_state() -> dict:
    """The commit measured, and whether product files differed from it (shared work tree)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_DIR, capture_output=True, text=True, check=False
        ).stdout.strip()

    changed = git("status", "--porcelain", "--", "fin_assets", "pyproject.toml").splitlines()
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted_product_files": changed}


def header(name: str, argv: list[str]) -> dict:
    return {
        "git": git_state(),
        "benchmark": name,
        "command": " ".join(["bench/" + Path(argv[0]).name, *argv[1:]]),
        "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "load_at_start": load_average(),
        "cpu_busy_pct_at_start": cpu_busy_pct(2.0),
        "busy_at_start": busy_processes(),
    }


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {message}", flush=True)
