"""The HTTP client against the real stand-in server: every failure class, transport faults,
retries, pacing, and no API key in any error text."""

import socket
import time

import pytest

from fin_assets.alpha_vantage.client import AlphaVantageClient, RequestPacer
from fin_assets.alpha_vantage.errors import AlphaVantageError, FailureCause, redact
from fin_assets.alpha_vantage.responses import classify_notice
from fin_assets.alpha_vantage.stand_in import StandInServer, StandInState
from fin_assets_tests.batch_fixtures import SECRET_KEY


def client_for(url: str, **overrides) -> AlphaVantageClient:
    options = dict(
        api_key=SECRET_KEY,
        base_url=url,
        min_interval_seconds=0.0,
        backoff_seconds=0.01,
        timeout_seconds=2.0,
        pacer=RequestPacer(),
    )
    options.update(overrides)
    return AlphaVantageClient(**options)


def test_data_body_is_accepted_with_100_trading_days(stand_in):
    series = client_for(stand_in.url).fetch_daily("TSLA")
    days = series.payload["Time Series (Daily)"]
    assert len(days) == 100
    assert max(days) == "2026-10-05"
    assert series.attempts == 1


@pytest.mark.parametrize(
    ("scenario", "cause"),
    [
        ("unknown_symbol", FailureCause.UNKNOWN_SYMBOL),
        ("invalid_key", FailureCause.INVALID_API_KEY),
        ("daily_quota", FailureCause.DAILY_QUOTA),
        ("premium", FailureCause.PREMIUM_ONLY),
        ("demo", FailureCause.DEMO_KEY),
        ("minute_limit", FailureCause.MINUTE_LIMIT),
        ("empty", FailureCause.EMPTY_RESPONSE),
        ("not_json", FailureCause.NOT_JSON),
        ("malformed", FailureCause.MALFORMED_DATA),
    ],
)
def test_http_200_failure_bodies_are_named_and_not_retried(stand_in, scenario, cause):
    stand_in.queue("TSLA", scenario, times=5)
    with pytest.raises(AlphaVantageError) as failure:
        client_for(stand_in.url).fetch_daily("TSLA")
    assert failure.value.cause is cause
    assert failure.value.attempts == 1
    assert cause.explanation in str(failure.value)
    assert SECRET_KEY not in str(failure.value)
    assert len(stand_in.state.requests) == 1


def test_burst_limit_is_retried_then_succeeds(stand_in):
    stand_in.queue("TSLA", "burst_limit", times=2)
    attempts = []
    series = client_for(stand_in.url).fetch_daily("TSLA", on_attempt=attempts.append)
    assert series.attempts == 3
    assert [a.outcome for a in attempts] == ["retry", "retry", "ok"]
    assert attempts[0].cause is FailureCause.BURST_LIMIT


def test_http_503_is_retried_and_gives_up_with_the_status(stand_in):
    stand_in.queue("TSLA", "http_503", times=10)
    with pytest.raises(AlphaVantageError) as failure:
        client_for(stand_in.url, max_retries=2).fetch_daily("TSLA")
    assert failure.value.cause is FailureCause.HTTP_SERVER_ERROR
    assert "HTTP 503" in str(failure.value)
    assert failure.value.attempts == 3
    assert len(stand_in.state.requests) == 3


def test_timeout_is_retried_then_reported(stand_in):
    stand_in.state.hang_seconds = 1.5
    stand_in.queue("TSLA", "hang", times=2)
    started = time.monotonic()
    with pytest.raises(AlphaVantageError) as failure:
        client_for(stand_in.url, timeout_seconds=0.3, max_retries=1).fetch_daily("TSLA")
    assert failure.value.cause is FailureCause.TIMEOUT
    assert failure.value.attempts == 2
    assert time.monotonic() - started < 1.5  # gave up on its own timeout, not the server's


def test_refused_connection_names_the_host_but_not_the_key():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/query"
    with pytest.raises(AlphaVantageError) as failure:
        client_for(url, max_retries=1).fetch_daily("TSLA")
    error = failure.value
    assert error.cause is FailureCause.CONNECTION_FAILED
    assert "connection refused" in str(error)
    assert f"127.0.0.1:{port}" in str(error)
    assert SECRET_KEY not in str(error)
    # requests' own exception (whose text holds the URL and key) is not chained
    assert error.__cause__ is None and error.__context__ is None


def test_daily_quota_echo_of_the_key_is_redacted(stand_in):
    stand_in.queue("TSLA", "daily_quota")
    with pytest.raises(AlphaVantageError) as failure:
        client_for(stand_in.url).fetch_daily("TSLA")
    assert "detected your API key as ***" in str(failure.value)
    assert SECRET_KEY not in repr(failure.value.args)


def test_pacing_keeps_calls_one_interval_apart_at_the_server():
    # The client paces at twice the server's limit, so scheduling jitter on a loaded machine
    # cannot squeeze two arrivals into one window; gaps are measured where they arrive.
    state = StandInState(enforce_pacing=True, min_interval_seconds=0.25)
    with StandInServer(state=state) as server:
        client = client_for(server.url, min_interval_seconds=0.5, max_retries=0)
        for symbol in ("TSLA", "IBM", "MSFT"):
            client.fetch_daily(symbol)  # a burst notice would raise here
        arrivals = list(state.arrivals)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert len(gaps) == 2 and all(gap >= 0.25 for gap in gaps), gaps


def test_unpaced_calls_hit_the_burst_limit():
    """The stand-in's burst limit is real: without pacing the second call is refused."""
    state = StandInState(enforce_pacing=True, min_interval_seconds=1.0)
    with StandInServer(state=state) as server:
        client = client_for(server.url, max_retries=0)
        client.fetch_daily("TSLA")
        with pytest.raises(AlphaVantageError) as failure:
            client.fetch_daily("IBM")
    assert failure.value.cause is FailureCause.BURST_LIMIT


def test_empty_key_fails_before_any_request(stand_in):
    with pytest.raises(AlphaVantageError) as failure:
        client_for(stand_in.url, api_key="").fetch_daily("TSLA")
    assert failure.value.cause is FailureCause.INVALID_API_KEY
    assert stand_in.state.requests == []


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("Our standard API rate limit is 25 requests per day. premium plans", "daily_quota"),
        (
            "Please spread out requests (1 request per second). premium, 25 requests per day",
            "burst_limit",
        ),  # noqa: E501
        ("5 calls per minute and 500 calls per day", "minute_limit"),
        (
            "The outputsize=full parameter value is a premium feature for TIME_SERIES_DAILY",
            "premium_only",
        ),  # noqa: E501
        ("The **demo** API key is for demo purposes only.", "demo_key"),
        ("Something new", "notice"),
    ],
)
def test_notice_texts_are_classified_rate_limit_first(text, cause):
    assert classify_notice(text).code == cause


def test_redact_removes_key_query_parameter_and_echo():
    text = f"GET /query?symbol=X&apikey={SECRET_KEY}&x=1 and your API key as OTHERKEY1234."
    cleaned = redact(text, SECRET_KEY)
    assert SECRET_KEY not in cleaned and "OTHERKEY1234" not in cleaned
    assert "apikey=***" in cleaned and "API key as ***" in cleaned
