"""`fin-assets batch` and `fin-assets stand-in`.

Dagster is imported only once the arguments and settings have passed: a refusal (exit 2) or
`fin-assets simulate`, which builds this parser too, does not pay for loading it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from fin_assets.lib import settings, symbols
from fin_assets.lib.alpha_vantage.stand_in import StandInServer, StandInState

if TYPE_CHECKING:
    import dagster as dg

STAND_IN_KEY = "stand-in"  # not a secret: the stand-in accepts any non-empty key


def add_commands(commands: argparse._SubParsersAction) -> None:
    batch = commands.add_parser(
        "batch",
        help="materialise the batch assets and their checks through Dagster",
        description="Fetch FIN_SYMBOLS from Alpha Vantage (or, with ALPHAVANTAGE_API_KEY unset, "
        "from the local stand-in serving synthetic prices), upsert the history, run the checks "
        "and write Datos_financieros.csv. Exits 1 when any symbol or check fails, 2 when a symbol "
        "is invalid or not in FIN_SYMBOLS.",
    )
    batch.add_argument(
        "--symbols",
        help="comma-separated partitions to run, each one of FIN_SYMBOLS; default all of them",
    )
    batch.set_defaults(handler=run_batch)

    stand_in = commands.add_parser(
        "stand-in", help="serve the local Alpha Vantage stand-in (synthetic prices)"
    )
    stand_in.add_argument("--port", type=int, default=8765)
    stand_in.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)"
    )
    stand_in.add_argument("--as-of", type=dt.date.fromisoformat, help="newest day served")
    stand_in.add_argument(
        "--enforce-pacing", action="store_true", help="answer the burst notice to calls < 1 s apart"
    )
    stand_in.add_argument("--allow-full", action="store_true", help="serve outputsize=full")
    stand_in.set_defaults(handler=run_stand_in)


@contextlib.contextmanager
def alpha_vantage_source() -> Iterator[str | None]:
    """With no API key, start the stand-in and point the pipeline at it through the same
    environment variables a user sets (yields its URL); with a key, leave everything as
    configured (yields None)."""
    if settings.is_set("ALPHAVANTAGE_API_KEY"):
        yield None
        return
    with StandInServer(state=StandInState(enforce_pacing=True)) as server:
        print(
            "ALPHAVANTAGE_API_KEY is not set: using the local Alpha Vantage stand-in at "
            f"{server.url}. Prices are SYNTHETIC.",
            flush=True,
        )
        # Through the environment: `dagster dev`'s processes inherit it.
        stand_in = {"ALPHAVANTAGE_API_KEY": STAND_IN_KEY, "ALPHAVANTAGE_BASE_URL": server.url}
        with settings.environment(stand_in):
            yield server.url


def run_batch(args: argparse.Namespace) -> int:
    try:
        configured = settings.common().symbols
        requested = symbols.parse_symbols(args.symbols) if args.symbols else configured
        ranges = symbols.contiguous_ranges(configured, requested)
        settings.alpha_vantage()  # the batch's own settings; the other flows' do not matter
    except (
        symbols.InvalidSymbolError,
        symbols.UnconfiguredSymbolError,
        settings.SettingsError,
    ) as error:
        print(f"batch: {error}", file=sys.stderr)
        return 2
    from fin_assets.cli.instance import CONSOLE_INFO_LOGS, local_instance
    from fin_assets.defs.batch.partitions import range_tags
    from fin_assets.defs.batch.recovery import release_dead_runs, this_host_tags
    from fin_assets.defs.batch.schedules import JOB_NAME

    with alpha_vantage_source():
        from fin_assets.definitions import build_definitions

        job = build_definitions().resolve_job_def(JOB_NAME)  # the environment is final here
        results = []
        with local_instance() as instance:
            for run_id in release_dead_runs(instance, [JOB_NAME]):
                print(f"run {run_id}: its process is gone; marked failed, its pool slot freed")
            # One run per stretch of neighbouring partitions: a run covers a key range.
            for keys in ranges:
                results.append(
                    job.execute_in_process(
                        instance=instance,
                        run_config=CONSOLE_INFO_LOGS,
                        tags={**range_tags(keys[0], keys[-1]), **this_host_tags()},
                        raise_on_error=False,
                    )
                )
    return max(report(result) for result in results)


def report(result: dg.ExecuteInProcessResult) -> int:
    """Print what a person needs after a batch run; 0 only when everything succeeded."""
    import dagster as dg

    print("\n== batch summary ==")
    ok = result.success
    for event in result.all_events:
        if event.is_step_failure:
            failure = event.step_failure_data
            text = (
                failure.user_failure_data.description
                if failure.user_failure_data and failure.user_failure_data.description
                else failure.error.message.strip()
            )
            print(f"FAILED step {event.step_key}: {text}")
    for evaluation in result.get_asset_check_evaluations():
        status = "passed" if evaluation.passed else "FAILED"
        print(f"check {evaluation.asset_key.to_user_string()}.{evaluation.check_name}: {status}")
        if not evaluation.passed:
            ok = False
            failed = evaluation.metadata.get("failed")
            if failed is not None:
                print(failed.value)
    updated: dict[str, list[str]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        if materialization.partition:
            key = materialization.asset_key.to_user_string()
            updated.setdefault(key, []).append(materialization.partition)
        elif materialization.asset_key == dg.AssetKey("datos_financieros_csv"):
            path = materialization.metadata["path"].value
            rows = materialization.metadata["dagster/row_count"].value
            print(f"wrote {path} ({rows} rows)")
    for key, partitions in updated.items():
        print(f"{key}: {', '.join(partitions)}")
    print("batch: " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


def run_stand_in(args: argparse.Namespace) -> int:
    state = StandInState(
        as_of=args.as_of, enforce_pacing=args.enforce_pacing, allow_full_output=args.allow_full
    )
    with StandInServer(args.port, state, host=args.host) as server:
        print(f"Alpha Vantage stand-in (synthetic prices) at {server.url}; Ctrl-C stops it.")
        print(f"  export ALPHAVANTAGE_BASE_URL={server.url} ALPHAVANTAGE_API_KEY={STAND_IN_KEY}")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0
