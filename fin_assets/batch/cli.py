"""`fin-assets batch` and `fin-assets stand-in`."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
import time
from collections.abc import Iterator

import dagster as dg

from fin_assets import config
from fin_assets.alpha_vantage.stand_in import StandInServer, StandInState
from fin_assets.instance import CONSOLE_INFO_LOGS, local_instance

STAND_IN_KEY = "stand-in"  # not a secret: the stand-in accepts any non-empty key


def add_commands(commands: argparse._SubParsersAction) -> None:
    batch = commands.add_parser(
        "batch",
        help="materialise the batch assets and their checks through Dagster",
        description="Fetch FIN_SYMBOLS from Alpha Vantage (or, with ALPHAVANTAGE_API_KEY unset, "
        "from the local stand-in serving synthetic prices), upsert the history, run the checks "
        "and write Datos_financieros.csv. Exits 1 when any symbol or check fails.",
    )
    batch.add_argument("--symbols", help="comma-separated; default FIN_SYMBOLS")
    batch.set_defaults(handler=run_batch)

    stand_in = commands.add_parser(
        "stand-in", help="serve the local Alpha Vantage stand-in (synthetic prices)"
    )
    stand_in.add_argument("--port", type=int, default=8765)
    stand_in.add_argument("--as-of", type=dt.date.fromisoformat, help="newest day served")
    stand_in.add_argument(
        "--enforce-pacing", action="store_true", help="answer the burst notice to calls < 1 s apart"
    )
    stand_in.add_argument("--allow-full", action="store_true", help="serve outputsize=full")
    stand_in.set_defaults(handler=run_stand_in)


@contextlib.contextmanager
def alpha_vantage_source() -> Iterator[str]:
    """With no API key, start the stand-in and point the pipeline at it through the same
    environment variables a user sets; with a key, leave everything as configured."""
    if os.environ.get("ALPHAVANTAGE_API_KEY"):
        yield os.environ.get("ALPHAVANTAGE_BASE_URL", config.DEFAULT_ALPHAVANTAGE_BASE_URL)
        return
    with StandInServer(state=StandInState(enforce_pacing=True)) as server:
        saved = {k: os.environ.get(k) for k in ("ALPHAVANTAGE_API_KEY", "ALPHAVANTAGE_BASE_URL")}
        os.environ["ALPHAVANTAGE_API_KEY"] = STAND_IN_KEY
        os.environ["ALPHAVANTAGE_BASE_URL"] = server.url
        print(
            "ALPHAVANTAGE_API_KEY is not set: using the local Alpha Vantage stand-in at "
            f"{server.url}. Prices are SYNTHETIC.",
            flush=True,
        )
        try:
            yield server.url
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def run_batch(args: argparse.Namespace) -> int:
    symbols = config.parse_symbols(args.symbols) if args.symbols else []
    with alpha_vantage_source():
        from fin_assets.definitions import defs  # after the environment is final

        job = defs.resolve_job_def("daily_batch_job")
        run_config: dict = dict(CONSOLE_INFO_LOGS)
        if symbols:
            run_config["ops"] = {"alpha_vantage_daily_raw": {"config": {"symbols": symbols}}}
        with local_instance() as instance:
            result = job.execute_in_process(
                instance=instance, run_config=run_config, raise_on_error=False
            )
    return report(result)


def report(result: dg.ExecuteInProcessResult) -> int:
    """Print what a person needs after a batch run; 0 only when everything succeeded."""
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
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        if materialization.asset_key == dg.AssetKey("datos_financieros_csv"):
            path = materialization.metadata["path"].value
            rows = materialization.metadata["dagster/row_count"].value
            print(f"wrote {path} ({rows} rows)")
    print("batch: " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


def run_stand_in(args: argparse.Namespace) -> int:
    state = StandInState(
        as_of=args.as_of, enforce_pacing=args.enforce_pacing, allow_full_output=args.allow_full
    )
    with StandInServer(args.port, state) as server:
        print(f"Alpha Vantage stand-in (synthetic prices) at {server.url}; Ctrl-C stops it.")
        print(f"  export ALPHAVANTAGE_BASE_URL={server.url} ALPHAVANTAGE_API_KEY={STAND_IN_KEY}")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0
