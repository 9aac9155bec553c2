"""Calls that may block on a FIFO: run them in a thread with a bound, and unblock them (open
the FIFO's other end) instead of letting the test hang. Shared by the file-store and the
transactions-log tests.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path


def within(seconds: float, call, fifo_dir: Path):
    """`call()`, failing (not hanging) if it blocks on a FIFO under `fifo_dir`."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as error:  # handed to the test thread
            box["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    hung = thread.is_alive()
    while thread.is_alive():  # give the blocked reader or writer its other end, then EOF
        for path in fifo_dir.rglob("*"):
            if path.is_fifo():
                for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
                    with contextlib.suppress(OSError):
                        os.close(os.open(path, flags))
        thread.join(0.5)
    assert not hung, f"blocked for {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")
