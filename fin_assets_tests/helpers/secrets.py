"""Scans for a secret that must not appear, which also count what they read.

A "the password appears nowhere" test passes just as well when it read nothing: an empty glob,
a folder that moved, a process list taken after the processes exited. Each scan here returns
what it inspected along with what it found, and `assert_clean` fails when nothing was inspected
or when an expected artefact (the run's log file, the server's process) was not among it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fin_assets_tests.helpers import processes


@dataclass(frozen=True)
class Scan:
    what: str  # "files under /tmp/x", "command lines"...
    inspected: tuple[str, ...]  # a name per thing read (path, "pid 12: argv", label)
    found: tuple[str, ...]  # the names of those that hold the secret

    def assert_clean(self, expect: Iterable[str] = ()) -> Scan:
        """Something was inspected, every `expect` (a substring of an inspected name) was
        among it, and the secret was in none of it. Returns self (for the counts)."""
        assert self.inspected, f"no {self.what} inspected: the check would have checked nothing"
        missing = [e for e in expect if not any(e in name for name in self.inspected)]
        assert not missing, (
            f"expected among the {len(self.inspected)} {self.what} inspected: {missing}"
        )
        assert not self.found, f"the secret is in {len(self.found)} {self.what}: {self.found}"
        return self

    def __add__(self, other: Scan) -> Scan:
        return Scan(
            f"{self.what} + {other.what}",
            self.inspected + other.inspected,
            self.found + other.found,
        )


def _needles(secrets: str | bytes | Iterable[str | bytes]) -> list[bytes]:
    if isinstance(secrets, (str, bytes)):
        secrets = [secrets]
    needles = [s.encode() if isinstance(s, str) else s for s in secrets]
    assert all(needles), "an empty secret is in everything"
    return needles


def scan_files(root: Path, secrets: str | bytes | Iterable[str | bytes]) -> Scan:
    """Every regular file under `root` (links not followed), read whole."""
    needles = _needles(secrets)
    inspected, found = [], []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        inspected.append(str(path))
        if any(needle in data for needle in needles):
            found.append(str(path))
    return Scan(f"files under {root}", tuple(inspected), tuple(found))


def scan_texts(
    texts: Mapping[str, str | bytes], secrets: str | bytes | Iterable[str | bytes], what: str
) -> Scan:
    """Named texts (log lines, serialized events, metadata entries, outputs)."""
    needles = _needles(secrets)
    found = [
        name
        for name, text in texts.items()
        if any(n in (text.encode() if isinstance(text, str) else text) for n in needles)
    ]
    return Scan(what, tuple(texts), tuple(found))


def scan_command_lines(
    secrets: str | bytes | Iterable[str | bytes], pids: Iterable[int] | None = None
) -> Scan:
    """Command lines as `ps` shows them: of `pids`, or of every process but this one."""
    if pids is None:
        lines = processes.command_lines()
    else:
        lines = {pid: line for pid in pids if (line := processes.command_line(pid)) is not None}
    return scan_texts(
        {f"pid {pid}: {line[:120]}": line for pid, line in lines.items()},
        secrets,
        "command lines",
    )
