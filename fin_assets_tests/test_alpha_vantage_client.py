"""The HTTP client against the real stand-in server: every failure class, transport faults,
retries, pacing, and no API key in any error text."""

import datetime as dt
import socket
import time

import pytest
import requests

from fin_assets.defs.resources.alpha_vantage import AlphaVantageResource
from fin_assets.lib import market_calendar
from fin_assets.lib.alpha_vantage.client import AlphaVantageClient
from fin_assets.lib.alpha_vantage.errors import AlphaVantageError, FailureCause, redact
from fin_assets.lib.alpha_vantage.responses import classify_error_message, classify_notice
from fin_assets.lib.alpha_vantage.stand_in import StandInServer, StandInState
from fin_assets_tests.fixtures.batch import SECRET_KEY
from fin_assets_tests.helpers.alpha_vantage import client_for as helpers_client_for


def client_for(url: str, **overrides) -> AlphaVantageClient:
    """The HTTP-level tests' client, with the client's own retries (these tests count them)."""
    return helpers_client_for(url, **{"max_retries": AlphaVantageClient.max_retries, **overrides})


def test_data_body_is_accepted_with_100_trading_days(stand_in):
    series = client_for(stand_in.url).fetch_daily("TSLA")
    days = series.payload["Time Series (Daily)"]
    assert len(days) == 100
    assert max(days) == "2026-10-05"
    assert series.attempts == 1


@pytest.mark.parametrize(
    ("scenario", "cause"),
    [
        ("unknown_symbol", FailureCause.INVALID_CALL),
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
        (
            "Please visit https://www.alphavantage.co/premium/ for a higher API call volume.",
            "call_volume_limit",
        ),
        ("This is a premium endpoint. Subscribe to unlock all premium endpoints", "premium_only"),
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


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        (
            "Invalid API call. Please retry or visit the documentation for TIME_SERIES_DAILY.",
            FailureCause.INVALID_CALL,
        ),
        ("the parameter apikey is invalid or missing.", FailureCause.INVALID_API_KEY),
        ("Something else went wrong", FailureCause.PROVIDER_ERROR),
    ],
)
def test_error_messages_are_named_without_guessing_an_unknown_symbol(text, cause):
    assert classify_error_message(text) is cause
    assert "unknown symbol or bad parameter" in FailureCause.INVALID_CALL.explanation


@pytest.mark.parametrize("symbol", ["../../X", "a/b", "X" * 300, "TS LA", ""])
def test_invalid_symbol_is_never_sent(stand_in, symbol):
    with pytest.raises(AlphaVantageError) as failure:
        client_for(stand_in.url).fetch_daily(symbol)
    assert failure.value.cause is FailureCause.INVALID_SYMBOL
    assert len(str(failure.value)) < 300
    assert stand_in.state.requests == []


def test_stand_in_answers_invalid_call_for_text_that_is_no_symbol(stand_in):
    body = requests.get(
        stand_in.url,
        params={"function": "TIME_SERIES_DAILY", "symbol": "../../X", "apikey": "k"},
        timeout=10,
    ).json()
    assert body == {"Error Message": body["Error Message"]}
    assert body["Error Message"].startswith("Invalid API call")


def test_stand_in_serves_each_listing_on_its_own_exchange_calendar():
    state = StandInState(as_of=dt.date(2024, 7, 22))
    with StandInServer(state=state) as server:
        client = client_for(server.url)
        bse = client.fetch_daily("RELIANCE.BSE").payload["Time Series (Daily)"]
        us = client.fetch_daily("TSLA").payload["Time Series (Daily)"]
    assert "2024-07-04" in bse and "2024-07-17" not in bse  # US holiday; Muharram in Mumbai
    assert "2024-07-04" not in us
    assert sorted(bse) == [
        d.isoformat()
        for d in market_calendar.trading_days(
            "RELIANCE.BSE", dt.date.fromisoformat(min(bse)), dt.date(2024, 7, 22)
        )
    ]


def test_stand_in_keeps_the_synthetic_us_prices_it_always_served(stand_in):
    # Values served before the move to exchange_calendars (commit 18add14), as a regression
    # check: the XNYS sessions 2000-2040 are the old NYSE rule days, so the walk is unchanged.
    row = client_for(stand_in.url).fetch_daily("TSLA").payload["Time Series (Daily)"]["2026-10-05"]
    assert row == {
        "1. open": "688.8205",
        "2. high": "707.9416",
        "3. low": "687.5918",
        "4. close": "704.7914",
        "5. volume": "4063788",
    }


@pytest.mark.parametrize(
    ("settings", "interval"),
    [
        ({}, 1.1),  # the free key: 60/min with the 10 % margin
        ({"requests_per_minute": 75.0}, 0.88),
        ({"requests_per_minute": 75.0, "min_interval_seconds": 0.0}, 0.0),
    ],
)
def test_resource_paces_by_the_plan(settings, interval):
    resource = AlphaVantageResource(api_key="k", base_url="http://127.0.0.1:1/query", **settings)
    assert resource.get_client().min_interval_seconds == pytest.approx(interval)
