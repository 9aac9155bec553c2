"""What the observation sensor reports per index: pure functions over the client."""

from __future__ import annotations

import json
from dataclasses import dataclass

from fin_assets.lib import config
from fin_assets.lib.search.elasticsearch import ElasticsearchClient

# Index -> the date field that says how fresh it is.
OBSERVED_INDICES: dict[str, str] = {
    config.BATCH_INDEX: "fecha",
    config.TRANSACTIONS_INDEX: "@timestamp",
}


@dataclass(frozen=True)
class IndexState:
    index: str
    doc_count: int
    latest_date: str | None

    def metadata(self) -> dict[str, int | str]:
        # Plain int/str only: numpy or pandas scalars would fail the event.
        return {
            "index": self.index,
            "doc_count": int(self.doc_count),
            "latest_date": self.latest_date or "",
        }

    def fingerprint(self) -> str:
        return f"{self.doc_count}|{self.latest_date}"


def read_state(client: ElasticsearchClient, index: str, date_field: str) -> IndexState:
    """Raises IndexMissing / ElasticsearchUnavailable, which the sensor turns into a skip."""
    return IndexState(index, client.count(index), client.max_date(index, date_field))


def parse_cursor(cursor: str | None) -> dict[str, str]:
    try:
        value = json.loads(cursor) if cursor else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
