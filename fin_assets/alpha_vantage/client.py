"""HTTP client for TIME_SERIES_DAILY: timeouts, retries with backoff, pacing, redaction.

requests puts the full URL (with `apikey=`) into its exception texts, so no requests exception
ever leaves this module: each is turned into an `AlphaVantageError` built from redacted text,
raised outside the `except` block so that no exception chain carries the original.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from fin_assets.alpha_vantage import responses
from fin_assets.alpha_vantage.errors import AlphaVantageError, FailureCause, redact, shorten


@dataclass(frozen=True)
class DailySeries:
    """A response accepted as data."""

    symbol: str
    body: str  # as received (already free of the key: data bodies do not echo it)
    payload: dict
    fetched_at: dt.datetime
    attempts: int


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt, for the extraction log."""

    symbol: str
    number: int
    outcome: str  # "ok", "retry" or "failed"
    cause: FailureCause | None
    detail: str
    elapsed_seconds: float


class RequestPacer:
    """Keeps calls at least `min_interval` seconds apart across every client in the process.

    Free keys allow one request per second; across runs and processes the `alpha_vantage`
    concurrency pool serialises the fetching steps.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_call = float("-inf")

    def wait(self, min_interval: float) -> None:
        with self._lock:
            delay = self._last_call + min_interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._last_call = time.monotonic()


PROCESS_PACER = RequestPacer()


@dataclass
class AlphaVantageClient:
    api_key: str
    base_url: str
    timeout_seconds: float = 20.0
    max_retries: int = 3
    backoff_seconds: float = 2.0
    # Free keys allow 1 request/s; 10% margin so network jitter cannot squeeze two calls
    # into the server's one-second window.
    min_interval_seconds: float = 1.1
    outputsize: str = "compact"
    pacer: RequestPacer = PROCESS_PACER
    session: requests.Session | None = None

    def fetch_daily(
        self, symbol: str, on_attempt: Callable[[Attempt], None] | None = None
    ) -> DailySeries:
        """The daily series of `symbol`, or raises `AlphaVantageError` naming the cause."""
        if not self.api_key:
            raise AlphaVantageError(
                symbol, FailureCause.INVALID_API_KEY, "ALPHAVANTAGE_API_KEY is empty"
            )
        session = self.session or requests.Session()
        attempts = self.max_retries + 1
        for number in range(1, attempts + 1):
            started = time.monotonic()
            self.pacer.wait(self.min_interval_seconds)
            result = self._attempt(session, symbol)
            elapsed = time.monotonic() - started
            if isinstance(result, DailySeries):
                result = DailySeries(symbol, result.body, result.payload, result.fetched_at, number)
                if on_attempt:
                    on_attempt(Attempt(symbol, number, "ok", None, "", elapsed))
                return result
            cause, detail = result
            will_retry = cause.retryable and number < attempts
            if on_attempt:
                outcome = "retry" if will_retry else "failed"
                on_attempt(Attempt(symbol, number, outcome, cause, detail, elapsed))
            if not will_retry:
                raise AlphaVantageError(symbol, cause, detail, attempts=number)
            time.sleep(self._backoff(number))
        raise AssertionError("unreachable")

    def _backoff(self, attempt_number: int) -> float:
        # Exponential with full jitter, so parallel retries do not line up.
        return random.uniform(0.5, 1.0) * self.backoff_seconds * 2 ** (attempt_number - 1)

    def _attempt(
        self, session: requests.Session, symbol: str
    ) -> DailySeries | tuple[FailureCause, str]:
        params = {
            "function": "TIME_SERIES_DAILY",
            "symbol": symbol,
            "outputsize": self.outputsize,
            "datatype": "json",
            "apikey": self.api_key,
        }
        failure: tuple[FailureCause, str] | None = None
        try:
            response = session.get(self.base_url, params=params, timeout=self.timeout_seconds)
        except requests.Timeout:
            failure = (
                FailureCause.TIMEOUT,
                f"no answer from {self._host} within {self.timeout_seconds:g} s",
            )
        except requests.ConnectionError as exc:
            failure = (
                FailureCause.CONNECTION_FAILED,
                f"{self._host}: {self._connection_reason(exc)}",
            )
        except requests.RequestException as exc:
            failure = (FailureCause.CONNECTION_FAILED, f"{self._host}: {type(exc).__name__}")
        if failure:
            return failure

        body = response.text
        if response.status_code >= 500:
            return (
                FailureCause.HTTP_SERVER_ERROR,
                f"HTTP {response.status_code} from {self._host}",
            )
        if response.status_code >= 400:
            return (FailureCause.HTTP_ERROR, f"HTTP {response.status_code} from {self._host}")
        try:
            payload = responses.parse_json(body)
        except ValueError:
            return (
                FailureCause.NOT_JSON,
                f"starts with {shorten(redact(body, self.api_key), 80)!r}",
            )
        verdict = responses.classify(payload)
        if verdict.cause is not None:
            return (verdict.cause, shorten(redact(verdict.provider_text, self.api_key)))
        # Data bodies do not echo the key; redact anyway so nothing stored can ever hold it.
        return DailySeries(
            symbol=symbol,
            body=redact(body, self.api_key),
            payload=payload,
            fetched_at=dt.datetime.now(dt.UTC),
            attempts=1,
        )

    @property
    def _host(self) -> str:
        return urlsplit(self.base_url).netloc or self.base_url

    @staticmethod
    def _connection_reason(exc: requests.ConnectionError) -> str:
        text = str(exc).lower()
        for needle, reason in (
            ("refused", "connection refused"),
            ("name or service not known", "host name not resolved"),
            ("temporary failure in name resolution", "host name not resolved"),
            ("reset by peer", "connection reset"),
            ("remotedisconnected", "connection closed without a response"),
            ("ssl", "TLS error"),
        ):
            if needle in text:
                return reason
        return "connection error"
