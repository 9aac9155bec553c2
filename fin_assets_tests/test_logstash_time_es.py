"""One time per batch row, against a real Elasticsearch with the real template: the documents
the pipeline writes (built by the mirror) put fecha and @timestamp at the same instant, the
trading day's New York midnight, and Elasticsearch still reads fecha back as the trading day."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from fin_assets.lib import config
from fin_assets.lib.search.elasticsearch import ElasticsearchClient
from fin_assets_tests.helpers import search_pipeline_mirror as mirror

pytestmark = pytest.mark.elasticsearch

LINES = [
    "2026-10-05,TSLA,220.1,225.5,219.0,222.3,81234567",  # EDT: midnight is 04:00 UTC
    "2026-12-01,TSLA,230.0,231.0,229.0,230.5,71234567",  # EST: midnight is 05:00 UTC
    "2026-12-01,IBM,150.0,151.0,149.0,150.5,1234567",
]


def market_midnight_ms(day: str) -> int:
    midnight = dt.datetime.combine(
        dt.date.fromisoformat(day), dt.time(), tzinfo=ZoneInfo(config.MARKET_TIMEZONE)
    )
    return int(midnight.timestamp() * 1000)


@pytest.fixture
def indexed(es_client: ElasticsearchClient) -> ElasticsearchClient:
    docs = [mirror.batch_document(line + "\n") for line in LINES]
    assert es_client.bulk_index(config.BATCH_INDEX, docs) == len(LINES)
    return es_client


def test_fecha_and_timestamp_are_one_instant_the_market_midnight(indexed):
    body = {
        "size": 10,
        "docvalue_fields": [
            {"field": "fecha", "format": "epoch_millis"},
            {"field": "@timestamp", "format": "epoch_millis"},
        ],
    }
    hits = indexed.request("POST", f"{config.BATCH_INDEX}/_search", body).json()["hits"]["hits"]
    assert len(hits) == len(LINES)
    for hit in hits:
        day = hit["_id"].split("-", 1)[1]  # <SIMBOLO>-<trading day>
        (fecha,), (timestamp,) = hit["fields"]["fecha"], hit["fields"]["@timestamp"]
        assert int(fecha) == int(timestamp) == market_midnight_ms(day), hit


def test_fecha_reads_back_as_the_trading_day(indexed):
    # What the observation sensor and the reconciliation check read: the date, as in the CSV.
    assert indexed.max_date(config.BATCH_INDEX, "fecha") == "2026-12-01"
    summaries = indexed.symbol_summaries()
    assert {s: (v.days, v.last_date) for s, v in summaries.items()} == {
        "TSLA": (2, "2026-12-01"),
        "IBM": (1, "2026-12-01"),
    }


def test_a_market_day_filter_finds_exactly_that_day(indexed):
    # A Kibana time filter for 5 October in New York: the row of that day, not its neighbour.
    query = {
        "query": {
            "range": {
                "fecha": {"gte": "2026-10-05", "lt": "2026-10-06", "time_zone": "America/New_York"}
            }
        }
    }
    hits = indexed.request("POST", f"{config.BATCH_INDEX}/_search", query).json()["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["TSLA-2026-10-05"]
