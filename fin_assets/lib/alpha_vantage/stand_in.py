"""A local stand-in for the Alpha Vantage API: a real HTTP server on 127.0.0.1.

It speaks the same path, parameters and JSON shape as `TIME_SERIES_DAILY`, serves deterministic
synthetic prices (each listing on its own exchange's trading days: `RELIANCE.BSE` has
2024-07-04, `TSLA` does not), and on request answers with each failure the real API produces
(HTTP-200 notices, `{}`, HTML, 503, a hang). It is the embedded default when no API key is set, the
server the tests talk to, and the one the benchmarks load.

Scenarios are queued per symbol (or for every symbol with "*"), from Python
(`server.queue("TSLA", "daily_quota")`) or over HTTP
(`GET /_stand_in/queue?symbol=TSLA&scenario=daily_quota&times=2`).
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from fin_assets.lib import market_calendar
from fin_assets.lib.alpha_vantage import synthetic
from fin_assets.lib.symbols import InvalidSymbolError, validate_symbol

COMPACT_ROWS = 100

# Provider texts, as collected in shared/reference/alpha_vantage.md.
INVALID_CALL = (
    "Invalid API call. Please retry or visit the documentation "
    "(https://www.alphavantage.co/documentation/) for TIME_SERIES_DAILY."
)
INVALID_KEY = (
    "the parameter apikey is invalid or missing. Please claim your free API key on "
    "(https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."
)
DAILY_QUOTA = (
    "We have detected your API key as {key} and our standard API rate limit is 25 requests per "
    "day. Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ "
    "to instantly remove all daily rate limits."
)
BURST_LIMIT = (
    "Thank you for using Alpha Vantage! Please consider spreading out your free API requests "
    "more sparingly (1 request per second). You may subscribe to any of the premium plans at "
    "https://www.alphavantage.co/premium/ to lift the free key rate limit (25 requests per day), "
    "raise the per-minute rate limit, and instantly unlock all premium endpoints"
)
PREMIUM_OUTPUTSIZE = (
    "Thank you for using Alpha Vantage! The outputsize=full parameter value is a premium feature "
    "for the TIME_SERIES_DAILY endpoint. You may subscribe to any of the premium plans at "
    "https://www.alphavantage.co/premium/ to instantly unlock all premium features"
)
DEMO_KEY = (
    "The **demo** API key is for demo purposes only. Please claim your free API key at "
    "(https://www.alphavantage.co/support/#api-key) to explore our full API offerings. "
    "It takes fewer than 20 seconds."
)
MINUTE_NOTE = (
    "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute "
    "and 500 calls per day. Please visit https://www.alphavantage.co/premium/ if you would like "
    "to target a higher API call frequency."
)
HTML_503 = "<html><head><title>503 Service Unavailable</title></head><body>busy</body></html>"

SCENARIOS = (
    "ok",
    "provisional",
    "unknown_symbol",
    "invalid_key",
    "daily_quota",
    "burst_limit",
    "minute_limit",
    "premium",
    "demo",
    "empty",
    "not_json",
    "malformed",
    "inconsistent",
    "http_503",
    "hang",
)


@dataclass
class StandInState:
    as_of: dt.date | None = None  # newest final day served; None: the last closed session
    enforce_pacing: bool = False  # answer the burst notice to calls < min_interval apart
    min_interval_seconds: float = 1.0
    allow_full_output: bool = False  # outputsize=full is premium on free keys
    hang_seconds: float = 5.0
    queued: dict[str, collections.deque[str]] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)  # params, key removed
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() of each request
    last_request_at: float = float("-inf")
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_scenario(self, symbol: str) -> str:
        for key in (symbol, "*"):
            queue = self.queued.get(key)
            if queue:
                return queue.popleft()
        return "ok"


def daily_series_body(
    symbol: str, as_of: dt.date, rows: int | None, provisional: bool = False
) -> dict:
    bars = synthetic.bars_until(symbol, as_of, rows)
    refreshed = as_of.isoformat()
    if provisional:
        today = market_calendar.next_trading_day(symbol, as_of)
        bars = [*bars[1:], synthetic.provisional_bar(symbol, today)]
        refreshed = f"{today.isoformat()} 13:14:34"
    return {
        "Meta Data": {
            "1. Information": "Daily Prices (open, high, low, close) and Volumes "
            "[SYNTHETIC: fin_assets local stand-in]",
            "2. Symbol": symbol,
            "3. Last Refreshed": refreshed,
            "4. Output Size": "Compact" if rows else "Full size",
            "5. Time Zone": "US/Eastern",
        },
        "Time Series (Daily)": {
            bar.day.isoformat(): bar.as_alpha_vantage_row() for bar in reversed(bars)
        },
    }


def _valid_symbol_or_none(raw: str) -> str | None:
    """The normalised symbol, or None for text the real API would answer "Invalid API call"."""
    try:
        return validate_symbol(raw)
    except InvalidSymbolError:
        return None


class _Handler(BaseHTTPRequestHandler):
    server: StandInServer

    def log_message(self, format: str, *args) -> None:  # quiet: tests and CLI own the output
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if url.path == "/query":
            self._query(params)
        elif url.path == "/_stand_in/queue":
            self._queue(params)
        else:
            self._send(404, "text/plain", "not found")

    def _queue(self, params: dict[str, str]) -> None:
        scenario = params.get("scenario", "")
        if scenario not in SCENARIOS:
            self._send(400, "text/plain", f"unknown scenario; one of {', '.join(SCENARIOS)}")
            return
        times = params.get("times", "1")
        if not (times.isascii() and times.isdigit() and int(times) <= 1000):
            self._send(400, "text/plain", f"times={times[:20]!r} is not a count from 0 to 1000")
            return
        self.server.queue(params.get("symbol", "*"), scenario, int(times))
        self._send(200, "application/json", json.dumps({"queued": scenario}))

    def _query(self, params: dict[str, str]) -> None:
        state = self.server.state
        key = params.get("apikey", "")
        symbol = _valid_symbol_or_none(params.get("symbol", ""))
        with state.lock:
            now = time.monotonic()
            too_soon = now - state.last_request_at < state.min_interval_seconds
            state.last_request_at = now
            state.requests.append({k: v for k, v in params.items() if k != "apikey"})
            state.arrivals.append(now)
            scenario = state.next_scenario(symbol or "")
        if state.enforce_pacing and too_soon and scenario == "ok":
            scenario = "burst_limit"
        if symbol is None and scenario in ("malformed", "inconsistent"):
            scenario = "ok"  # no series for text that is not a symbol: "Invalid API call"

        if scenario == "hang":
            time.sleep(state.hang_seconds)
            scenario = "ok"
        notices = {
            "daily_quota": ("Information", DAILY_QUOTA.format(key=key)),
            "burst_limit": ("Information", BURST_LIMIT),
            "premium": ("Information", PREMIUM_OUTPUTSIZE),
            "demo": ("Information", DEMO_KEY),
            "minute_limit": ("Note", MINUTE_NOTE),
            "unknown_symbol": ("Error Message", INVALID_CALL),
            "invalid_key": ("Error Message", INVALID_KEY),
        }
        if scenario in notices:
            name, text = notices[scenario]
            self._json({name: text})
        elif scenario == "empty":
            self._json({})
        elif scenario == "not_json":
            self._send(200, "text/html", HTML_503)
        elif scenario == "http_503":
            self._send(503, "text/html", HTML_503)
        elif scenario == "malformed":
            body = daily_series_body(symbol, self._as_of(symbol), 3)
            next(iter(body["Time Series (Daily)"].values()))["4. close"] = "n/a"
            self._json(body)
        elif scenario == "inconsistent":
            # Well-formed but wrong: the newest day's high is below its low.
            body = daily_series_body(symbol, self._as_of(symbol), COMPACT_ROWS)
            newest = next(iter(body["Time Series (Daily)"].values()))
            newest["2. high"], newest["3. low"] = newest["3. low"], newest["2. high"]
            self._json(body)
        elif not key:
            self._json({"Error Message": INVALID_KEY})
        elif params.get("function") != "TIME_SERIES_DAILY" or symbol is None:
            self._json({"Error Message": INVALID_CALL})
        elif key == "demo" and symbol != "IBM":
            self._json({"Information": DEMO_KEY})
        elif params.get("outputsize") == "full" and not state.allow_full_output:
            self._json({"Information": PREMIUM_OUTPUTSIZE})
        else:
            rows = None if params.get("outputsize") == "full" else COMPACT_ROWS
            provisional = scenario == "provisional"
            self._json(daily_series_body(symbol, self._as_of(symbol), rows, provisional))

    def _as_of(self, symbol: str) -> dt.date:
        return self.server.state.as_of or market_calendar.last_closed_trading_day(symbol)

    def _json(self, payload: dict) -> None:
        self._send(200, "application/json", json.dumps(payload, indent=4))

    def _send(self, status: int, content_type: str, body: str) -> None:
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout fired during a "hang")


class StandInServer(ThreadingHTTPServer):
    """`with StandInServer() as server: server.url` serves on a free loopback port."""

    daemon_threads = True

    def __init__(
        self, port: int = 0, state: StandInState | None = None, host: str = "127.0.0.1"
    ) -> None:
        # Loopback by default; a container serving other containers binds 0.0.0.0.
        super().__init__((host, port), _Handler)
        self.state = state or StandInState()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/query"

    def queue(self, symbol: str, scenario: str, times: int = 1) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}")
        with self.state.lock:
            self.state.queued.setdefault(symbol.upper(), collections.deque()).extend(
                [scenario] * times
            )

    def start(self) -> StandInServer:
        # A short poll: stopping waits up to one poll interval (serve_forever's default is 0.5 s).
        self._thread = threading.Thread(
            target=self.serve_forever, args=(0.05,), daemon=True, name="stand-in"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
