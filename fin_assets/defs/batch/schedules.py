"""The batch job and its daily schedule: one run for every symbol partition, skipped on days
when none of the configured exchanges trades (no quota spent on holidays)."""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from fin_assets.defs.batch.partitions import range_tags
from fin_assets.defs.batch.specs import GROUP
from fin_assets.lib import config, market_calendar

JOB_NAME = "daily_batch_job"
# 18:30 New York on weekdays: after the 16:00 close, once Alpha Vantage has the final values.
CRON = "30 18 * * 1-5"
NEW_YORK = ZoneInfo(config.MARKET_TIMEZONE)


def build_batch_job():
    return dg.define_asset_job(
        JOB_NAME,
        selection=dg.AssetSelection.groups(GROUP),
        tags={"fin_assets/flow": "batch"},
        description="Fetch the selected symbol partitions, check each symbol's fresh rows, merge "
        "the clean ones into their history and rewrite Datos_financieros.csv. To re-run one "
        "symbol or the failed ones, pick the partitions in the launchpad.",
    )


def schedule_decision(
    symbols: list[str], day: dt.date, job_name: str = JOB_NAME
) -> dg.RunRequest | dg.SkipReason:
    """Pure: a run over every symbol, or why there is none on `day`."""
    if not symbols:
        return dg.SkipReason("FIN_SYMBOLS is empty: nothing to fetch.")
    if not market_calendar.any_exchange_trades(symbols, day):
        return dg.SkipReason(
            f"{day.isoformat()}: no configured exchange trades today ({', '.join(symbols)}); "
            "no API quota spent."
        )
    return dg.RunRequest(
        run_key=f"{job_name}-{day.isoformat()}",
        tags=range_tags(symbols[0], symbols[-1]),
    )


def build_batch_schedule(job, symbols: list[str]) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="daily_batch_schedule",
        job=job,
        cron_schedule=CRON,
        execution_timezone=config.MARKET_TIMEZONE,
        description="Weekdays at 18:30 America/New_York, after the US close: every symbol in one "
        "run; skipped (with the reason) when no configured exchange trades that day.",
    )
    def daily_batch_schedule(context: dg.ScheduleEvaluationContext):
        scheduled = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        return schedule_decision(symbols, scheduled.astimezone(NEW_YORK).date())

    return daily_batch_schedule
