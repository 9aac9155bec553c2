"""The batch flow's partitioned definitions, for a list of symbols (one partition each).

Partitions come from FIN_SYMBOLS, read when the code location loads, so these are built by a
function; the flow's fixed parts (the `alpha_vantage_api` spec, `dead_run_sensor`) sit at module
level in their own modules and are loaded from there. Tests build their own set with
`build_defs`.
"""

from __future__ import annotations

import dagster as dg

from fin_assets.defs.batch.alerts import build_failure_sensor
from fin_assets.defs.batch.assets import build_batch_assets
from fin_assets.defs.batch.partitions import symbol_partitions
from fin_assets.defs.batch.schedules import build_batch_job, build_batch_schedule
from fin_assets.defs.resources.settings import configured_symbols


def build_defs(symbols: list[str], resources: dict | None = None) -> dg.Definitions:
    partitions_def = symbol_partitions(symbols)
    job = build_batch_job()
    return dg.Definitions(
        assets=[build_batch_assets(partitions_def)],
        jobs=[job],
        schedules=[build_batch_schedule(job, symbols)],
        sensors=[build_failure_sensor()],
        resources=resources or {},
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs(configured_symbols())
