import dagster as dg

from fin_assets.batch.assets import (
    alpha_vantage_api,
    alpha_vantage_daily_raw,
    daily_prices,
    datos_financieros_csv,
)
from fin_assets.batch.checks import price_checks
from fin_assets.batch.schedules import daily_batch_job, daily_batch_schedule
from fin_assets.resources.alpha_vantage import alpha_vantage_from_env

defs = dg.Definitions(
    assets=[alpha_vantage_api, alpha_vantage_daily_raw, daily_prices, datos_financieros_csv],
    asset_checks=price_checks,
    jobs=[daily_batch_job],
    schedules=[daily_batch_schedule],
    resources={"alpha_vantage": alpha_vantage_from_env()},
)
