"""`extraccion_finanzas.log`: one appended line per fetch attempt, for people and grep.

    2026-11-27T23:30:02Z symbol=TSLA attempt=1 outcome=ok rows=100 range=2026-07-08..2026-11-25
    2026-11-27T23:30:03Z symbol=IBM attempt=1 outcome=failed cause=daily_quota detail="..."

Callers pass only redacted details; the line is redacted once more before it is written.
The file is opened through the file store: never through a link (`O_NOFOLLOW`), and a
directory, FIFO or link where the log belongs is a `StoredFileError` naming it.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from fin_assets.lib.alpha_vantage.client import Attempt
from fin_assets.lib.alpha_vantage.errors import redact
from fin_assets.lib.file_store import DataFolder, folder_of

_lock = threading.Lock()


def format_line(
    symbol: str,
    attempt: int,
    outcome: str,
    *,
    rows: int | None = None,
    first_day: dt.date | None = None,
    last_day: dt.date | None = None,
    cause: str | None = None,
    detail: str | None = None,
    at: dt.datetime | None = None,
) -> str:
    when = (at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    parts = [when, f"symbol={symbol}", f"attempt={attempt}", f"outcome={outcome}"]
    if rows is not None:
        parts.append(f"rows={rows}")
    if first_day and last_day:
        parts.append(f"range={first_day.isoformat()}..{last_day.isoformat()}")
    if cause:
        parts.append(f"cause={cause}")
    if detail:
        parts.append('detail="{}"'.format(detail.replace('"', "'")))
    return " ".join(parts)


class ExtractionLog:
    def __init__(
        self, path: Path, secret: str | None = None, files: DataFolder | None = None
    ) -> None:
        self.path = path
        self._secret = secret
        self._files = files or folder_of(path)

    def check_writable(self) -> None:
        """Open (create) the log once, so that a log that cannot be written stops the run
        before any request spends quota; `StoredFileError` names the file and the problem."""
        with _lock:
            self._files.append(self.path, b"")

    def append(self, line: str) -> None:
        line = redact(line, self._secret).replace("\n", " ")
        # Opened per line (O_APPEND): a log rotated away between lines is created again.
        with _lock:
            self._files.append(self.path, (line + "\n").encode())

    def record_attempt(self, attempt: Attempt) -> None:
        """Retries and failures; successes are recorded with their rows by `record_success`."""
        if attempt.outcome == "ok":
            return
        self.append(
            format_line(
                attempt.symbol,
                attempt.number,
                attempt.outcome,
                cause=attempt.cause.code if attempt.cause else None,
                detail=attempt.detail,
            )
        )

    def record_success(
        self, symbol: str, attempt: int, rows: int, first_day: dt.date, last_day: dt.date
    ) -> None:
        self.append(
            format_line(symbol, attempt, "ok", rows=rows, first_day=first_day, last_day=last_day)
        )
