"""The client against hostile real HTTP servers on 127.0.0.1: redirects to another host, slow
bodies and headers, a gzip bomb, 429 with Retry-After, deep JSON, bad Location headers, volumes
beyond int64. Each fails that one symbol with a named cause, and the key stays home."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import time
import tracemalloc
import zlib

import pytest
import requests

from fin_assets.lib.alpha_vantage.client import AlphaVantageClient, parse_retry_after, same_origin
from fin_assets.lib.alpha_vantage.errors import AlphaVantageError, FailureCause
from fin_assets.lib.alpha_vantage.stand_in import daily_series_body
from fin_assets.lib.rate_limit import SharedPacer
from fin_assets_tests.fixtures.batch import SECRET_KEY
from fin_assets_tests.helpers.alpha_vantage import client_for
from fin_assets_tests.helpers.http_servers import LocalHandler, LocalHTTPServer

AS_OF = dt.date(2026, 10, 5)


def data_body(symbol: str = "TSLA", rows: int = 3) -> bytes:
    return json.dumps(daily_series_body(symbol, AS_OF, rows)).encode()


def fetch_failure(client: AlphaVantageClient, symbol: str = "TSLA") -> AlphaVantageError:
    with pytest.raises(AlphaVantageError) as failure:
        client.fetch_daily(symbol)
    error = failure.value
    assert SECRET_KEY not in str(error) and SECRET_KEY not in repr(error.args)
    assert error.__cause__ is None
    return error


# --- redirects ------------------------------------------------------------------------------


def test_redirect_to_another_host_is_refused_and_that_host_never_sees_the_key():
    with LocalHTTPServer(lambda h: h.send_body(200, data_body())) as elsewhere:

        def bounce(handler: LocalHandler) -> None:
            query = handler.path.partition("?")[2]  # with apikey=, as a hostile proxy would
            handler.send_body(302, b"", Location=f"{elsewhere.url}?{query}")

        with LocalHTTPServer(bounce) as configured:
            error = fetch_failure(client_for(configured.url, max_retries=2))
        assert elsewhere.paths == []
    assert error.cause is FailureCause.REDIRECT_REFUSED
    assert elsewhere.origin in str(error)
    assert len(configured.paths) == 1  # not retried: the next answer would be the same


def test_redirect_within_the_configured_origin_is_followed():
    def moved(handler: LocalHandler) -> None:
        if handler.path.startswith("/old"):
            handler.send_body(301, b"", Location="/query?" + handler.path.partition("?")[2])
        else:
            handler.send_body(200, data_body())

    with LocalHTTPServer(moved) as server:
        series = client_for(f"{server.origin}/old").fetch_daily("TSLA")
    assert len(series.payload["Time Series (Daily)"]) == 3
    assert [p.partition("?")[0] for p in server.paths] == ["/old", "/query"]


def test_only_the_same_origin_or_its_https_upgrade_gets_the_key():
    assert same_origin("http://api.test/query", "https://api.test/query?x=1")
    assert same_origin("http://127.0.0.1:8000/query", "http://127.0.0.1:8000/other")
    assert not same_origin("http://127.0.0.1:8000/query", "http://127.0.0.1:8001/query")
    assert not same_origin("https://api.test/query", "http://api.test/query")  # downgrade
    assert not same_origin("https://api.test/query", "https://api.test.evil/query")


@pytest.mark.parametrize(
    "location",
    [
        "http://[::1/query",  # unterminated IPv6 literal
        "http://127.0.0.1:99999999/query",  # port out of range
        "/caf\xe9\xff",  # Latin-1 bytes that are not UTF-8
    ],
)
def test_malformed_location_fails_that_symbol_with_a_named_cause(location):
    with LocalHTTPServer(lambda h: h.send_body(302, b"", Location=location)) as server:
        client = client_for(server.url)
        error = fetch_failure(client)
        assert error.cause is FailureCause.BAD_REDIRECT
        # the next symbol is unaffected (same client, same connection pool)
        server.respond = lambda h: h.send_body(200, data_body("IBM"))
        assert client.fetch_daily("IBM").symbol == "IBM"


# --- the overall deadline -------------------------------------------------------------------


def _dribble(handler: LocalHandler, prefix: bytes, total: int) -> None:
    handler.wfile.write(prefix)
    handler.wfile.flush()
    for _ in range(total):
        if handler.server.stopping.is_set():
            return
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(0.1)


def slow_body(handler: LocalHandler) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    _dribble(handler, head, 100_000)


def slow_headers(handler: LocalHandler) -> None:
    _dribble(handler, b"HTTP/1.1 200 OK\r\nX-Padding: ", 100_000)


@pytest.mark.parametrize("respond", [slow_body, slow_headers], ids=["body", "headers"])
def test_a_server_dribbling_bytes_hits_the_overall_deadline(respond):
    # Each read gets a byte well within the 10 s read timeout: only the deadline can end it.
    with LocalHTTPServer(respond) as server:
        started = time.monotonic()
        error = fetch_failure(client_for(server.url, deadline_seconds=1.0))
        elapsed = time.monotonic() - started
    assert error.cause is FailureCause.TIMEOUT
    assert "within 1 s" in str(error)
    assert 0.9 <= elapsed < 6.0, elapsed


def test_the_deadline_also_holds_through_an_http_proxy():
    # The dribbling server plays a forward proxy (HTTP_PROXY): requests reach it as
    # absolute-URI GETs, and it answers as slowly as the server above.
    with LocalHTTPServer(slow_body) as proxy:
        session = requests.Session()
        session.trust_env = False
        session.proxies = {"http": proxy.origin}
        started = time.monotonic()
        error = fetch_failure(
            client_for("http://api.invalid/query", session=session, deadline_seconds=1.0)
        )
        elapsed = time.monotonic() - started
    assert proxy.paths and proxy.paths[0].startswith("http://api.invalid/query?")
    assert error.cause is FailureCause.TIMEOUT and 0.9 <= elapsed < 6.0, elapsed


# --- size limit -----------------------------------------------------------------------------

BOMB_RAW_BYTES = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    block = b" " * (1024 * 1024)
    parts = [packer.compress(block) for _ in range(BOMB_RAW_BYTES // len(block))]
    return b"".join(parts) + packer.flush()


def test_gzip_bomb_is_stopped_at_the_decompressed_limit_with_bounded_memory(gzip_bomb):
    limit = 1024 * 1024
    assert len(gzip_bomb) < limit // 4  # small on the wire, 64 MiB unpacked
    respond = lambda h: h.send_body(200, gzip_bomb, Content_Encoding="gzip")  # noqa: E731
    with LocalHTTPServer(respond) as server:
        tracemalloc.start()
        try:
            error = fetch_failure(client_for(server.url, max_body_bytes=limit))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert error.cause is FailureCause.RESPONSE_TOO_LARGE
    assert f"more than {limit} bytes (decompressed)" in str(error)
    print(f"peak traced memory {peak / 2**20:.1f} MiB for a {limit / 2**20:.0f} MiB limit")
    assert peak < 8 * limit, peak  # the body is never unpacked whole


# --- 429 and Retry-After --------------------------------------------------------------------


def _retry_after_header(kind: str) -> str:
    if kind == "seconds":
        return "1"
    if kind == "http-date":  # whole seconds: the wait is between 1 and 2 s
        return email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2), True)
    return "3600"  # "capped": longer than the client's cap


@pytest.mark.parametrize(
    ("kind", "least_gap", "most_gap"),
    [("seconds", 0.9, 5.0), ("http-date", 0.9, 5.0), ("capped", 0.4, 3.0)],
)
def test_429_is_retried_after_retry_after(kind, least_gap, most_gap):
    def throttle_once(handler: LocalHandler) -> None:
        if len(handler.server.paths) == 1:
            retry_after = _retry_after_header(kind)
            handler.send_body(429, b"slow down", "text/plain", Retry_After=retry_after)
        else:
            handler.send_body(200, data_body())

    with LocalHTTPServer(throttle_once) as server:
        attempts = []
        cap = 0.5 if kind == "capped" else 60.0
        client = client_for(server.url, max_retries=2, max_retry_after_seconds=cap)
        series = client.fetch_daily("TSLA", on_attempt=attempts.append)
        gap = server.arrivals[1] - server.arrivals[0]
    assert series.attempts == 2
    assert attempts[0].cause is FailureCause.HTTP_RATE_LIMITED and attempts[0].outcome == "retry"
    assert least_gap <= gap < most_gap, gap  # the client's own backoff here is 0.01 s


def test_retry_after_parsing():
    now = dt.datetime(2026, 10, 5, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Mon, 05 Oct 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Mon, 05 Oct 2026 11:00:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


# --- bodies that used to crash the step -----------------------------------------------------


def test_deeply_nested_json_fails_that_symbol_alone():
    nested = b"[" * 200_000 + b"]" * 200_000  # RecursionError for the standard json module

    def respond(handler: LocalHandler) -> None:
        handler.send_body(200, nested if "symbol=TSLA" in handler.path else data_body("IBM"))

    with LocalHTTPServer(respond) as server:
        client = client_for(server.url)
        error = fetch_failure(client, "TSLA")
        assert client.fetch_daily("IBM").symbol == "IBM"
    assert error.cause is FailureCause.NOT_JSON
    assert "depth" in str(error)


def test_volume_beyond_int64_fails_that_symbol_with_the_row_named():
    body = daily_series_body("TSLA", AS_OF, 3)
    body["Time Series (Daily)"]["2026-10-02"]["5. volume"] = "99999999999999999999"
    with LocalHTTPServer(lambda h: h.send_body(200, json.dumps(body).encode())) as server:
        error = fetch_failure(client_for(server.url))
    assert error.cause is FailureCause.MALFORMED_DATA
    assert "row 2026-10-02" in str(error) and "64-bit" in str(error)


def test_non_utf8_body_is_named():
    with LocalHTTPServer(lambda h: h.send_body(200, b'{"Note": "caf\xe9"}')) as server:
        error = fetch_failure(client_for(server.url))
    assert error.cause is FailureCause.NOT_JSON and "UTF-8" in str(error)


def test_any_other_exception_fails_that_symbol_as_a_client_error(tmp_path):
    # A real fault outside requests: the pacing lock's folder does not exist.
    pacer = SharedPacer(tmp_path / "missing" / "alpha_vantage.lock")
    with LocalHTTPServer(lambda h: h.send_body(200, data_body())) as server:
        error = fetch_failure(client_for(server.url, pacer=pacer, min_interval_seconds=1.0))
        assert server.paths == []
    assert error.cause is FailureCause.CLIENT_ERROR
    assert "FileNotFoundError" in str(error)


# --- the key in its escaped forms -----------------------------------------------------------

HOSTILE_KEY = 'K"EY\\9é Ω'


def test_key_with_json_escaped_characters_is_redacted_in_every_form():
    def echo(handler: LocalHandler) -> None:
        # an HTML error page quoting the request line and a JSON fragment with the key
        fragment = json.dumps({"key": HOSTILE_KEY})  # ensure_ascii: \" \\ \u00e9 \u03a9
        page = f"<p>bad request {handler.path}</p><pre>{fragment}</pre>"
        handler.send_body(200, page.encode(), "text/html")

    with LocalHTTPServer(echo) as server, pytest.raises(AlphaVantageError) as failure:
        client_for(server.url, api_key=HOSTILE_KEY).fetch_daily("TSLA")
    text = str(failure.value)
    assert failure.value.cause is FailureCause.NOT_JSON
    assert "bad request" in text  # the page is quoted, cleaned
    for form in (
        HOSTILE_KEY,
        json.dumps(HOSTILE_KEY)[1:-1],
        "K%22EY%5C9%C3%A9",  # URL-encoded prefix, as requests sent it
        "K%22EY%5C9%C3%A9+%CE%A9",
    ):
        assert form not in text, form
