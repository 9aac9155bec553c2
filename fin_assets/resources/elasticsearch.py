"""A small read-mostly Elasticsearch client over `requests`, as a Dagster resource.

Why not the official client: it refuses to talk to OpenSearch (which the tests may run on), and
the few calls we need (count, a max, a terms aggregation, template and bulk for tests) are plain
JSON over HTTP. Credentials never appear in logs, metadata or exception texts: errors name the
URL without its user info, and the password only travels in the `Authorization` header.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import requests
from pydantic import Field

from fin_assets import config


class ElasticsearchError(Exception):
    """Elasticsearch answered with an error (message free of credentials)."""


class ElasticsearchUnavailable(ElasticsearchError):
    """No answer: connection refused, DNS failure, timeout, TLS failure."""


class IndexMissing(ElasticsearchError):
    """The index does not exist (yet): Logstash has not written to it."""

    def __init__(self, index: str):
        super().__init__(f"index {index!r} does not exist")
        self.index = index


@dataclass(frozen=True)
class SymbolSummary:
    """What the reconciliation compares per symbol."""

    days: int
    last_date: str | None
    last_close: float | None


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """`https://u:p@h:9200/` -> (`https://h:9200`, ("u", "p")): user info never stays in a URL
    we could print."""
    parts = urlsplit(url.strip())
    auth = None
    if parts.username is not None:
        auth = (parts.username, parts.password or "")
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), auth


class ElasticsearchClient:
    """Thin JSON-over-HTTP client; works with Elasticsearch 8/9 and OpenSearch 2."""

    def __init__(
        self,
        url: str,
        auth: tuple[str, str] | None = None,
        verify: bool | str = True,
        timeout: float = 5.0,
    ):
        self.url, url_auth = split_credentials(url)
        self._session = requests.Session()
        self._session.auth = auth or url_auth
        self._session.verify = verify
        self._session.headers["Content-Type"] = "application/json"
        self._timeout = timeout

    def __repr__(self) -> str:  # never the auth
        return f"ElasticsearchClient({self.url!r})"

    def close(self) -> None:
        self._session.close()

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        data: str | None = None,
        ok_statuses: Iterable[int] = (),
        params: Mapping[str, str] | None = None,
    ) -> requests.Response:
        target = f"{self.url}/{path.lstrip('/')}"
        try:
            response = self._session.request(
                method,
                target,
                data=data if data is not None else (json.dumps(body) if body is not None else None),
                params=params,
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            # The exception text may carry a prepared request; report only its class and the URL.
            raise ElasticsearchUnavailable(
                f"Elasticsearch at {self.url} is unreachable ({type(exc).__name__})"
            ) from None
        if response.status_code >= 400 and response.status_code not in set(ok_statuses):
            reason = _error_reason(response)
            if "index_not_found_exception" in reason:
                index = path.lstrip("/").split("/", 1)[0]
                raise IndexMissing(index)
            raise ElasticsearchError(
                f"{method} {self.url}/{path.lstrip('/')} answered {response.status_code}: {reason}"
            )
        return response

    # --- reads used by the sensor and the check -------------------------------------------

    def health(self) -> str:
        return self.request("GET", "_cluster/health").json()["status"]

    def index_exists(self, index: str) -> bool:
        return self.request("HEAD", index, ok_statuses=(404,)).status_code == 200

    def count(self, index: str) -> int:
        return int(self.request("GET", f"{index}/_count").json()["count"])

    def max_date(self, index: str, field: str) -> str | None:
        """Latest value of a date field as Elasticsearch formats it, or None when empty."""
        body = {"size": 0, "aggs": {"latest": {"max": {"field": field}}}}
        latest = self.request("POST", f"{index}/_search", body).json()["aggregations"]["latest"]
        return latest.get("value_as_string") if latest.get("value") is not None else None

    def symbol_summaries(
        self,
        index: str = config.BATCH_INDEX,
        symbol_field: str = "simbolo",
        date_field: str = "fecha",
        close_field: str = "cierre",
        max_symbols: int = 10_000,
    ) -> dict[str, SymbolSummary]:
        """Per symbol: number of documents (days), latest date, close on that date."""
        body = {
            "size": 0,
            "aggs": {
                "symbols": {
                    "terms": {"field": symbol_field, "size": max_symbols},
                    "aggs": {
                        "last_date": {"max": {"field": date_field}},
                        # top_hits lives in the server core (top_metrics needs x-pack analytics).
                        "last_row": {
                            "top_hits": {
                                "size": 1,
                                "sort": [{date_field: {"order": "desc"}}],
                                "_source": {"includes": [date_field, close_field]},
                            }
                        },
                    },
                }
            },
        }
        buckets = self.request("POST", f"{index}/_search", body).json()["aggregations"]["symbols"]
        summaries: dict[str, SymbolSummary] = {}
        for bucket in buckets["buckets"]:
            hits = bucket["last_row"]["hits"]["hits"]
            source = hits[0]["_source"] if hits else {}
            close = source.get(close_field)
            summaries[str(bucket["key"])] = SymbolSummary(
                days=int(bucket["doc_count"]),
                last_date=bucket["last_date"].get("value_as_string"),
                last_close=float(close) if close is not None else None,
            )
        return summaries

    # --- writes used by the setup and the tests -------------------------------------------

    def put_index_template(self, name: str, template: Mapping[str, Any]) -> None:
        self.request("PUT", f"_index_template/{name}", template)

    def delete_index(self, index: str) -> None:
        self.request("DELETE", index, ok_statuses=(404,))

    def bulk_index(self, index: str, docs: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Index `(id, document)` pairs and refresh; returns how many were written."""
        lines = []
        for doc_id, doc in docs:
            lines.append(json.dumps({"index": {"_index": index, "_id": doc_id}}))
            lines.append(json.dumps(doc))
        if not lines:
            return 0
        result = self.request(
            "POST", "_bulk", data="\n".join(lines) + "\n", params={"refresh": "true"}
        ).json()
        if result.get("errors"):
            failed = [i["index"] for i in result["items"] if i["index"].get("error")]
            raise ElasticsearchError(
                f"bulk indexing failed for {len(failed)} documents: {failed[0]}"
            )
        return len(result["items"])


def _error_reason(response: requests.Response) -> str:
    try:
        error = response.json().get("error")
    except ValueError:
        return response.text[:200]
    if isinstance(error, dict):
        return f"{error.get('type')}: {error.get('reason')}"
    return str(error)[:200]


class ElasticsearchResource(dg.ConfigurableResource):
    """Where the search indices live. Credentials are optional (the local test node runs without
    security); set them through `EnvVar` so the UI shows the variable name, never the value."""

    url: str = Field(
        default=config.DEFAULT_ELASTICSEARCH_URL, description="Base URL, e.g. https://es:9200"
    )
    username: str | None = Field(default=None, description="Basic-auth user (ELASTICSEARCH_USER)")
    password: str | None = Field(
        default=None, description="Basic-auth password (ELASTICSEARCH_PASSWORD)"
    )
    ca_certs: str | None = Field(
        default=None, description="CA bundle to verify https (ELASTICSEARCH_CA)"
    )
    timeout_seconds: float = Field(default=5.0, description="Per-request timeout")

    def get_client(self) -> ElasticsearchClient:
        auth = (self.username, self.password or "") if self.username else None
        return ElasticsearchClient(
            self.url, auth=auth, verify=self.ca_certs or True, timeout=self.timeout_seconds
        )

    @property
    def display_url(self) -> str:
        return split_credentials(self.url)[0]


def elasticsearch_from_env() -> ElasticsearchResource:
    """Every field from its environment variable when set (as an EnvVar), else the default."""
    optional = {
        field: dg.EnvVar(var)
        for field, var in (
            ("username", "ELASTICSEARCH_USER"),
            ("password", "ELASTICSEARCH_PASSWORD"),
            ("ca_certs", "ELASTICSEARCH_CA"),
        )
        if os.environ.get(var)
    }
    return ElasticsearchResource(
        url=config.env_or_default("ELASTICSEARCH_URL", config.DEFAULT_ELASTICSEARCH_URL),
        **optional,
    )
