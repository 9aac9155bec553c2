"""Names shared by every flow: file names, topic and index (the environment variables and their
defaults live in fin_assets/lib/settings.py).

The artefact names (file, topic, index, CSV columns) belong to the users and stay in Spanish.
"""

from __future__ import annotations

# Re-exported: the defaults live in settings.py, with the variables they default.
from fin_assets.lib.settings import (  # noqa: F401
    DEFAULT_ALPHAVANTAGE_BASE_URL,
    DEFAULT_DATA_DIR,
    DEFAULT_ELASTICSEARCH_URL,
    DEFAULT_KAFKA_BOOTSTRAP_SERVERS,
    DEFAULT_KAFKA_TOPIC,
    DEFAULT_SYMBOLS,
)

# Files under $FIN_DATA_DIR.
CSV_FILE_NAME = "Datos_financieros.csv"
EXTRACTION_LOG_FILE_NAME = "extraccion_finanzas.log"
TRANSACTIONS_LOG_FILE_NAME = "logs_transacciones.log"
RAW_DIR_NAME = "raw"
HISTORY_DIR_NAME = "history"

# The CSV contract that Logstash's csv filter mirrors.
CSV_COLUMNS = ("fecha", "simbolo", "apertura", "maximo", "minimo", "cierre", "volumen")

# Elasticsearch indices written by Logstash.
BATCH_INDEX = "finanzas_batch"
TRANSACTIONS_INDEX = "transacciones_nrt"

MARKET_TIMEZONE = "America/New_York"


def parse_symbols(text: str) -> list[str]:
    """`" tsla, IBM,,tsla "` -> `["TSLA", "IBM"]`; raises `symbols.InvalidSymbolError` naming
    every entry that is not a valid symbol (see `fin_assets.lib.symbols`)."""
    from fin_assets.lib import symbols

    return symbols.parse_symbols(text)
