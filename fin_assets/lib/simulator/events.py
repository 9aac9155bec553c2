"""Event generation: trades, price alerts and market-API errors on a per-symbol random walk.

Pure logic (no Kafka, no Dagster). With the same seed, symbols and start prices, the stream's
contents are identical apart from `event_id`, `ts` and `run_id`, which identify one occurrence.

Generation is on the hot path (thousands of events/s share one core and the GIL with
kafka-python's sender thread), so the per-event work is kept small: constants are prepared
once, event ids come from a fast in-process random source instead of a system call each, and
the timestamp's date-time part is formatted once per second.
"""

from __future__ import annotations

import math
import os
import random
import time
from bisect import bisect
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any

EVENT_TYPES = ("trade", "price_alert", "api_error")
LEVEL_BY_TYPE = {"trade": "INFO", "price_alert": "WARNING", "api_error": "ERROR"}

# The simulated prices stay within these bounds: positive, measurable alerts, and far from
# float overflow (quantity * price stays below 1e12), so no event can carry Infinity or NaN.
MIN_PRICE = 1.0
MAX_PRICE = 1_000_000_000.0
ACCOUNT_POOL = 500
API_ENDPOINTS = ("GLOBAL_QUOTE", "TIME_SERIES_DAILY", "TIME_SERIES_INTRADAY", "SYMBOL_SEARCH")
ERROR_KINDS = ("timeout", "connection_refused", "http_5xx", "rate_limit")
ACCOUNTS = tuple(f"ACC-{100000 + number:06d}" for number in range(ACCOUNT_POOL))

# UUID version 4 layout: version nibble 4, variant bits 10 (RFC 9562).
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)


@dataclass(frozen=True)
class EventWeights:
    """Relative frequencies of the three kinds (need not sum to 1)."""

    trade: float = 0.85
    price_alert: float = 0.07
    api_error: float = 0.08

    def __post_init__(self) -> None:
        values = (self.trade, self.price_alert, self.api_error)
        if not all(math.isfinite(value) and value >= 0 for value in values) or sum(values) <= 0:
            raise ValueError(f"event weights must be finite, >= 0 and not all 0, got {values}")

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

    def __post_init__(self) -> None:
        if not (math.isfinite(self.alert_threshold_pct) and self.alert_threshold_pct > 0):
            raise ValueError(f"alert_threshold_pct must be > 0, got {self.alert_threshold_pct}")
        if not (math.isfinite(self.step_volatility_pct) and self.step_volatility_pct >= 0):
            raise ValueError(f"step_volatility_pct must be >= 0, got {self.step_volatility_pct}")


def utc_timestamp(moment: datetime) -> str:
    """`2026-05-04T13:45:01.123Z`: UTC, milliseconds, as the schema requires."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def uuid4_from_bits(bits: int) -> str:
    """The canonical text of a version-4 UUID made from 128 random bits."""
    text = f"{(bits & _UUID_CLEAR) | _UUID_SET:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def clamp_price(price: float) -> float:
    """Into [MIN_PRICE, MAX_PRICE]; a non-finite price is a bug upstream, not a value."""
    if not math.isfinite(price):
        raise ValueError(f"price {price!r} is not finite")
    return min(max(price, MIN_PRICE), MAX_PRICE)


class _UtcClock:
    """Wall-clock timestamps in the schema's format, formatting the date-time once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        millis = time.time_ns() // 1_000_000
        second, milli = divmod(millis, 1000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        return f"{self._prefix}{milli:03d}Z"


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
        self.prices = {}
        for symbol in self.symbols:
            try:
                self.prices[symbol] = clamp_price(float(start_prices[symbol]))
            except ValueError as exc:
                raise ValueError(f"start price of {symbol}: {exc}") from None
        self.run_id = run_id
        self.settings = settings
        self._rng = random.Random(seed)
        # Ids are unique per occurrence even with a fixed seed: their own source, seeded from
        # the OS once (uuid.uuid4() would make a system call per event).
        self._id_bits = random.Random(int.from_bytes(os.urandom(32))).getrandbits
        self._clock = _UtcClock()
        self._seq = 0
        # random.choices(weights=...) recomputes the cumulative weights on every call; the
        # same draw (random() * total, bisect) on precomputed ones gives the same stream.
        self._cum_weights = list(accumulate(settings.weights.as_list()))
        self._total_weight = self._cum_weights[-1]
        self._bodies = (self._trade, self._price_alert, self._api_error)
        self._step_sigma = settings.step_volatility_pct / 100
        self._symbol_count = len(self.symbols)

    def next_event(self, now: datetime | None = None) -> dict[str, Any]:
        random = self._rng.random
        index = bisect(self._cum_weights, random() * self._total_weight, 0, 2)
        # Plain random() draws instead of choice()/randint(): a fraction of their cost.
        symbol = self.symbols[int(random() * self._symbol_count)]
        event_id = uuid4_from_bits(self._id_bits(128))
        ts = utc_timestamp(now) if now is not None else self._clock.now()
        seq = self._seq
        self._seq = seq + 1
        # Each kind builds its whole event in one dict literal (no growth, no resize).
        return self._bodies[index](symbol, event_id, ts, seq)

    def _step(self, symbol: str) -> float:
        """One random-walk step (log-normal), kept within [MIN_PRICE, MAX_PRICE]."""
        change = self._rng.gauss(0.0, self._step_sigma)
        price = min(max(self.prices[symbol] * math.exp(change), MIN_PRICE), MAX_PRICE)
        self.prices[symbol] = price
        return price

    def _trade(self, symbol: str, event_id: str, ts: str, seq: int) -> dict[str, Any]:
        random = self._rng.random
        price = round(self._step(symbol), 2)
        side = "BUY" if random() < 0.5 else "SELL"
        quantity = 1 + int(random() * 500)  # 1..500
        amount = round(quantity * price, 2)
        account = ACCOUNTS[int(random() * ACCOUNT_POOL)]
        return {
            "event_id": event_id,
            "ts": ts,
            "event_type": "trade",
            "symbol": symbol,
            "seq": seq,
            "level": "INFO",
            "run_id": self.run_id,
            "side": side,
            "quantity": quantity,
            "price": price,
            "amount": amount,
            "account": account,
            "message": f"{side} {quantity} {symbol} @ {price:.2f} = {amount:.2f} ({account})",
        }

    def _price_alert(self, symbol: str, event_id: str, ts: str, seq: int) -> dict[str, Any]:
        """A sudden move of at least the threshold; later trades continue from the new price."""
        threshold = self.settings.alert_threshold_pct
        previous = round(self.prices[symbol], 2)
        direction = self._rng.choice(("UP", "DOWN"))
        # 1.1x the threshold at least, so cent rounding cannot push the move below it.
        magnitude = self._rng.uniform(1.1 * threshold, 2.5 * threshold)
        if direction == "DOWN" and previous * (1 - magnitude / 100) < MIN_PRICE:
            direction = "UP"  # a fall would hit the price floor
        elif direction == "UP" and previous * (1 + magnitude / 100) > MAX_PRICE:
            direction = "DOWN"  # a rise would hit the ceiling
        sign = 1 if direction == "UP" else -1
        new = round(previous * (1 + sign * magnitude / 100), 2)
        self.prices[symbol] = new
        change_pct = round((new - previous) / previous * 100, 3)
        return {
            "event_id": event_id,
            "ts": ts,
            "event_type": "price_alert",
            "symbol": symbol,
            "seq": seq,
            "level": "WARNING",
            "run_id": self.run_id,
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

    def _api_error(self, symbol: str, event_id: str, ts: str, seq: int) -> dict[str, Any]:
        rng = self._rng
        endpoint = rng.choice(API_ENDPOINTS)
        kind = rng.choice(ERROR_KINDS)
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
            "event_id": event_id,
            "ts": ts,
            "event_type": "api_error",
            "symbol": symbol,
            "seq": seq,
            "level": "ERROR",
            "run_id": self.run_id,
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
