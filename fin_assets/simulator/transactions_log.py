"""logs_transacciones.log: one line per generated event, whether or not Kafka takes it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# The event_id in a line, for readers (tests, operators grepping for a document id).
EVENT_ID_PATTERN = re.compile(r"event_id=([0-9a-f-]{36})")


def format_line(event: dict[str, Any]) -> str:
    """`<ts> <LEVEL> <event_type> <symbol> event_id=<uuid> seq=<n> run_id=<id> | <message>`."""
    return (
        f"{event['ts']} {event['level']} {event['event_type']} {event['symbol']}"
        f" event_id={event['event_id']} seq={event['seq']} run_id={event['run_id']}"
        f" | {event['message']}"
    )


class TransactionLog:
    """Appends lines and flushes each one, so that a crash loses at most the line in progress."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle = path.open("a", encoding="utf-8", buffering=1)  # line-buffered

    def write(self, event: dict[str, Any]) -> None:
        self._handle.write(format_line(event) + "\n")

    def close(self) -> None:
        self._handle.close()


def read_event_ids(path: Path, run_id: str | None = None) -> list[str]:
    """The event_ids logged in `path`, optionally only those of one run."""
    ids = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if run_id is not None and f" run_id={run_id} " not in line:
            continue
        match = EVENT_ID_PATTERN.search(line)
        if match:
            ids.append(match.group(1))
    return ids
