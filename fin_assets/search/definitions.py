"""The search flow's Definitions: index assets, their observation sensor and reconciliation."""

import dagster as dg

from fin_assets.resources.elasticsearch import elasticsearch_from_env
from fin_assets.search.assets import SEARCH_ASSETS
from fin_assets.search.checks import finanzas_batch_matches_csv
from fin_assets.search.sensors import elasticsearch_observation_sensor

defs = dg.Definitions(
    assets=SEARCH_ASSETS,
    asset_checks=[finanzas_batch_matches_csv],
    sensors=[elasticsearch_observation_sensor],
    resources={"elasticsearch": elasticsearch_from_env()},
)
