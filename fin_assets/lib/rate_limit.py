"""Spacing of API calls shared by every process on this machine.

Alpha Vantage counts its burst limit (about 1 request/s on free keys) per key and per IP, so
two `fin-assets batch` processes, a schedule tick next to a manual run, or two instances on one
host must share one spacing. `SharedPacer` keeps the time of the last call in a lock file:
each caller takes an exclusive `fcntl.flock`, waits until `min_interval` has passed since the
stored time, stores its own time and releases the lock (closing the file), so calls from any
number of processes and threads are at least `min_interval` apart.

Why not a token bucket (e.g. pyrate-limiter with its SQLite bucket): a bucket lets a full
bucket out as a burst, which is what the API refuses; strict spacing is what it asks for, and
it is twenty lines on the standard library.

The lock lives in `$FIN_RATE_LIMIT_DIR` or, by default, in a per-user folder of the system's
temp dir — not under `FIN_RUN_DIR`/`DAGSTER_HOME`, which differ between clones and test runs
on one machine while the API's limit does not. One file per API host.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import stat
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from fin_assets.lib import settings

log = logging.getLogger(__name__)

RATE_LIMIT_DIR_ENV = "FIN_RATE_LIMIT_DIR"
REQUESTS_PER_MINUTE_ENV = "ALPHAVANTAGE_REQUESTS_PER_MINUTE"
# About 1 request/s since late 2025.
FREE_KEY_REQUESTS_PER_MINUTE = settings.FREE_KEY_REQUESTS_PER_MINUTE
# 10% margin so network jitter cannot squeeze two calls into the server's window.
SAFETY_MARGIN = 1.1


def min_interval_for(requests_per_minute: float) -> float:
    """Seconds between two calls for a plan's rate: 60/min -> 1.1 s (with the margin)."""
    if not requests_per_minute > 0:
        raise ValueError(f"{REQUESTS_PER_MINUTE_ENV} must be a positive number of requests")
    return 60.0 / requests_per_minute * SAFETY_MARGIN


def requests_per_minute_from_env(environ: dict[str, str] | None = None) -> float:
    """ALPHAVANTAGE_REQUESTS_PER_MINUTE, validated by fin_assets/lib/settings.py (SettingsError, a
    ValueError, names the variable)."""
    return settings.alpha_vantage(environ).requests_per_minute


class RequestPacer:
    """Spacing inside one process only (tests, and the fallback when no lock file is usable)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_call = float("-inf")

    def wait(self, min_interval: float) -> None:
        with self._lock:
            delay = self._last_call + min_interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._last_call = time.monotonic()


class SharedPacer:
    """Spacing across processes through `lock_path` (see the module docstring)."""

    _STAMP_BYTES = 32

    def __init__(self, lock_path: Path) -> None:
        self.lock_path = lock_path

    def wait(self, min_interval: float) -> None:
        if min_interval <= 0:
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            last = self._read_stamp(fd)
            # CLOCK_MONOTONIC is one clock for every process of a boot; a stamp ahead of it
            # comes from before a reboot and is ignored.
            now = time.monotonic()
            if last <= now:
                delay = last + min_interval - now
                if delay > 0:
                    time.sleep(delay)
            stamp = f"{time.monotonic():.6f}".ljust(self._STAMP_BYTES).encode()
            os.pwrite(fd, stamp, 0)
        finally:
            os.close(fd)  # also releases the lock

    def _read_stamp(self, fd: int) -> float:
        try:
            return float(os.pread(fd, self._STAMP_BYTES, 0).decode().strip() or "-inf")
        except (ValueError, UnicodeDecodeError):
            return float("-inf")  # an empty or damaged file: no call to wait for


def default_lock_dir() -> Path:
    configured = settings.alpha_vantage().rate_limit_dir
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"fin_assets-rate-limit-{os.getuid()}"


_fallback_pacer = RequestPacer()


def pacer_for(base_url: str, lock_dir: Path | None = None) -> SharedPacer | RequestPacer:
    """The machine-wide pacer for the API host of `base_url`.

    Falls back to in-process pacing (with a warning) when the folder cannot be used safely:
    missing rights, or a folder in a shared temp dir that belongs to someone else.
    """
    folder = lock_dir or default_lock_dir()
    host = (urlsplit(base_url).hostname or base_url).lower()
    port = urlsplit(base_url).port or ""
    name = hashlib.sha256(f"{host}:{port}".encode()).hexdigest()[:16]
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise PermissionError(f"{folder} is not a folder of this user")
    except OSError as exc:
        log.warning("API pacing is per process only: cannot use %s (%s)", folder, exc)
        return _fallback_pacer
    return SharedPacer(folder / f"alpha_vantage-{name}.lock")
