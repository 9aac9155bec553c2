"""The one poll-until-deadline loop of the tests.

Tests wait for real services (brokers, nodes, `dagster dev`, Logstash) and for processes to
exit. Each copy of such a loop used to differ in what it swallowed and what it said at the end;
here a wait names what it waited for, the last value or error seen, and fails as a test failure
(an AssertionError subclass, so code that treats a failed read as "not yet" still can).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """`wait_until` gave up: the condition stayed false until the deadline."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.5,
    message: str = "the condition",
    *,
    ignore: type[BaseException] | tuple[type[BaseException], ...] = (),
    detail: Callable[[], str] | None = None,
) -> T:
    """Call `predicate` every `interval` seconds until it returns something truthy, and return
    that value; raise WaitTimeout naming `message` once `timeout` seconds have passed.

    `predicate` is always called at least once, and once more after the deadline has passed
    if the last call came before it. Exceptions of the `ignore` types count as "not yet" (the
    last one is named at the timeout and chained); any other exception ends the wait at once,
    which is how a predicate reports that what it waits for can no longer happen (a process
    that exited). `detail()` is appended to the timeout message (logs, last state).
    """
    if not isinstance(interval, (int, float)):
        raise TypeError(f"interval must be a number of seconds, not {interval!r}")
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    last_value: Any = None
    while True:
        past_deadline = time.monotonic() > deadline
        try:
            value = predicate()
        except ignore as exc:
            last_error = exc
        else:
            if value:
                return value
            last_value, last_error = value, None
        if past_deadline:
            break
        time.sleep(interval)
    text = f"timed out after {timeout:g} s waiting for {message}"
    if last_error is not None:
        text += f" (last error: {last_error})"
    elif last_value not in (None, False):
        text += f" (last value: {last_value!r})"
    if detail is not None:
        text += f"\n{detail()}"
    raise WaitTimeout(text) from last_error
