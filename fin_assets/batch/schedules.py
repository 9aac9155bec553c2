"""The batch job and its daily schedule."""

import dagster as dg

from fin_assets.batch.assets import GROUP

daily_batch_job = dg.define_asset_job(
    "daily_batch_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="Fetch every symbol in FIN_SYMBOLS, upsert the price history, run the checks "
    "and rewrite Datos_financieros.csv. To re-run one symbol, set "
    "ops.alpha_vantage_daily_raw.config.symbols in the launchpad.",
)

# 18:30 New York on weekdays: after the 16:00 close, once Alpha Vantage has the final values.
daily_batch_schedule = dg.ScheduleDefinition(
    name="daily_batch_schedule",
    job=daily_batch_job,
    cron_schedule="30 18 * * 1-5",
    execution_timezone="America/New_York",
    description="Weekdays at 18:30 America/New_York, after the US close: all symbols in one run.",
)
