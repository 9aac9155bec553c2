"""Processes as Linux shows them in /proc: the one reader of /proc/<pid>/stat, for the dead-run
recovery, the simulator's worker identity and `fin-assets dev`'s shutdown."""

from __future__ import annotations

import os
from pathlib import Path


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat from `state` on (so [0] is the state, [1] the ppid, [2] the
    process group, [19] the start time in clock ticks after boot); None when there is no such
    process. The command name before them may hold spaces and parentheses."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def start_time(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), None when there is no such process."""
    fields = stat_fields(pid)
    if fields is None:
        return None
    return boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")
