"""Batch benchmark: `daily_batch_job` (Dagster) against plain_batch.py (requests + pandas).

    .venv/bin/python bench/bench_batch.py symbols [--sizes 1,10,25] [--repeats 5]
    .venv/bin/python bench/bench_batch.py history [--years 1,5,10,20] [--repeats 3]

One stand-in server (pacing off, outputsize=full allowed) lives in this process for the whole
run; both variants talk to it. Every measured run is a fresh Python process (wall time seen
from here; CPU and peak RSS from wait4). Variants are interleaved round by round, so a change
of machine load hits both.

symbols: each (variant, N) keeps its own data dir and DAGSTER_HOME. An unmeasured warm-up run
writes the first 100-day history (and the instance's SQLite files); measured round r then
fetches as of the next trading day: each run adds one new day to a 100-day history, like the
daily schedule.

history: for each length L (years), each variant first builds its history with one
outputsize=full fetch as of 2000-01-03 + L years, through its own upsert (the job's
`daily_prices` for Dagster); measured rounds are daily compact runs on top of it.

Results: bench/results/batch-<mode>-<stamp>.json (and -latest.json); bench/report.py turns
them into tables and plots.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    BENCH_DIR,
    PYTHON,
    REPO_DIR,
    cpu_busy_pct,
    header,
    linear_fit,
    load_average,
    log,
    measure,
    summarise,
    write_results,
)

from fin_assets.lib import market_calendar  # noqa: E402
from fin_assets.lib.alpha_vantage import synthetic  # noqa: E402
from fin_assets.lib.alpha_vantage.stand_in import StandInServer, StandInState  # noqa: E402

SYMBOLS = [
    "TSLA", "IBM", "AAPL", "MSFT", "AMZN", "GOOGL", "META", "NVDA", "NFLX", "ORCL", "INTC", "AMD",
    "CSCO", "ADBE", "CRM", "PYPL", "QCOM", "TXN", "AVGO", "SAP", "UBER", "SHOP", "SQ", "JPM", "KO",
]  # fmt: skip
# plain: plain_batch.py. dagster: the job on a persistent SQLite instance (DAGSTER_HOME), as
# `fin-assets batch` runs with DAGSTER_HOME set and as runs that the UI shows are stored.
# dagster-ephemeral: the same on an in-memory instance (`fin-assets batch` without
# DAGSTER_HOME): the difference is the cost of storing the run's events.
# dagster-postgres: the same on a PostgreSQL instance (the docker stack's and production's
# storage), a real server started by scripts/postgres.sh for the bench, one database per series.
# dagster-no-symbol-logs (opt-in, --variants): the proposed fix tried from the outside.
# dagster-subset-planned (opt-in): SQLite with DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1,
# one planned event per asset instead of per partition (Dagster then no longer marks the
# partitions of a failed run failed): what that trade would buy.
VARIANTS = ("plain", "dagster", "dagster-ephemeral", "dagster-postgres")
METRICS = (
    "wall_s",
    "cpu_s",
    "cpu_user_s",
    "cpu_sys_s",
    "peak_rss_mib",
    "child.import_s",
    "child.run_s",
    "child.in_process_s",
    "child.definitions_s",
    "child.instance_s",
    "child.csv_rows",
)
SYMBOLS_AS_OF = dt.date(2026, 6, 1)


def trading_days_from(start: dt.date, count: int) -> list[dt.date]:
    days = []
    us = market_calendar.US_SUFFIX
    day = start
    if not market_calendar.is_trading_day(us, start):
        day = market_calendar.next_trading_day(us, start)
    while len(days) < count:
        days.append(day)
        day = market_calendar.next_trading_day(us, day)
    return days


def command(variant: str, url: str, symbols: list[str], data_dir: Path, full: bool) -> list[str]:
    script = "plain_batch.py" if variant == "plain" else "_batch_dagster.py"
    cmd = [
        PYTHON,
        str(BENCH_DIR / script),
        "--url",
        url,
        "--symbols",
        ",".join(symbols),
        "--data-dir",
        str(data_dir),
    ]
    if variant == "dagster-ephemeral":
        cmd.append("--ephemeral")
    if variant == "dagster-postgres":
        cmd.append("--postgres")
    if variant == "dagster-no-symbol-logs":
        cmd.append("--what-if-no-per-symbol-logs")
    return [*cmd, "--full"] if full else cmd


class BenchPostgres:
    """A throwaway PostgreSQL for the dagster-postgres variant (scripts/postgres.sh), with one
    database per series so that runs of different sizes never share an event log."""

    def __init__(self, workdir: Path) -> None:
        self.state_dir = workdir / "postgres"
        self.state_dir.mkdir(mode=0o755)
        workdir.chmod(0o755)  # the server runs as nobody when we are root
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.password = secrets.token_urlsafe(16)
        self.databases: set[str] = set()

    def _script(self, action: str) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PG_PORT": str(self.port),
            "PG_DIR": str(self.state_dir),
            "PG_USER": "dagster",
            "PG_DB": "dagster",
            "PG_PASSWORD": self.password,  # by environment: never argv
        }
        subprocess.run([str(REPO_DIR / "scripts" / "postgres.sh"), action], env=env, check=True)

    def __enter__(self) -> BenchPostgres:
        self._script("start")
        return self

    def __exit__(self, *exc) -> None:
        self._script("stop")

    def child_env(self, series: Path) -> dict[str, str]:
        database = "bench_" + series.name.replace("-", "_")
        if database not in self.databases:
            import psycopg2

            conn = psycopg2.connect(
                host="127.0.0.1", port=self.port, user="dagster", password=self.password,
                dbname="dagster",
            )  # fmt: skip
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{database}"')
            conn.close()
            self.databases.add(database)
        return {
            "FIN_BENCH_PG_PORT": str(self.port),
            "DAGSTER_POSTGRES_HOST": "127.0.0.1",
            "DAGSTER_POSTGRES_USER": "dagster",
            "DAGSTER_POSTGRES_PASSWORD": self.password,
            "DAGSTER_POSTGRES_DB": database,
        }


POSTGRES: BenchPostgres | None = None


def run_one(variant: str, url: str, symbols: list[str], series: Path, full: bool = False) -> dict:
    env = {**os.environ, "DAGSTER_HOME": str(series / "dagster_home")}
    if variant == "dagster-postgres":
        env.update(POSTGRES.child_env(series))
    if variant == "dagster-subset-planned":
        env["DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"] = "1"
    env.pop("FIN_SYMBOLS", None)
    env.pop("FIN_DATA_DIR", None)
    background = cpu_busy_pct(0.5)  # what the rest of the machine does just before
    result = measure(command(variant, url, symbols, series / "data", full), env=env, cwd=REPO_DIR)
    result["background_cpu_pct"] = background
    result["load_1m"] = load_average()[0]
    if result["returncode"] != 0 or not (result["child"] or {}).get("success"):
        log(f"FAILED {variant} {len(symbols)}: {result.get('stderr_tail', '')[-1500:]}")
        raise SystemExit(1)
    return result


def fits(summary: dict, xs: list[int], x_name: str, variants: list[str]) -> dict:
    """Per variant and metric: intercept (fixed cost) and slope (marginal cost) of the medians."""
    out = {}
    for variant in variants:
        out[variant] = {}
        for metric in ("wall_s", "cpu_s", "peak_rss_mib", "child.run_s"):
            ys = [summary[f"{variant}/{x}"][metric]["median"] for x in xs]
            intercept, slope = linear_fit(xs, ys)
            out[variant][metric] = {"intercept": intercept, f"per_{x_name}": slope}
    return out


def bench_symbols(args: argparse.Namespace, server: StandInServer, workdir: Path) -> dict:
    sizes = [int(s) for s in args.sizes.split(",")]
    days = trading_days_from(SYMBOLS_AS_OF, args.repeats + 1)
    runs: dict[str, list[dict]] = {}
    server.state.as_of = days[0]
    variants = args.variants.split(",")
    for n in sizes:
        for variant in variants:
            series = workdir / f"{variant}-{n}"
            log(f"warm-up {variant} {n} symbols (as of {days[0]})")
            run_one(variant, server.url, SYMBOLS[:n], series)
    for round_index in range(args.repeats):
        server.state.as_of = days[round_index + 1]
        order = variants if round_index % 2 == 0 else variants[::-1]
        for n in sizes:
            for variant in order:
                result = run_one(variant, server.url, SYMBOLS[:n], workdir / f"{variant}-{n}")
                result["as_of"] = days[round_index + 1].isoformat()
                runs.setdefault(f"{variant}/{n}", []).append(result)
                log(
                    f"round {round_index + 1} {variant:7} {n:2} symbols:"
                    f" wall {result['wall_s']:.2f} s cpu {result['cpu_s']:.2f} s"
                    f" rss {result['peak_rss_mib']:.0f} MiB"
                )
    summary = {key: summarise(value, METRICS) for key, value in runs.items()}
    return {
        "sizes": sizes,
        "variants": variants,
        "runs": runs,
        "summary": summary,
        "fit": fits(summary, sizes, "symbol", variants),
    }


def bench_history(args: argparse.Namespace, server: StandInServer, workdir: Path) -> dict:
    years = [int(y) for y in args.years.split(",")]
    symbols = SYMBOLS[: args.symbols]
    runs: dict[str, list[dict]] = {}
    builds: dict[str, dict] = {}
    schedule: dict[int, list[dt.date]] = {}
    variants = args.variants.split(",")
    for length in years:
        start = synthetic.WALK_START.replace(year=synthetic.WALK_START.year + length)
        schedule[length] = trading_days_from(start, args.repeats + 1)
        server.state.as_of = schedule[length][0]
        for variant in variants:
            series = workdir / f"{variant}-{length}y"
            log(f"build {length}-year history, {variant} (full fetch as of {schedule[length][0]})")
            builds[f"{variant}/{length}"] = run_one(variant, server.url, symbols, series, full=True)
    for round_index in range(args.repeats):
        order = variants if round_index % 2 == 0 else variants[::-1]
        for length in years:
            server.state.as_of = schedule[length][round_index + 1]
            for variant in order:
                result = run_one(variant, server.url, symbols, workdir / f"{variant}-{length}y")
                runs.setdefault(f"{variant}/{length}", []).append(result)
                rows = (result["child"] or {}).get("csv_rows")
                log(
                    f"round {round_index + 1} {variant:7} {length:2} years ({rows} rows): wall"
                    f" {result['wall_s']:.2f} s cpu {result['cpu_s']:.2f} s"
                    f" rss {result['peak_rss_mib']:.0f} MiB"
                )
    summary = {key: summarise(value, METRICS) for key, value in runs.items()}
    return {
        "years": years,
        "variants": variants,
        "symbols": len(symbols),
        "builds": builds,
        "runs": runs,
        "summary": summary,
        "fit": fits(summary, years, "year", variants),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("symbols", "history"))
    parser.add_argument("--sizes", default="1,10,25", help="symbols mode: symbol counts")
    parser.add_argument("--years", default="1,5,10,20", help="history mode: history lengths")
    parser.add_argument("--symbols", type=int, default=25, help="history mode: symbol count")
    parser.add_argument("--repeats", type=int, default=None, help="5 (symbols) / 3 (history)")
    parser.add_argument(
        "--variants", default=None, help="default: all three (symbols), plain,dagster (history)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = 5 if args.mode == "symbols" else 3
    if args.variants is None:
        args.variants = ",".join(VARIANTS) if args.mode == "symbols" else "plain,dagster"

    payload = header(f"batch-{args.mode}", sys.argv)
    workdir = Path(tempfile.mkdtemp(prefix=f"fin-bench-batch-{args.mode}-"))
    state = StandInState(enforce_pacing=False, allow_full_output=True)
    global POSTGRES
    try:
        with contextlib.ExitStack() as services:
            if "dagster-postgres" in args.variants.split(","):
                POSTGRES = services.enter_context(BenchPostgres(workdir))
                log(f"PostgreSQL for dagster-postgres on 127.0.0.1:{POSTGRES.port}")
            server = services.enter_context(StandInServer(state=state))
            for symbol in SYMBOLS:  # the synthetic walks are computed once, before any timing
                synthetic._walk(symbol)
            log(f"stand-in at {server.url}, work dir {workdir}")
            if args.mode == "symbols":
                payload.update(bench_symbols(args, server, workdir))
            else:
                payload.update(bench_history(args, server, workdir))
            payload["stand_in_requests"] = len(state.requests)
    finally:  # after the services stopped: PostgreSQL's data folder is in there
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    payload["load_at_end"] = load_average()
    payload["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    path = write_results(f"batch-{args.mode}", payload)
    log(f"results: {path}")
    for name, fit in payload["fit"].items():
        wall = fit["wall_s"]
        per = next(k for k in wall if k.startswith("per_"))
        log(f"{name}: wall = {wall['intercept']:.3f} s + {wall[per]:.4f} s {per}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
