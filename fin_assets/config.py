"""Names and defaults shared by every flow: environment variables, file names, topic and index.

The artefact names (file, topic, index, CSV columns) belong to the users and stay in Spanish.
"""

from __future__ import annotations

import os

import dagster as dg

# Environment variables and their defaults (documented in the README).
DEFAULT_ALPHAVANTAGE_BASE_URL = "https://www.alphavantage.co/query"
DEFAULT_SYMBOLS = "TSLA"
DEFAULT_DATA_DIR = "./data"
DEFAULT_KAFKA_BOOTSTRAP_SERVERS = "localhost:9092"
DEFAULT_KAFKA_TOPIC = "transacciones_financieras"
DEFAULT_ELASTICSEARCH_URL = "http://localhost:9200"

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


def env_or_default(name: str, default: str) -> dg.EnvVar | str:
    """`EnvVar(name)` when the variable is set, else the literal default.

    A bare `EnvVar` fails the run when the variable is unset; our variables all have defaults,
    and the UI should still show where a set value came from.
    """
    return dg.EnvVar(name) if os.environ.get(name) else default


def parse_symbols(text: str) -> list[str]:
    """`" tsla, IBM,,tsla "` -> `["TSLA", "IBM"]`; raises `symbols.InvalidSymbolError` naming
    every entry that is not a valid symbol (see `fin_assets.symbols`)."""
    from fin_assets import symbols

    return symbols.parse_symbols(text)
