"""Event generation: trades, price alerts and market-API errors on a per-symbol random walk.

Pure logic (no Kafka, no Dagster). With the same seed, symbols and start prices, the stream's
contents are identical apart from `event_id`, `ts` and `run_id`, which identify one occurrence.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

EVENT_TYPES = ("trade", "price_alert", "api_error")
LEVEL_BY_TYPE = {"trade": "INFO", "price_alert": "WARNING", "api_error": "ERROR"}

# The simulated prices never fall below this: keeps prices positive and alerts measurable.
MIN_PRICE = 1.0
ACCOUNT_POOL = 500
API_ENDPOINTS = ("GLOBAL_QUOTE", "TIME_SERIES_DAILY", "TIME_SERIES_INTRADAY", "SYMBOL_SEARCH")
ERROR_KINDS = ("timeout", "connection_refused", "http_5xx", "rate_limit")


@dataclass(frozen=True)
class EventWeights:
    """Relative frequencies of the three kinds (need not sum to 1)."""

    trade: float = 0.85
    price_alert: float = 0.07
    api_error: float = 0.08

    def __post_init__(self) -> None:
        values = (self.trade, self.price_alert, self.api_error)
        if any(value < 0 for value in values) or sum(values) <= 0:
            raise ValueError(f"event weights must be >= 0 and not all 0, got {values}")

    def as_list(self) -> list[float]:
        return [self.trade, self.price_alert, self.api_error]


@dataclass(frozen=True)
class GeneratorSettings:
    weights: EventWeights = EventWeights()
    # A move of at least this many percent between two consecutive prices is an alert.
    alert_threshold_pct: float = 2.0
    # Standard deviation of one random-walk step, in percent: small next to the threshold so
    # that ordinary trades never look like an alert.
    step_volatility_pct: float = 0.15


def utc_timestamp(moment: datetime) -> str:
    """`2026-05-04T13:45:01.123Z`: UTC, milliseconds, as the schema requires."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class EventGenerator:
    """Produces one event per call; keeps each symbol's current price."""

    def __init__(
        self,
        symbols: list[str],
        start_prices: dict[str, float],
        run_id: str,
        seed: int | None = None,
        settings: GeneratorSettings = GeneratorSettings(),
    ) -> None:
        if not symbols:
            raise ValueError("at least one symbol is needed")
        self.symbols = list(symbols)
        self.prices = {symbol: max(float(start_prices[symbol]), MIN_PRICE) for symbol in symbols}
        self.run_id = run_id
        self.settings = settings
        self._rng = random.Random(seed)
        self._seq = 0

    def next_event(self, now: datetime | None = None) -> dict[str, Any]:
        event_type = self._rng.choices(EVENT_TYPES, weights=self.settings.weights.as_list())[0]
        symbol = self._rng.choice(self.symbols)
        body = {
            "trade": self._trade,
            "price_alert": self._price_alert,
            "api_error": self._api_error,
        }[event_type](symbol)
        event = {
            "event_id": str(uuid.uuid4()),
            "ts": utc_timestamp(now or datetime.now(UTC)),
            "event_type": event_type,
            "symbol": symbol,
            "seq": self._seq,
            "level": LEVEL_BY_TYPE[event_type],
            "run_id": self.run_id,
            **body,
        }
        self._seq += 1
        return event

    def _step(self, symbol: str) -> float:
        """One random-walk step (log-normal, so the price stays positive)."""
        change = self._rng.gauss(0.0, self.settings.step_volatility_pct / 100)
        price = max(self.prices[symbol] * math.exp(change), MIN_PRICE)
        self.prices[symbol] = price
        return price

    def _trade(self, symbol: str) -> dict[str, Any]:
        price = round(self._step(symbol), 2)
        side = self._rng.choice(("BUY", "SELL"))
        quantity = self._rng.randint(1, 500)
        amount = round(quantity * price, 2)
        account = f"ACC-{100000 + self._rng.randrange(ACCOUNT_POOL):06d}"
        return {
            "side": side,
            "quantity": quantity,
            "price": price,
            "amount": amount,
            "account": account,
            "message": f"{side} {quantity} {symbol} @ {price:.2f} = {amount:.2f} ({account})",
        }

    def _price_alert(self, symbol: str) -> dict[str, Any]:
        """A sudden move of at least the threshold; later trades continue from the new price."""
        threshold = self.settings.alert_threshold_pct
        previous = round(self.prices[symbol], 2)
        direction = self._rng.choice(("UP", "DOWN"))
        # 1.1x the threshold at least, so cent rounding cannot push the move below it.
        magnitude = self._rng.uniform(1.1 * threshold, 2.5 * threshold)
        if direction == "DOWN" and previous * (1 - magnitude / 100) < MIN_PRICE:
            direction = "UP"  # a fall would hit the price floor
        sign = 1 if direction == "UP" else -1
        new = round(previous * (1 + sign * magnitude / 100), 2)
        self.prices[symbol] = new
        change_pct = round((new - previous) / previous * 100, 3)
        return {
            "previous_price": previous,
            "new_price": new,
            "change_pct": change_pct,
            "threshold_pct": threshold,
            "direction": direction,
            "message": (
                f"{symbol} moved {direction} {abs(change_pct):.2f}% from {previous:.2f} to"
                f" {new:.2f} (alert threshold {threshold:g}%)"
            ),
        }

    def _api_error(self, symbol: str) -> dict[str, Any]:
        endpoint = self._rng.choice(API_ENDPOINTS)
        kind = self._rng.choice(ERROR_KINDS)
        rng = self._rng
        if kind == "timeout":
            status, latency, retry_after = None, rng.randint(5000, 30000), 5.0
            detail = f"no answer after {latency} ms"
        elif kind == "connection_refused":
            status, latency, retry_after = None, rng.randint(1, 50), 10.0
            detail = "connection refused"
        elif kind == "http_5xx":
            status = rng.choice((500, 502, 503, 504))
            latency, retry_after = rng.randint(50, 3000), 2.0
            detail = f"HTTP {status}"
        else:
            status, latency = 429, rng.randint(20, 300)
            retry_after = float(rng.randint(1, 60))
            detail = "HTTP 429 rate limit"
        return {
            "endpoint": endpoint,
            "error_kind": kind,
            "http_status": status,
            "latency_ms": latency,
            "retry_after_s": retry_after,
            "message": (
                f"Market API {endpoint} for {symbol} failed: {detail};"
                f" retrying in {retry_after:g} s"
            ),
        }
