"""The data the search-leg tests index and compare: simulator events (fixed samples and the
simulator's own generator), a small price frame, the CSV the batch flow writes from it, and that
CSV indexed the way Logstash would (through the Python mirror of the pipeline). Shared by the
mirror, Elasticsearch, cluster, secured-node, Ruby-filter and outbound-HTTP tests.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from fin_assets.lib import config
from fin_assets.lib.batch.prices import to_csv_text, write_atomically
from fin_assets.lib.search.elasticsearch import ElasticsearchClient
from fin_assets.lib.simulator.events import EventGenerator
from fin_assets_tests.helpers import search_pipeline_mirror as mirror

SAMPLE_EVENTS = [
    {
        "event_id": "0b7f3c1e-4d2a-4c1b-9a8e-2f6d5c4b3a21",
        "ts": "2026-10-05T14:30:01.123Z",
        "event_type": "trade",
        "symbol": "TSLA",
        "seq": 0,
        "level": "INFO",
        "message": "BUY 10 TSLA @ 222.3",
        "run_id": "run-1",
        "side": "SELL",
        "quantity": 10,
        "price": 222.3,
        "amount": 2223.0,
        "account": "ACC-000042",
    },
    {
        "event_id": "1c8f3c1e-4d2a-4c1b-9a8e-2f6d5c4b3a22",
        "ts": "2026-10-05T14:30:02.000Z",
        "event_type": "price_alert",
        "symbol": "IBM",
        "seq": 1,
        "level": "WARNING",
        "message": "IBM moved 2.5%",
        "run_id": "run-1",
        "previous_price": 200.0,
        "new_price": 205.0,
        "change_pct": 2.5,
        "threshold_pct": 2.0,
        "direction": "UP",
    },
    {
        "event_id": "2d9f3c1e-4d2a-4c1b-9a8e-2f6d5c4b3a23",
        "ts": "2026-10-05T14:30:03.500Z",
        "event_type": "api_error",
        "symbol": "TSLA",
        "seq": 2,
        "level": "ERROR",
        "message": "quote API timed out",
        "run_id": "run-1",
        "endpoint": "/quote",
        "error_kind": "timeout",
        "http_status": None,
        "latency_ms": 5000,
        "retry_after_s": 1.5,
    },
]


def simulator_events(count: int) -> list[dict]:
    """Events from the simulator's own generator, so field drift on its side is caught here."""
    generator = EventGenerator(["TSLA", "IBM"], {"TSLA": 220.0, "IBM": 150.0}, "t", seed=7)
    return [generator.next_event() for _ in range(count)]


DAYS = [dt.date(2026, 9, 30), dt.date(2026, 10, 1), dt.date(2026, 10, 2)]


def price_frame() -> pd.DataFrame:
    rows = []
    for symbol, base in (("IBM", 150.0), ("TSLA", 220.0)):
        for offset, day in enumerate(DAYS):
            close = round(base + offset * 1.1, 2)
            rows.append((day, symbol, close - 1, close + 2, close - 2, close, 1000 + offset))
    frame = pd.DataFrame(rows, columns=list(config.CSV_COLUMNS))
    frame["fecha"] = pd.to_datetime(frame["fecha"])
    return frame


def write_csv(data_dir: Path, frame: pd.DataFrame) -> Path:
    """The batch flow's own writer: the CSV contract exactly as Logstash will read it."""
    path = data_dir / config.CSV_FILE_NAME
    write_atomically(path, to_csv_text(frame))
    return path


def index_like_logstash(client: ElasticsearchClient, csv_path: Path) -> int:
    lines = csv_path.read_text(encoding="utf-8").splitlines(keepends=True)
    docs = [doc for doc in map(mirror.batch_document, lines) if doc is not None]
    return client.bulk_index(config.BATCH_INDEX, docs)
