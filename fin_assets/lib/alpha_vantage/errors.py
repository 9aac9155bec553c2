"""Why a fetch failed, named for a person reading the run log."""

from __future__ import annotations

import enum

from fin_assets.lib.outbound_http import redact, secret_forms, shorten


class FailureCause(enum.Enum):
    """Each cause: (short code, explanation, retry within the same run?)."""

    INVALID_CALL = (
        "invalid_call",
        "Alpha Vantage refused the call (unknown symbol or bad parameter)",
        False,
    )
    # The old name: "Invalid API call" was taken to mean an unknown symbol.
    UNKNOWN_SYMBOL = INVALID_CALL
    INVALID_SYMBOL = ("invalid_symbol", "not a valid Alpha Vantage symbol (not sent)", False)
    PROVIDER_ERROR = ("provider_error", "Alpha Vantage answered with an error message", False)
    INVALID_API_KEY = ("invalid_api_key", "the API key is missing or invalid", False)
    DAILY_QUOTA = ("daily_quota", "the daily request quota of the API key is used up", False)
    BURST_LIMIT = ("burst_limit", "too many requests per second (burst limit)", True)
    MINUTE_LIMIT = ("minute_limit", "too many requests per minute (older rate notice)", False)
    CALL_VOLUME_LIMIT = (
        "call_volume_limit",
        "the API key is throttled (call volume limit; not a premium gate)",
        False,
    )
    HTTP_RATE_LIMITED = ("http_429", "the server answered HTTP 429 Too Many Requests", True)
    PREMIUM_ONLY = ("premium_only", "the function or parameter is premium-only on this key", False)
    DEMO_KEY = ("demo_key", "the 'demo' key only serves the documented examples", False)
    UNRECOGNISED_NOTICE = ("notice", "Alpha Vantage answered with a notice instead of data", False)
    EMPTY_RESPONSE = ("empty_response", "Alpha Vantage answered with an empty JSON object", False)
    NOT_JSON = ("not_json", "the response body is not JSON", False)
    MALFORMED_DATA = ("malformed_data", "the daily series is missing or has malformed rows", False)
    SYMBOL_MISMATCH = (
        "symbol_mismatch",
        "the response is for another symbol than the one asked for",
        False,
    )
    RESPONSE_TOO_LARGE = ("too_large", "the response body exceeds the size limit", False)
    REDIRECT_REFUSED = (
        "redirect_refused",
        "the server redirected elsewhere; not followed, so the API key stays with the "
        "configured host",
        False,
    )
    BAD_REDIRECT = ("bad_redirect", "the server sent a malformed redirect (Location)", False)
    HTTP_ERROR = ("http_error", "the server answered with an HTTP error status", False)
    HTTP_SERVER_ERROR = ("http_5xx", "the server answered with an HTTP 5xx status", True)
    TIMEOUT = ("timeout", "the request timed out", True)
    CONNECTION_FAILED = ("connection_failed", "could not connect to the API", True)
    CLIENT_ERROR = (
        "client_error",
        "unexpected error while handling the response (a bug: please report it)",
        False,
    )

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


# The redaction lives with the rest of the outbound-HTTP policy; these names stay for callers.
__all__ = ["AlphaVantageError", "FailureCause", "redact", "secret_forms", "shorten"]
