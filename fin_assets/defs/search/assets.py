"""The Elasticsearch indices as external assets: Logstash writes them, Dagster only observes.

They close the lineage: API -> raw -> prices -> CSV -> finanzas_batch, and
simulator -> topic -> transacciones_nrt.
"""

import dagster as dg

from fin_assets.lib import config

GROUP = "search"
PIPELINE_FILE = "logstash/pipeline/LOGSTASH_UNIFICADO_FIN_TRANS.conf"

finanzas_batch = dg.AssetSpec(
    key=config.BATCH_INDEX,
    deps=["datos_financieros_csv"],
    group_name=GROUP,
    kinds={"elasticsearch"},
    description=(
        f"Elasticsearch index `{config.BATCH_INDEX}`, materialised by Logstash: it re-reads "
        f"`{config.CSV_FILE_NAME}` after each daily rewrite and indexes one document per symbol "
        "and trading day (id `<simbolo>-<fecha>`, so a re-read overwrites). Observed by "
        "`elasticsearch_observation_sensor`; `finanzas_batch_matches_csv` reconciles it with "
        "the CSV."
    ),
    metadata={
        "index": config.BATCH_INDEX,
        "logstash_pipeline": PIPELINE_FILE,
        "index_template": "logstash/templates/finanzas_batch.json",
    },
)

transacciones_nrt = dg.AssetSpec(
    key=config.TRANSACTIONS_INDEX,
    deps=[config.DEFAULT_KAFKA_TOPIC],
    group_name=GROUP,
    kinds={"elasticsearch"},
    description=(
        f"Elasticsearch index `{config.TRANSACTIONS_INDEX}`, materialised by Logstash from the "
        f"Kafka topic `{config.DEFAULT_KAFKA_TOPIC}` in near real time: one document per "
        "event_id (a Kafka redelivery overwrites), with severity, tags and signed notional "
        "derived. Observed by `elasticsearch_observation_sensor`."
    ),
    metadata={
        "index": config.TRANSACTIONS_INDEX,
        "logstash_pipeline": PIPELINE_FILE,
        "index_template": "logstash/templates/transacciones_nrt.json",
    },
)

SEARCH_ASSETS = [finanzas_batch, transacciones_nrt]
