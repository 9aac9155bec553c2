"""An Elasticsearch client: the official one (`elasticsearch` 8.x, matching the
8.19 server), held to the product's outbound-HTTP policy (fin_assets/lib/outbound_http.py).

- `PolicyNode`, the client's HTTP node, gives every request an overall deadline (a server
  dribbling bytes cannot hold a sensor tick), caps the decompressed body, and never follows a
  redirect: Elasticsearch does not redirect, so one means a proxy or login page in front.
- Every failure becomes one of this module's `ElasticsearchError`s, whose text is built here:
  bounded, free of the password in any of its forms (also when the server echoes it), and
  without the client library's exception chain.
- Every answer is checked for the shape Elasticsearch gives (`{"count": "many"}`, `1e400`, a
  list where an object belongs...): anything else is `NotElasticsearch`, never a KeyError.

Credentials travel only in the `Authorization` header; URLs shown never hold user info.
Several nodes may be given (`https://es1:9200,https://es2:9200`): a node that gets no answer
(or answers 502/503/504) is marked dead and the request goes to the next one.
"""

from __future__ import annotations

import json
import math
import ssl
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import urllib3
from elastic_transport import (
    ApiResponseMeta,
    ConnectionError,
    ConnectionTimeout,
    HttpHeaders,
    NodeConfig,
    SerializationError,
    TlsError,
    TransportError,
    Urllib3HttpNode,
)
from elastic_transport._node import NodeApiResponse
from elastic_transport.client_utils import DEFAULT
from elasticsearch import ApiError, Elasticsearch, UnsupportedProductError
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from fin_assets.lib import config
from fin_assets.lib.outbound_http import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PORTS,
    READ_CHUNK,
    HttpPolicy,
    PolicyViolation,
    deadline,
    deadline_passed,
    read_capped,
    resolve_location,
    shown_origin,
    watch_pool,
)


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


# --- the HTTP node: the outbound policy inside the official client ---------------------------


class PolicyNode(Urllib3HttpNode):
    """The client's urllib3 node with the outbound-HTTP policy: overall deadline, body cap,
    no redirect followed, and error texts built from the policy's bounded excerpts."""

    policy: HttpPolicy = HttpPolicy()  # each client sets its own through `node_class_for`

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        watch_pool(self.pool)  # its connections report their socket to the deadline watchdog

    def perform_request(  # type: ignore[override]
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: HttpHeaders | None = None,
        request_timeout: Any = DEFAULT,
    ) -> NodeApiResponse:
        if self.path_prefix:
            target = f"{self.path_prefix}{target}"
        request_headers = self._headers.copy()
        if headers:
            request_headers.update(headers)
        policy = self.policy
        started = time.time()
        # The request's deadline, or less when the caller's budget (a sensor tick) is nearly spent.
        seconds = min(policy.deadline_seconds, getattr(_budget, "left", policy.deadline_seconds))
        with deadline(seconds) as watch:
            try:
                status, response_headers, data = self._exchange(
                    method, target, body, request_headers, watch
                )
            except PolicyViolation as violation:
                raise _policy_error(violation) from None
            except Exception as exc:  # noqa: BLE001 - every transport failure gets a clean text
                raise self._transport_error(exc, watch, seconds) from None
        meta = ApiResponseMeta(
            node=self.config,
            duration=time.time() - started,
            http_version="1.1",
            status=status,
            headers=response_headers,
        )
        return NodeApiResponse(meta, data)

    def _exchange(
        self, method: str, target: str, body: bytes | None, headers: HttpHeaders, watch
    ) -> tuple[int, HttpHeaders, bytes]:
        policy = self.policy
        response = self.pool.urlopen(
            method,
            target,
            body=body or None,
            retries=Retry(False),
            redirect=False,
            headers=headers,
            preload_content=False,
            timeout=urllib3.Timeout(connect=policy.timeout_seconds, read=policy.timeout_seconds),
        )
        complete = False
        try:
            data = b""
            if method != "HEAD":
                chunks = response.stream(READ_CHUNK, decode_content=True)
                data = read_capped(
                    chunks, policy.max_body_bytes, self.base_url, watch, policy.deadline_seconds
                )
            complete = True
            return response.status, HttpHeaders(response.headers), data
        finally:
            if not complete:  # a connection left mid-body must not go back to the pool
                response.close()
            response.release_conn()

    def _transport_error(self, exc: Exception, watch, seconds: float) -> Exception:
        policy = self.policy
        if watch.expired:
            violation = deadline_passed(self.base_url, seconds)
            return ConnectionTimeout(violation.detail)
        text = policy.excerpt(f"{type(exc).__name__}: {exc}", 200)
        if isinstance(exc, NewConnectionError):  # refused, no route, DNS: a ConnectTimeoutError
            return ConnectionError(text)
        if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError)):
            return ConnectionTimeout(f"no answer within {policy.timeout_seconds:g} s")
        if isinstance(exc, (ssl.SSLError, urllib3.exceptions.SSLError)):
            return TlsError(text)
        return ConnectionError(text)

    def _log_request(self, *args: Any, **kwargs: Any) -> None:
        # The library's request log carries bodies, which may echo a secret: not ours.
        return None


_budget = threading.local()  # .left: seconds the running client call may still take


class PolicyRefused(TransportError):
    """The policy stopped the answer (too large): not retried on another node."""


def _policy_error(violation: PolicyViolation) -> TransportError:
    if violation.cause == "deadline":
        return ConnectionTimeout(violation.detail)
    return PolicyRefused(violation.detail)


def node_class_for(policy: HttpPolicy) -> type[PolicyNode]:
    """A PolicyNode class bound to `policy` (the client builds its nodes from a class)."""
    return type("PolicyNode", (PolicyNode,), {"policy": policy})


# --- the answers' shapes -----------------------------------------------------------------


class _Shape(ValueError):
    """An answer not shaped like Elasticsearch's; the text names the field."""


def _field(value: Any, *path: str | int) -> Any:
    for step in path:
        if isinstance(step, int):
            ok = isinstance(value, list) and len(value) > step
        else:
            ok = isinstance(value, dict) and step in value
        if not ok:
            raise _Shape(f"no {'.'.join(map(str, path))}")
        value = value[step]
    return value


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Shape(f"{name} is not a count")
    return value


def _number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Shape(f"{name} is not a number")
    if not math.isfinite(value):
        raise _Shape(f"{name} is not a finite number")
    return float(value)


def _text(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _Shape(f"{name} is not text")
    return value


# --- the client ------------------------------------------------------------------------------

# A node that answers these is up but cannot serve (no elected master yet): another may.
_TRY_NEXT_NODE_STATUSES = (502, 503, 504)
_REASON_CHARS = 300


@dataclass(frozen=True)
class Answer:
    """One answer: status and decoded body (`json()` for the callers of the old client)."""

    status_code: int
    body: Any
    headers: Mapping[str, str]

    def json(self) -> Any:
        return self.body


class ElasticsearchClient:
    """The official client on the policy, with the few reads the product needs."""

    def __init__(
        self,
        url: str | Sequence[str],
        auth: tuple[str, str] | None = None,
        verify: bool | str = True,
        timeout: float = 5.0,
        deadline_seconds: float | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        budget_seconds: float | None = None,
    ):
        """`budget_seconds`: what all requests of this client may take together (a sensor
        tick has one); each request still has its own deadline."""
        nodes = [split_credentials(u) for u in split_urls(url)]
        self.budget_seconds = budget_seconds
        self._budget_end = time.monotonic() + budget_seconds if budget_seconds else None
        if not nodes:
            raise ValueError("no Elasticsearch URL given")
        self.urls = [node_url for node_url, _ in nodes]
        self._auth = auth or next((a for _, a in nodes if a is not None), None)
        password = self._auth[1] if self._auth else ""
        self.policy = HttpPolicy(
            deadline_seconds=deadline_seconds or 3 * timeout,
            timeout_seconds=timeout,
            max_body_bytes=max_body_bytes,
            max_redirects=0,
            secrets=(password,) if password else (),
        )
        options: dict[str, Any] = {}
        if self._auth:
            options["basic_auth"] = self._auth
        if any(u.startswith("https:") for u in self.urls):
            if isinstance(verify, str):
                options["ca_certs"] = verify
            elif verify is False:
                options.update(verify_certs=False, ssl_show_warn=False)
        self._es = Elasticsearch(
            [_with_port(u) for u in self.urls],
            node_class=node_class_for(self.policy),
            request_timeout=timeout,
            max_retries=max(1, len(self.urls)),
            retry_on_status=_TRY_NEXT_NODE_STATUSES,
            retry_on_timeout=False,  # a deadline is the whole budget of a request
            randomize_nodes_in_pool=False,  # the first URL first, as configured
            http_compress=False,
            **options,
        )

    @property
    def url(self) -> str:
        """All node URLs, comma-separated, without user info (accepted back by the client)."""
        return ",".join(self.urls)

    @property
    def username(self) -> str | None:
        return self._auth[0] if self._auth else None

    def __repr__(self) -> str:  # never the auth
        return f"ElasticsearchClient({self.url!r})"

    def close(self) -> None:
        self._es.close()

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        data: str | None = None,
        ok_statuses: Iterable[int] = (),
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        """One call; every failure is an `ElasticsearchError` with a clean, bounded text."""
        path = "/" + path.lstrip("/")
        payload = data if data is not None else body
        headers = {"accept": "application/json"}
        if payload is not None:
            headers["content-type"] = "application/json"
        allowed = tuple(ok_statuses)
        es = self._es.options(ignore_status=allowed) if allowed else self._es
        error: ElasticsearchError | None = None
        _budget.left = self._budget_left(method, path)
        try:
            answer = es.perform_request(
                method, path, params=dict(params or {}), headers=headers, body=payload
            )
            return Answer(answer.meta.status, answer.body, dict(answer.meta.headers))
        except Exception as exc:  # noqa: BLE001 - one named failure, never the library's text
            error = self._error_for(method, path, exc)
        finally:
            del _budget.left
        raise error from None  # no chain: the library's texts may carry bodies

    def _budget_left(self, method: str, path: str) -> float:
        if self._budget_end is None:
            return self.policy.deadline_seconds
        left = self._budget_end - time.monotonic()
        if left <= 0:
            raise ElasticsearchUnavailable(
                f"{self._where(method, path)} not sent: the {self.budget_seconds:g} s this "
                "evaluation may spend on Elasticsearch are spent (answers too slow)"
            )
        return left

    def _where(self, method: str, path: str) -> str:
        node = self.urls[0] if len(self.urls) == 1 else self.url
        return f"{method} {node}/{path.lstrip('/')}"

    def _error_for(self, method: str, path: str, exc: Exception) -> ElasticsearchError:
        where = self._where(method, path)
        if isinstance(exc, UnsupportedProductError):  # an ApiError too: first
            return NotElasticsearch(
                f"{where} did not answer like Elasticsearch (HTTP {exc.meta.status}, "
                f"{exc.meta.headers.get('content-type', 'no content type')}, no "
                "X-Elastic-Product header): is the URL right?"
            )
        if isinstance(exc, ApiError):
            return self._api_error(method, path, exc)
        if isinstance(exc, (ConnectionError, ConnectionTimeout, TlsError)):
            return self._unavailable(exc)
        if isinstance(exc, PolicyRefused):
            return NotElasticsearch(f"{where}: {exc.message}")
        if isinstance(exc, SerializationError):
            return NotElasticsearch(f"{where} did not answer like Elasticsearch (not JSON)")
        kind = type(exc).__name__
        return NotElasticsearch(f"{where} gave an answer the client cannot read ({kind})")

    def _unavailable(self, exc: TransportError) -> ElasticsearchUnavailable:
        where = self.urls[0] if len(self.urls) == 1 else "every node: " + ", ".join(self.urls)
        reason = self.policy.excerpt(str(exc.message), 200)
        return ElasticsearchUnavailable(f"Elasticsearch at {where} is unreachable ({reason})")

    def _api_error(self, method: str, path: str, exc: ApiError) -> ElasticsearchError:
        status = exc.meta.status
        where = self._where(method, path)
        reason = _error_reason(exc.body, self.policy)
        if 300 <= status < 400:
            return NotElasticsearch(f"{where}: {self._redirect_text(exc)}")
        if status == 401:
            return ElasticsearchAuthError(
                f"{where} answered 401: the credentials of user {self.username or '(none)'} "
                "were rejected (ELASTICSEARCH_USER / ELASTICSEARCH_PASSWORD)",
                status,
            )
        if status == 403:
            return ElasticsearchAuthError(
                f"{where} answered 403: user {self.username or '(none)'} lacks a privilege: "
                f"{reason}",
                status,
            )
        if "index_not_found_exception" in reason:
            return IndexMissing(path.strip("/").split("/", 1)[0])
        return ElasticsearchError(f"{where} answered {status}: {reason}")

    def _redirect_text(self, exc: ApiError) -> str:
        status = exc.meta.status
        node = f"{exc.meta.node.scheme}://{exc.meta.node.host}:{exc.meta.node.port}"
        try:
            target = resolve_location(node, exc.meta.headers.get("location"), status)
        except PolicyViolation as violation:
            return self.policy.excerpt(violation.detail)
        return self.policy.excerpt(
            f"HTTP {status} redirect to {shown_origin(target)}: not followed (Elasticsearch "
            "does not redirect; a proxy or login page answers in its place)"
        )

    def _read(self, method: str, path: str, body: Mapping[str, Any] | None, shape) -> Any:
        """`shape(answer body)`; a shape error is NotElasticsearch naming the field."""
        answer = self.request(method, path, body)
        try:
            return shape(answer.body)
        except _Shape as problem:
            raise NotElasticsearch(
                f"{self._where(method, path)} did not answer like Elasticsearch (HTTP "
                f"{answer.status_code}, {problem}): is the URL right?"
            ) from None

    # --- reads used by the sensor and the check -------------------------------------------

    def health(self) -> str:
        return self._read(
            "GET", "_cluster/health", None, lambda b: _text(_field(b, "status"), "status")
        )

    def index_exists(self, index: str) -> bool:
        return self.request("HEAD", index, ok_statuses=(404,)).status_code == 200

    def count(self, index: str) -> int:
        return self._read(
            "GET", f"{index}/_count", None, lambda b: _count(_field(b, "count"), "count")
        )

    def max_date(self, index: str, field: str) -> str | None:
        """Latest value of a date field as Elasticsearch formats it, or None when empty."""
        body = {"size": 0, "aggs": {"latest": {"max": {"field": field}}}}

        def shape(answer: Any) -> str | None:
            latest = _field(answer, "aggregations", "latest")
            if not isinstance(latest, dict):
                raise _Shape("aggregations.latest is not an object")
            if _number(latest.get("value"), "value") is None:
                return None
            return _text(_field(latest, "value_as_string"), "value_as_string")

        return self._read("POST", f"{index}/_search", body, shape)

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

        def shape(answer: Any) -> dict[str, SymbolSummary]:
            buckets = _field(answer, "aggregations", "symbols", "buckets")
            if not isinstance(buckets, list):
                raise _Shape("aggregations.symbols.buckets is not a list")
            return dict(_summary(bucket, close_field) for bucket in buckets)

        return self._read("POST", f"{index}/_search", body, shape)

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


def _summary(bucket: Any, close_field: str) -> tuple[str, SymbolSummary]:
    key = _field(bucket, "key")
    if not isinstance(key, (str, int)) or isinstance(key, bool):
        raise _Shape("a bucket key is not a symbol")
    hits = _field(bucket, "last_row", "hits", "hits")
    if not isinstance(hits, list):
        raise _Shape("last_row.hits.hits is not a list")
    source = _field(hits, 0, "_source") if hits else {}
    if not isinstance(source, dict):
        raise _Shape("_source is not an object")
    last_date = _field(bucket, "last_date")
    if not isinstance(last_date, dict):
        raise _Shape("last_date is not an object")
    summary = SymbolSummary(
        days=_count(_field(bucket, "doc_count"), "doc_count"),
        last_date=_text(last_date.get("value_as_string"), "value_as_string"),
        last_close=_number(source.get(close_field), close_field),
    )
    return str(key), summary


def _with_port(url: str) -> str:
    """The official client wants an explicit port: the scheme's default when none is given."""
    parts = urlsplit(url)
    if parts.port is not None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = DEFAULT_PORTS.get(parts.scheme.lower(), 9200)
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path, "", ""))


def _error_reason(body: Any, policy: HttpPolicy) -> str:
    """`type: reason` of an error answer, redacted and bounded whatever its shape or size."""
    error = body.get("error") if isinstance(body, dict) else body
    if isinstance(error, dict):
        text = f"{error.get('type')}: {error.get('reason')}"
    else:
        text = error if isinstance(error, str) else json.dumps(error, default=str)[:8192]
    return policy.excerpt(text, _REASON_CHARS)
