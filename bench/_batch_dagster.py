"""One measured run of the product's `daily_batch_job` (the child of bench_batch.py): one run
over every symbol partition (a single-run backfill's range), as the schedule starts it.

The product's assets, checks and job, materialised with `execute_in_process` on a persistent
(SQLite) instance in DAGSTER_HOME, as `fin-assets batch` does with DAGSTER_HOME set (or, with
--ephemeral, on an in-memory instance, as it does without). The only
differences from `fin-assets batch`: the resources point at the bench's stand-in with pacing
off (`min_interval_seconds=0`, which the CLI cannot set), and `--full` fetches
`outputsize=full` (to build a long history through the same upsert).

Prints one JSON line: the phases' times measured inside the process.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

import dagster as dg  # noqa: E402
import yaml  # noqa: E402
from _child_stats import peak_rss_mib  # noqa: E402

from fin_assets.cli.instance import INSTANCE_CONFIG, ensure_instance_config  # noqa: E402
from fin_assets.defs.batch.definitions import build_defs  # noqa: E402
from fin_assets.defs.batch.partitions import range_tags  # noqa: E402
from fin_assets.defs.batch.schedules import JOB_NAME  # noqa: E402
from fin_assets.defs.resources.alpha_vantage import AlphaVantageResource  # noqa: E402
from fin_assets.defs.resources.settings import PipelineSettings  # noqa: E402

T_IMPORTED = time.perf_counter()


class FullHistoryAlphaVantage(AlphaVantageResource):
    """outputsize=full: only used to build a long history (the resource has no such field)."""

    def get_client(self):
        client = super().get_client()
        client.outputsize = "full"
        return client


PER_SYMBOL_LINE = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}: \d+ (days |new day)")


def drop_per_symbol_log_lines() -> None:
    """What-if for the proposed fix (fin_assets is not changed): the per-symbol
    `context.log.info` lines of alpha_vantage_daily_raw and daily_prices are not emitted, so
    they are not stored as events; everything else is logged as usual."""
    from dagster._core.log_manager import DagsterLogManager

    original = DagsterLogManager.info

    def info(self, msg, *args, **kwargs):
        if isinstance(msg, str) and PER_SYMBOL_LINE.match(msg):
            return None
        return original(self, msg, *args, **kwargs)

    DagsterLogManager.info = info


DOCKER_INSTANCE = Path(__file__).resolve().parents[1] / "docker" / "dagster" / "dagster.yaml"


def write_postgres_instance_config(dagster_home: Path) -> None:
    """The product's instance settings (pools, run limits, monitoring) with the docker stack's
    `storage: postgres:` block (its DAGSTER_POSTGRES_* variables, set by bench_batch.py); only
    the port differs, the bench's server is on a free one."""
    config = yaml.safe_load(INSTANCE_CONFIG)
    config["storage"] = yaml.safe_load(DOCKER_INSTANCE.read_text())["storage"]
    config["storage"]["postgres"]["postgres_db"]["port"] = {"env": "FIN_BENCH_PG_PORT"}
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--symbols", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--ephemeral", action="store_true", help="in-memory instance")
    parser.add_argument(
        "--postgres", action="store_true", help="PostgreSQL instance (see bench_batch.py)"
    )
    parser.add_argument(
        "--what-if-no-per-symbol-logs", action="store_true", help="see drop_per_symbol_log_lines"
    )
    parser.add_argument("--profile", help="write a cProfile of the run phase to this file")
    args = parser.parse_args()

    if args.what_if_no_per_symbol_logs:
        drop_per_symbol_log_lines()
    if args.postgres:
        write_postgres_instance_config(Path(os.environ["DAGSTER_HOME"]))
    elif not args.ephemeral:
        ensure_instance_config(Path(os.environ["DAGSTER_HOME"]))
    resource_class = FullHistoryAlphaVantage if args.full else AlphaVantageResource
    symbols = args.symbols.split(",")
    defs = dg.Definitions.merge(
        build_defs(
            symbols,
            {
                "settings": PipelineSettings(data_dir=args.data_dir, symbols=args.symbols),
                "alpha_vantage": resource_class(
                    api_key="bench", base_url=args.url, min_interval_seconds=0
                ),
            },
        ),
        dg.Definitions(executor=dg.in_process_executor),
    )
    job = defs.resolve_job_def(JOB_NAME)
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    t_defs = time.perf_counter()
    opened = dg.DagsterInstance.ephemeral() if args.ephemeral else dg.DagsterInstance.get()
    with opened as instance:
        t_instance = time.perf_counter()
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        # One run over every symbol partition, as the schedule starts it.
        result = job.execute_in_process(
            instance=instance,
            run_config=run_config,
            tags=range_tags(symbols[0], symbols[-1]),
            raise_on_error=False,
        )
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        t_run = time.perf_counter()
    failed_checks = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    rows = None
    for event in result.get_asset_materialization_events():
        if event.materialization.asset_key == dg.AssetKey("datos_financieros_csv"):
            rows = event.materialization.metadata["dagster/row_count"].value
    t_reported = time.perf_counter()
    print(
        json.dumps(
            {
                "success": result.success and not failed_checks,
                "failed_checks": failed_checks,
                "csv_rows": rows,
                "import_s": T_IMPORTED - T0,
                "definitions_s": t_defs - T_IMPORTED,
                "instance_s": t_instance - t_defs,
                "run_s": t_run - t_instance,
                "in_process_s": t_run - T0,
                # closing the instance and reading the result, before the interpreter exits
                "after_run_s": t_reported - t_run,
                "peak_rss_mib": peak_rss_mib(),
            }
        )
    )
    return 0 if result.success and not failed_checks else 1


if __name__ == "__main__":
    raise SystemExit(main())
