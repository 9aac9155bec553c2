"""A small read-mostly Elasticsearch client over `requests`, as a Dagster resource.

Why not the official client: it refuses to talk to OpenSearch (which the tests may run on), and
the few calls we need (count, a max, a terms aggregation, template and bulk for tests) are plain
JSON over HTTP. Credentials never appear in logs, metadata or exception texts: errors name the
URL without its user info, and the password only travels in the `Authorization` header.

Several nodes may be given (`https://es1:9200,https://es2:9200`): a request that gets no answer
(or a 503 from a node cut off from its master) is retried on the next node, and the client
keeps using the node that answered.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import requests
from pydantic import Field

from fin_assets import config, settings
from fin_assets.resources.settings import env_var_or, secret_env_var, unusable_resource


class ElasticsearchError(Exception):
    """Elasticsearch answered with an error (message free of credentials)."""


class ElasticsearchUnavailable(ElasticsearchError):
    """No answer: connection refused, DNS failure, timeout, TLS failure."""


class ElasticsearchAuthError(ElasticsearchError):
    """401 (credentials rejected) or 403 (the user lacks a privilege)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class NotElasticsearch(ElasticsearchError):
    """Something answered, but not the way Elasticsearch does (not JSON, or other fields)."""


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


def split_urls(urls: str | Sequence[str]) -> list[str]:
    """`"a, b"` or `["a", "b"]` -> `["a", "b"]`: one or more node URLs."""
    items = urls.split(",") if isinstance(urls, str) else list(urls)
    return [u.strip() for u in items if u.strip()]


# A node that answers 503 is up but cannot serve (no elected master yet): another may.
_TRY_NEXT_NODE_STATUSES = frozenset({502, 503, 504})


class ElasticsearchClient:
    """Thin JSON-over-HTTP client; works with Elasticsearch 8/9 and OpenSearch 2."""

    def __init__(
        self,
        url: str | Sequence[str],
        auth: tuple[str, str] | None = None,
        verify: bool | str = True,
        timeout: float = 5.0,
    ):
        nodes = [split_credentials(u) for u in split_urls(url)]
        if not nodes:
            raise ValueError("no Elasticsearch URL given")
        self.urls = [node_url for node_url, _ in nodes]
        url_auth = next((a for _, a in nodes if a is not None), None)
        self._preferred = 0
        self._session = requests.Session()
        self._session.auth = auth or url_auth
        # Passed on every request, not set on the session: requests lets REQUESTS_CA_BUNDLE /
        # CURL_CA_BUNDLE from the environment override a session's `verify`.
        self._verify = verify
        self._session.headers["Content-Type"] = "application/json"
        self._timeout = timeout

    @property
    def url(self) -> str:
        """All node URLs, comma-separated, without user info (accepted back by the client)."""
        return ",".join(self.urls)

    @property
    def username(self) -> str | None:
        auth = self._session.auth
        return auth[0] if isinstance(auth, tuple) else None

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
        path = path.lstrip("/")
        payload = data if data is not None else (json.dumps(body) if body is not None else None)
        failures: list[str] = []
        answered: tuple[str, requests.Response] | None = None
        # The node that answered last first, then the others in order.
        for node in self.urls[self._preferred :] + self.urls[: self._preferred]:
            try:
                response = self._session.request(
                    method,
                    f"{node}/{path}",
                    data=payload,
                    params=params,
                    timeout=self._timeout,
                    verify=self._verify,
                )
            except requests.RequestException as exc:
                # The exception text may carry a prepared request: only its class and the URL.
                failures.append(f"{node} ({type(exc).__name__})")
                continue
            answered = (node, response)
            if response.status_code not in _TRY_NEXT_NODE_STATUSES:
                self._preferred = self.urls.index(node)
                break
        if answered is None:
            where = failures[0] if len(failures) == 1 else "every node: " + ", ".join(failures)
            raise ElasticsearchUnavailable(f"Elasticsearch at {where} is unreachable") from None
        node, response = answered
        if response.status_code >= 400 and response.status_code not in set(ok_statuses):
            self._raise_for(method, node, path, response)
        return response

    def _raise_for(self, method: str, node: str, path: str, response: requests.Response):
        status = response.status_code
        reason = _error_reason(response)
        where = f"{method} {node}/{path}"
        if status == 401:
            raise ElasticsearchAuthError(
                f"{where} answered 401: the credentials of user {self.username or '(none)'} "
                "were rejected (ELASTICSEARCH_USER / ELASTICSEARCH_PASSWORD)",
                status,
            )
        if status == 403:
            raise ElasticsearchAuthError(
                f"{where} answered 403: user {self.username or '(none)'} lacks a privilege: "
                f"{reason}",
                status,
            )
        if "index_not_found_exception" in reason:
            raise IndexMissing(path.split("/", 1)[0])
        raise ElasticsearchError(f"{where} answered {status}: {reason}")

    def _json(self, response: requests.Response, *keys: str) -> Any:
        """The answer's JSON down `keys`; NotElasticsearch when it is not shaped like ES's."""
        try:
            value = response.json()
            for key in keys:
                value = value[key]
            return value
        except (ValueError, KeyError, TypeError, IndexError):
            content_type = response.headers.get("Content-Type", "no content type")
            raise NotElasticsearch(
                f"{response.request.method} {_without_query(response.url)} did not answer like "
                f"Elasticsearch (HTTP {response.status_code}, {content_type}, no "
                f"{'.'.join(keys) or 'JSON'}): is the URL right?"
            ) from None

    # --- reads used by the sensor and the check -------------------------------------------

    def health(self) -> str:
        return self._json(self.request("GET", "_cluster/health"), "status")

    def index_exists(self, index: str) -> bool:
        return self.request("HEAD", index, ok_statuses=(404,)).status_code == 200

    def count(self, index: str) -> int:
        return int(self._json(self.request("GET", f"{index}/_count"), "count"))

    def max_date(self, index: str, field: str) -> str | None:
        """Latest value of a date field as Elasticsearch formats it, or None when empty."""
        body = {"size": 0, "aggs": {"latest": {"max": {"field": field}}}}
        answer = self.request("POST", f"{index}/_search", body)
        latest = self._json(answer, "aggregations", "latest")
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
        answer = self.request("POST", f"{index}/_search", body)
        buckets = self._json(answer, "aggregations", "symbols", "buckets")
        summaries: dict[str, SymbolSummary] = {}
        for bucket in buckets:
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


def _without_query(url: str) -> str:
    node, _ = split_credentials(url)
    return node


def _error_reason(response: requests.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return response.text[:200]
    if isinstance(error, dict):
        return f"{error.get('type')}: {error.get('reason')}"
    return str(error)[:200]


class ElasticsearchResource(dg.ConfigurableResource):
    """Where the search indices live. Credentials are optional (the local test node runs without
    security); set them through `EnvVar` so the UI shows the variable name, never the value."""

    url: str = Field(
        default=config.DEFAULT_ELASTICSEARCH_URL,
        description="Base URL of one node, or of several comma-separated (the client fails "
        "over between them), e.g. https://es01:9200,https://es02:9200",
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
        return ",".join(split_credentials(u)[0] for u in split_urls(self.url))


def elasticsearch_from_env() -> ElasticsearchResource | dg.ResourceDefinition:
    """The resource from fin_assets/settings.py: credentials (and the URL, which may hold one)
    as EnvVars when set; with a bad setting, a stand-in that fails naming the variable."""
    try:
        values = settings.elasticsearch()
    except settings.SettingsError as error:
        return unusable_resource("elasticsearch", error)
    return ElasticsearchResource(
        url=env_var_or("ELASTICSEARCH_URL", values.url),
        username=env_var_or("ELASTICSEARCH_USER", None),
        password=secret_env_var("ELASTICSEARCH_PASSWORD", values.password),
        ca_certs=values.ca_certs,
    )
