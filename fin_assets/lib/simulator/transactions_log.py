"""logs_transacciones.log: one line per generated event, whether or not Kafka takes it."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fin_assets.lib.file_store import StoredFileError, folder_of

# The event_id in a line, for readers (tests, operators grepping for a document id).
EVENT_ID_PATTERN = re.compile(r"event_id=([0-9a-f-]{36})")


def format_line(event: dict[str, Any]) -> str:
    """`<ts> <LEVEL> <event_type> <symbol> event_id=<uuid> seq=<n> run_id=<id> | <message>`."""
    return (
        f"{event['ts']} {event['level']} {event['event_type']} {event['symbol']}"
        f" event_id={event['event_id']} seq={event['seq']} run_id={event['run_id']}"
        f" | {event['message']}"
    )


def _whole_lines_in(events: Sequence[dict[str, Any]], written: int) -> tuple[int, int]:
    """How many of the events' lines, and how many bytes, fit whole in the first `written`."""
    lines = total = 0
    for event in events:
        size = len((format_line(event) + "\n").encode())
        if total + size > written:
            break
        lines += 1
        total += size
    return lines, total


class TransactionLog:
    """Appends the lines of a batch of events with a single write(2) (one event per batch
    below 1,000 events/s), so a crash loses at most that batch's lines, never half a line.

    A write that fails (full disk, quota, I/O error) never raises: `write` returns False and
    the error is kept in `last_error`; a line the disk took only part of is cut off again, so
    the file never holds a partial line. The caller decides how to report it.

    A log that cannot be opened (a directory, a FIFO or a symlink where the log belongs, a
    folder that is a file) does not raise either: every write then returns 0 with the
    file store's named problem in `last_error`, so the Kafka feed goes on.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last_error: OSError | None = None
        self._fd: int | None = None
        try:
            # O_APPEND (every write lands at the end, also next to another writer) and
            # O_NOFOLLOW (a link never redirects the log), through the file store.
            self._fd = folder_of(path).open_append(path)
        except StoredFileError as error:
            self.last_error = OSError(str(error))
        except OSError as error:  # the data folder itself cannot be made
            self.last_error = error

    def write(self, event: dict[str, Any]) -> bool:
        """True when the whole line is in the file."""
        return self.write_many((event,)) == 1

    def write_many(self, events: Sequence[dict[str, Any]]) -> int:
        """Appends one line per event with ONE write(2) (at full speed the syscall costs more
        than making the lines); returns how many lines, from the first, are whole in the file.
        After a short write the whole lines stay and the fragment of the next one is cut."""
        if self._fd is None:  # never opened: `last_error` says why
            return 0
        data = "".join([format_line(event) + "\n" for event in events]).encode()
        try:
            written = os.write(self._fd, data)  # type: ignore[arg-type]
        except OSError as exc:
            self.last_error = exc
            return 0
        if written == len(data):
            return len(events)
        # A short write: the disk filled up inside a line. Remove the fragment (we appended
        # it, so it is the file's last bytes) rather than leave half a line.
        whole_lines, whole_bytes = _whole_lines_in(events, written)
        self._cut_fragment(written - whole_bytes)
        self.last_error = OSError(
            errno.ENOSPC,
            f"only {written} of {len(data)} bytes written ({whole_lines} of {len(events)}"
            " lines whole; disk full or file size limit); the partial line was removed",
            str(self.path),
        )
        return whole_lines

    def _cut_fragment(self, length: int) -> None:
        if length <= 0:
            return
        try:
            size = os.fstat(self._fd).st_size  # type: ignore[arg-type]
            os.ftruncate(self._fd, max(size - length, 0))  # type: ignore[arg-type]
        except OSError as exc:
            self.last_error = exc

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_event_ids(path: Path, run_id: str | None = None) -> list[str]:
    """The event_ids logged in `path`, optionally only those of one run."""
    ids = []
    for line in (folder_of(path).read_text(path) or "").splitlines():
        if run_id is not None and f" run_id={run_id} " not in line:
            continue
        match = EVENT_ID_PATTERN.search(line)
        if match:
            ids.append(match.group(1))
    return ids
