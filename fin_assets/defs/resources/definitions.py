"""The resources every flow's assets, ops and sensors ask for, each configured from the
environment (fin_assets/lib/settings.py) with secrets as EnvVars."""

import dagster as dg

from fin_assets.defs.resources.alpha_vantage import alpha_vantage_from_env
from fin_assets.defs.resources.elasticsearch import elasticsearch_from_env
from fin_assets.defs.resources.kafka import kafka_from_env
from fin_assets.defs.resources.settings import settings_from_env


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "settings": settings_from_env(),
            "alpha_vantage": alpha_vantage_from_env(),
            "kafka": kafka_from_env(),
            "elasticsearch": elasticsearch_from_env(),
        }
    )
