"""The batch assets as specs: keys, partitions, descriptions, schema, lineage, freshness."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from fin_assets.lib import config
from fin_assets.lib.alpha_vantage.responses import SERIES_KEY

GROUP = "batch"
RAW = dg.AssetKey("alpha_vantage_daily_raw")
PRICES = dg.AssetKey("daily_prices")
CSV = dg.AssetKey("datos_financieros_csv")
EVERY_SYMBOL_FETCHED = "every_symbol_fetched"

PRICE_COLUMN_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("fecha", "date", description="Trading day (the exchange's local date)"),
        dg.TableColumn("simbolo", "string", description="Ticker symbol"),
        dg.TableColumn("apertura", "float", description="Open"),
        dg.TableColumn("maximo", "float", description="High"),
        dg.TableColumn("minimo", "float", description="Low"),
        dg.TableColumn("cierre", "float", description="Close (as traded, not split-adjusted)"),
        dg.TableColumn("volumen", "int", description="Shares traded"),
    ]
)

# Every CSV column is the same column of daily_prices: the CSV is the union of the histories.
CSV_COLUMN_LINEAGE = dg.TableColumnLineage(
    {
        column: [dg.TableColumnDep(asset_key=PRICES, column_name=column)]
        for column in config.CSV_COLUMNS
    }
)

# The schedule runs at 18:30 New York; a CSV not rewritten by 20:00 on a weekday is late.
CSV_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="0 20 * * 1-5",
    lower_bound_delta=dt.timedelta(hours=2),
    timezone=config.MARKET_TIMEZONE,
)

alpha_vantage_api = dg.AssetSpec(
    "alpha_vantage_api",
    group_name=GROUP,
    kinds={"api"},
    description="Alpha Vantage's `TIME_SERIES_DAILY` endpoint (`ALPHAVANTAGE_BASE_URL`; the local "
    "stand-in serving synthetic prices when `ALPHAVANTAGE_API_KEY` is unset). External: "
    "nothing here materialises it; `alpha_vantage_daily_raw` reads it.",
)


def batch_specs(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            RAW,
            deps=[alpha_vantage_api],
            partitions_def=partitions_def,
            group_name=GROUP,
            kinds={"json"},
            skippable=True,
            tags={"source": "alpha_vantage"},
            description="TIME_SERIES_DAILY responses, one partition per symbol: every fetch is "
            f"kept as received under `$FIN_DATA_DIR/raw/<SYMBOL>/` (`{SERIES_KEY}` inside); "
            "the newest file is the partition's value. A symbol whose fetch fails is failed "
            "in the partition bar and named in `every_symbol_fetched`.",
        ),
        dg.AssetSpec(
            PRICES,
            deps=[RAW],
            partitions_def=partitions_def,
            group_name=GROUP,
            kinds={"pandas", "csv"},
            skippable=True,
            metadata={"dagster/column_schema": PRICE_COLUMN_SCHEMA},
            description="Daily prices per symbol, stored as `$FIN_DATA_DIR/history/<SYMBOL>.csv`"
            " (the free API returns only the last 100 days: the history keeps the rest). Fresh "
            "rows are checked before they are merged; a symbol failing a check is quarantined "
            "(history untouched, partition failed) and the next clean fetch heals it.",
        ),
        dg.AssetSpec(
            CSV,
            deps=[PRICES],
            group_name=GROUP,
            kinds={"csv"},
            skippable=True,
            freshness_policy=CSV_FRESHNESS,
            metadata={
                "dagster/column_schema": PRICE_COLUMN_SCHEMA,
                "path": f"$FIN_DATA_DIR/{config.CSV_FILE_NAME}",
            },
            description=f"`$FIN_DATA_DIR/{config.CSV_FILE_NAME}`, the file Logstash ships to "
            f"`{config.BATCH_INDEX}`: every configured symbol's history, sorted by simbolo then "
            "fecha, replaced atomically. A symbol quarantined today keeps its previous rows; "
            "the file is never written empty.",
        ),
    ]


RAW_CHECK_SPECS = [
    dg.AssetCheckSpec(
        EVERY_SYMBOL_FETCHED,
        asset=RAW,
        description="Every requested symbol came back as data; names each failure's cause.",
    )
]
