"""Why a fetch failed, named for a person reading the run log."""

from __future__ import annotations

import enum
import re


class FailureCause(enum.Enum):
    """Each cause: (short code, explanation, retry within the same run?)."""

    UNKNOWN_SYMBOL = ("unknown_symbol", "Alpha Vantage does not know this symbol", False)
    INVALID_API_KEY = ("invalid_api_key", "the API key is missing or invalid", False)
    DAILY_QUOTA = ("daily_quota", "the daily request quota of the API key is used up", False)
    BURST_LIMIT = ("burst_limit", "too many requests per second (burst limit)", True)
    MINUTE_LIMIT = ("minute_limit", "too many requests per minute (older rate notice)", False)
    PREMIUM_ONLY = ("premium_only", "the function or parameter is premium-only on this key", False)
    DEMO_KEY = ("demo_key", "the 'demo' key only serves the documented examples", False)
    UNRECOGNISED_NOTICE = ("notice", "Alpha Vantage answered with a notice instead of data", False)
    EMPTY_RESPONSE = ("empty_response", "Alpha Vantage answered with an empty JSON object", False)
    NOT_JSON = ("not_json", "the response body is not JSON", False)
    MALFORMED_DATA = ("malformed_data", "the daily series is missing or has malformed rows", False)
    HTTP_ERROR = ("http_error", "the server answered with an HTTP error status", False)
    HTTP_SERVER_ERROR = ("http_5xx", "the server answered with an HTTP 5xx status", True)
    TIMEOUT = ("timeout", "the request timed out", True)
    CONNECTION_FAILED = ("connection_failed", "could not connect to the API", True)

    def __init__(self, code: str, explanation: str, retryable: bool) -> None:
        self.code = code
        self.explanation = explanation
        self.retryable = retryable


class AlphaVantageError(Exception):
    """A failed fetch. Its text never holds the API key: callers pass redacted details only."""

    def __init__(self, symbol: str, cause: FailureCause, detail: str = "", attempts: int = 1):
        self.symbol = symbol
        self.cause = cause
        self.detail = detail
        self.attempts = attempts
        text = f"{symbol}: {cause.explanation} [{cause.code}]"
        if detail:
            text += f": {detail}"
        super().__init__(text)


_APIKEY_PARAM = re.compile(r"(apikey=)[^&\s\"']+", re.IGNORECASE)
_ECHOED_KEY = re.compile(r"(API key as )\S+?(?=[\s,.;]|$)", re.IGNORECASE)


def redact(text: str, secret: str | None) -> str:
    """Remove the API key from any text: literal occurrences, `apikey=` query parameters and
    the daily-quota notice's "detected your API key as <KEY>" echo."""
    if secret:
        text = text.replace(secret, "***")
    text = _APIKEY_PARAM.sub(r"\1***", text)
    return _ECHOED_KEY.sub(r"\1***", text)


def shorten(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
