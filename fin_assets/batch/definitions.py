"""The batch flow's Definitions, for a given list of symbols (one partition each).

`defs` reads FIN_SYMBOLS when the code location loads; tests build their own with `build_defs`.
"""

from __future__ import annotations

import dagster as dg

from fin_assets.batch.alerts import build_failure_sensor
from fin_assets.batch.assets import build_batch_assets
from fin_assets.batch.partitions import symbol_partitions
from fin_assets.batch.recovery import dead_run_sensor
from fin_assets.batch.schedules import build_batch_job, build_batch_schedule
from fin_assets.batch.specs import alpha_vantage_api
from fin_assets.resources.alpha_vantage import alpha_vantage_from_env
from fin_assets.resources.settings import configured_symbols


def build_defs(symbols: list[str], resources: dict | None = None) -> dg.Definitions:
    partitions_def = symbol_partitions(symbols)
    job = build_batch_job()
    return dg.Definitions(
        assets=[alpha_vantage_api, build_batch_assets(partitions_def)],
        jobs=[job],
        schedules=[build_batch_schedule(job, symbols)],
        sensors=[build_failure_sensor(), dead_run_sensor],
        resources=resources or {"alpha_vantage": alpha_vantage_from_env()},
    )


defs = build_defs(configured_symbols())
