"""HTTP client for TIME_SERIES_DAILY: deadlines, size limits, redirects, retries, pacing, redaction.

The deadline watchdog, the body cap, the redirect rules and the redaction are the product's one
outbound-HTTP policy (fin_assets/lib/outbound_http.py); this module applies them to the API.

- `fetch_daily` returns a `DailySeries` or raises `AlphaVantageError`, nothing else: any other
  exception while handling one symbol (a library error, a bug) becomes the named cause
  `client_error` for that symbol alone, so one hostile answer never stops the step.
- requests puts the full URL (with `apikey=`) into its exception texts, so no requests exception
  text leaves this module unredacted, and every `AlphaVantageError` is raised outside the
  `except` block so that no exception chain carries the original.
- The key never leaves for another host: redirects are followed only within the configured
  origin (or its https upgrade); anything else is the named cause `redirect_refused`.
- Each attempt has an overall deadline (`deadline_seconds`, connect + headers + body): a
  watchdog shuts the attempt's socket down when it passes, so a server dribbling one byte a
  second cannot hold a symbol. requests' own `timeout` only bounds each single read.
- The body is streamed and counted after decompression; past `max_body_bytes` the transfer
  stops (`too_large`), so a gzip bomb costs at most the limit in memory.
- HTTP 429 (and 503) are retried after `Retry-After` (seconds or an HTTP date, capped).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from fin_assets.lib import outbound_http, rate_limit
from fin_assets.lib.alpha_vantage import responses
from fin_assets.lib.alpha_vantage.errors import AlphaVantageError, FailureCause, redact, shorten
from fin_assets.lib.outbound_http import (
    DeadlineAdapter,
    PolicyViolation,
    RequestWatch,
    deadline,
    excerpt,
    read_capped,
    resolve_location,
    shown_origin,
    watched_session,
)
from fin_assets.lib.rate_limit import RequestPacer, SharedPacer
from fin_assets.lib.symbols import InvalidSymbolError, validate_symbol

__all__ = [
    "AlphaVantageClient",
    "Attempt",
    "DailySeries",
    "DeadlineAdapter",
    "PROCESS_PACER",
    "RequestPacer",
]

PROCESS_PACER = RequestPacer()
REDIRECT_STATUSES = outbound_http.REDIRECT_STATUSES
_READ_CHUNK = outbound_http.READ_CHUNK
# Failures the shared policy names, as this client's causes.
_POLICY_CAUSES = {
    "deadline": FailureCause.TIMEOUT,
    "too_large": FailureCause.RESPONSE_TOO_LARGE,
    "bad_redirect": FailureCause.BAD_REDIRECT,
    "redirect_refused": FailureCause.REDIRECT_REFUSED,
}


@dataclass(frozen=True)
class DailySeries:
    """A response accepted as data."""

    symbol: str
    body: str  # as received (already free of the key: data bodies do not echo it)
    payload: dict  # the JSON shape, also for datatype=csv
    fetched_at: dt.datetime
    attempts: int
    datatype: str = "json"  # "csv": `body` is the CSV text


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt, for the extraction log."""

    symbol: str
    number: int
    outcome: str  # "ok", "retry" or "failed"
    cause: FailureCause | None
    detail: str
    elapsed_seconds: float


@dataclass(frozen=True)
class _Failure:
    cause: FailureCause
    detail: str
    retry_after: float | None = None  # seconds the server asked us to wait


# --- helpers (pure) -------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """`Retry-After` in seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def same_origin(configured: str, target: str) -> bool:
    """Whether `target` may receive the key: the configured origin, or its https upgrade."""
    return outbound_http.same_origin(configured, target, allow_https_upgrade=True)


# --- the client -----------------------------------------------------------------------------


@dataclass
class AlphaVantageClient:
    api_key: str
    base_url: str
    timeout_seconds: float = 20.0  # connect, and each single read
    deadline_seconds: float = 60.0  # one whole attempt: connect, headers and body
    max_body_bytes: int = 16 * 1024 * 1024  # decompressed; 20 years of daily rows are ~1.5 MB
    max_retries: int = 3
    backoff_seconds: float = 2.0
    max_retry_after_seconds: float = 60.0
    # Free keys allow 1 request/s; 10% margin so network jitter cannot squeeze two calls
    # into the server's one-second window (see rate_limit.min_interval_for).
    min_interval_seconds: float = 1.1
    outputsize: str = "compact"
    datatype: str = "json"  # or "csv"
    max_redirects: int = 3
    # None: one pacer shared by every process on this machine for the API's host.
    pacer: RequestPacer | SharedPacer | None = None
    session: requests.Session | None = None
    _session: requests.Session | None = field(default=None, init=False, repr=False)

    def fetch_daily(
        self, symbol: str, on_attempt: Callable[[Attempt], None] | None = None
    ) -> DailySeries:
        """The daily series of `symbol`, or raises `AlphaVantageError` naming the cause.

        `on_attempt` (the caller's code) sees every attempt; its own exceptions propagate.
        """
        try:
            symbol = validate_symbol(symbol)
        except InvalidSymbolError as exc:
            shown = shorten(repr(symbol), 40) if isinstance(symbol, str) else repr(symbol)
            raise AlphaVantageError(shown, FailureCause.INVALID_SYMBOL, str(exc)) from None
        if not self.api_key:
            raise AlphaVantageError(
                symbol, FailureCause.INVALID_API_KEY, "ALPHAVANTAGE_API_KEY is empty"
            )
        attempts = self.max_retries + 1
        for number in range(1, attempts + 1):
            started = time.monotonic()
            result = self._guarded_attempt(symbol)
            elapsed = time.monotonic() - started
            if isinstance(result, DailySeries):
                result = DailySeries(
                    symbol, result.body, result.payload, result.fetched_at, number, result.datatype
                )
                if on_attempt:
                    on_attempt(Attempt(symbol, number, "ok", None, "", elapsed))
                return result
            will_retry = result.cause.retryable and number < attempts
            if on_attempt:
                outcome = "retry" if will_retry else "failed"
                on_attempt(Attempt(symbol, number, outcome, result.cause, result.detail, elapsed))
            if not will_retry:
                raise AlphaVantageError(symbol, result.cause, result.detail, attempts=number)
            time.sleep(self._retry_delay(number, result.retry_after))
        raise AssertionError("unreachable")

    def _retry_delay(self, attempt_number: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_seconds)
        # Exponential with full jitter, so parallel retries do not line up.
        return random.uniform(0.5, 1.0) * self.backoff_seconds * 2 ** (attempt_number - 1)

    def _guarded_attempt(self, symbol: str) -> DailySeries | _Failure:
        failure: _Failure | None = None
        try:
            self._pacer.wait(self.min_interval_seconds)
            return self._attempt(symbol)
        except Exception as exc:  # noqa: BLE001 - one symbol's failure, never the step's
            text = excerpt(str(exc), self.api_key, 160)
            failure = _Failure(FailureCause.CLIENT_ERROR, f"{type(exc).__name__}: {text}")
        return failure

    @property
    def _pacer(self) -> RequestPacer | SharedPacer:
        if self.pacer is None:
            self.pacer = rate_limit.pacer_for(self.base_url)
        return self.pacer

    def _attempt(self, symbol: str) -> DailySeries | _Failure:
        if self._session is None:
            self._session = watched_session(self.session)
        params = {
            "function": "TIME_SERIES_DAILY",
            "symbol": symbol,
            "outputsize": self.outputsize,
            "datatype": self.datatype,
            "apikey": self.api_key,
        }
        with deadline(self.deadline_seconds) as watch:
            request = requests.Request("GET", self.base_url, params=params)
            for _hop in range(self.max_redirects + 1):
                prepared = self._session.prepare_request(request)
                outcome = self._exchange(prepared, symbol, watch)
                if not isinstance(outcome, str):
                    return outcome
                request = requests.Request("GET", outcome)  # the Location keeps its query
            return _Failure(
                FailureCause.REDIRECT_REFUSED, f"more than {self.max_redirects} redirects"
            )

    def _exchange(
        self, prepared: requests.PreparedRequest, symbol: str, watch: RequestWatch
    ) -> DailySeries | _Failure | str:
        """One request: the result, a failure, or the same-origin URL to follow."""
        assert self._session is not None and prepared.url is not None
        failure: _Failure | None = None
        try:
            response = outbound_http.send_once(self._session, prepared, self.timeout_seconds)
        except requests.RequestException as exc:
            failure = self._transport_failure(exc, watch)
        if failure:
            return failure
        try:
            if response.status_code in REDIRECT_STATUSES:
                return self._redirect(prepared.url, response)
            if response.status_code == 429 or response.status_code >= 500:
                cause = (
                    FailureCause.HTTP_RATE_LIMITED
                    if response.status_code == 429
                    else FailureCause.HTTP_SERVER_ERROR
                )
                wait = parse_retry_after(response.headers.get("Retry-After"))
                detail = f"HTTP {response.status_code} from {self._host}"
                if wait is not None:
                    detail += f" (Retry-After {wait:g} s)"
                return _Failure(cause, detail, retry_after=wait)
            if response.status_code >= 400:
                return _Failure(
                    FailureCause.HTTP_ERROR, f"HTTP {response.status_code} from {self._host}"
                )
            body = self._read_body(response, watch)
            if isinstance(body, _Failure):
                return body
            return self._interpret(body, symbol)
        finally:
            response.close()

    def _transport_failure(self, exc: requests.RequestException, watch: RequestWatch) -> _Failure:
        if watch.expired:
            return self._deadline_failure()
        if isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower():
            return _Failure(
                FailureCause.TIMEOUT,
                f"no answer from {self._host} within {self.timeout_seconds:g} s",
            )
        if isinstance(exc, requests.ConnectionError):
            return _Failure(
                FailureCause.CONNECTION_FAILED, f"{self._host}: {self._connection_reason(exc)}"
            )
        return _Failure(FailureCause.CONNECTION_FAILED, f"{self._host}: {type(exc).__name__}")

    def _deadline_failure(self, received: int | None = None) -> _Failure:
        return self._policy_failure(
            outbound_http.deadline_passed(self._host, self.deadline_seconds, received)
        )

    def _policy_failure(self, violation: PolicyViolation) -> _Failure:
        return _Failure(_POLICY_CAUSES[violation.cause], redact(violation.detail, self.api_key))

    def _redirect(self, current_url: str, response: requests.Response) -> str | _Failure:
        """The same-origin URL to follow, or the failure naming why not."""
        try:
            target = resolve_location(
                current_url, response.headers.get("Location"), response.status_code
            )
            if not same_origin(self.base_url, target):
                raise outbound_http.refuse_redirect(response.status_code, self.base_url, target)
        except PolicyViolation as violation:
            return self._policy_failure(violation)
        return target

    def _read_body(self, response: requests.Response, watch: RequestWatch) -> bytes | _Failure:
        failure: _Failure | None = None
        try:
            # urllib3 >= 2.6 bounds each decompressed chunk by the read size, so memory stays
            # near the limit even for a gzip bomb.
            chunks = response.iter_content(chunk_size=_READ_CHUNK)
            return read_capped(
                chunks, self.max_body_bytes, self._host, watch, self.deadline_seconds
            )
        except PolicyViolation as violation:
            failure = self._policy_failure(violation)
        except requests.RequestException as exc:
            if watch.expired:
                failure = self._deadline_failure()
            elif isinstance(exc, requests.exceptions.ContentDecodingError):
                failure = _Failure(
                    FailureCause.NOT_JSON, f"{self._host} sent a body that does not decompress"
                )
            else:
                failure = self._transport_failure(exc, watch)
        return failure

    def _interpret(self, body: bytes, symbol: str) -> DailySeries | _Failure:
        is_csv = self.datatype == "csv" and not body.lstrip().startswith(b"{")
        failure: _Failure | None = None
        try:
            if is_csv:
                text = body.decode("utf-8")
                payload = responses.csv_to_payload(text, symbol)
            else:
                payload = responses.parse_json(body)
                text = body.decode("utf-8")  # orjson accepted it, so it is UTF-8
        except ValueError as exc:  # includes UnicodeDecodeError
            # Redacted BEFORE it is cut (issue 16): an SSO page echoing the request URL once
            # left 15 of the key's 16 characters in an 80-character excerpt.
            start = body[: 64 * 1024].decode("utf-8", errors="replace")
            reason = excerpt(str(exc), self.api_key, 120)
            failure = _Failure(
                FailureCause.MALFORMED_DATA if is_csv else FailureCause.NOT_JSON,
                f"{reason}; starts with {excerpt(start, self.api_key, 80)!r}",
            )
        if failure:
            return failure
        verdict = responses.classify(payload, symbol)
        if verdict.cause is not None:
            return _Failure(verdict.cause, excerpt(verdict.provider_text, self.api_key))
        # Data bodies do not echo the key; redact anyway so nothing stored can ever hold it.
        return DailySeries(
            symbol=symbol,
            body=redact(text, self.api_key),
            payload=payload,
            fetched_at=dt.datetime.now(dt.UTC),
            attempts=1,
            datatype="csv" if is_csv else "json",
        )

    @property
    def _host(self) -> str:
        return shown_origin(self.base_url).split("://", 1)[-1] or "the API"

    @staticmethod
    def _connection_reason(exc: requests.RequestException) -> str:
        text = str(exc).lower()
        for needle, reason in (
            ("refused", "connection refused"),
            ("name or service not known", "host name not resolved"),
            ("temporary failure in name resolution", "host name not resolved"),
            ("reset by peer", "connection reset"),
            ("remotedisconnected", "connection closed without a response"),
            ("incompleteread", "connection closed in the middle of the body"),
            ("ssl", "TLS error"),
        ):
            if needle in text:
                return reason
        return "connection error"
