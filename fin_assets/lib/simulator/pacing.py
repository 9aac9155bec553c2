"""A steady event schedule that never bursts to catch up."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class Pacer:
    """Releases one slot every `1 / rate_per_s` seconds.

    When the caller falls behind by more than one interval (a slow broker, a GC pause), the
    schedule restarts from now instead of releasing the missed slots at once: downstream sees a
    gap, never a burst.
    """

    def __init__(
        self,
        rate_per_s: float,
        clock: Callable[[], float] = time.monotonic,
        stop: threading.Event | None = None,
    ) -> None:
        # `not rate > 0` also refuses NaN, which would compare false with everything.
        if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
            raise ValueError(f"rate must be a finite number > 0 events/s, got {rate_per_s}")
        self.interval = 1.0 / rate_per_s
        self._clock = clock
        self._stop = stop or threading.Event()
        self._next_due: float | None = None
        self.resets = 0

    def seconds_until_due(self) -> float:
        """Advances the schedule by one slot; returns how long to wait for it (0 = now)."""
        now = self._clock()
        if self._next_due is None:
            self._next_due = now
        elif now - self._next_due > self.interval:
            self._next_due = now  # behind: drop the missed slots
            self.resets += 1
        wait = max(self._next_due - now, 0.0)
        self._next_due += self.interval
        return wait

    def take_due(self, limit: int = 1) -> tuple[int, float]:
        """Takes the slots due now, at most `limit`: `(count, 0.0)`; or `(0, wait)` when the
        next slot is `wait` seconds ahead. With `limit=1` it keeps the schedule exactly as
        `seconds_until_due`. Behind by more than `limit` slots, the missed slots are dropped
        (a reset) and `limit` slots are released: the caller sends them as one batch, so a
        batch never spans more than `limit` intervals of the schedule."""
        interval = self.interval
        now = self._clock()
        next_due = self._next_due
        if next_due is None:
            next_due = now
        elif now - next_due > interval * limit:
            next_due = now - interval * (limit - 1)
            self.resets += 1
        if next_due > now:
            self._next_due = next_due
            return 0, next_due - now
        # The small epsilon keeps a float rounding from costing a slot.
        count = min(limit, int((now - next_due) / interval + 1e-6) + 1)
        self._next_due = next_due + count * interval
        return count, 0.0

    def wait(self) -> bool:
        """Blocks until the next slot; False when the stop event was set meanwhile."""
        delay = self.seconds_until_due()
        if delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()
