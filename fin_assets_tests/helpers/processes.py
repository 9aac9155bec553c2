"""Processes as the tests see them: groups, descendants, start times, command lines, and
stopping a process group. Through psutil rather than each test parsing /proc/<pid>/stat by hand
(four hand-written parsers once, each with its own idea of zombies and of `comm` fields that
hold spaces or parentheses).

A zombie counts as gone everywhere here: it runs nothing, and in a private PID namespace (or
under a parent that never reaps) it may stay in the table until its parent exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterable

import psutil

from fin_assets_tests.helpers.polling import WaitTimeout, wait_until

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, ProcessLookupError)


def alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie (a stopped process is alive)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except _GONE:
        return False


def stopped(pid: int) -> bool:
    """Whether `pid` is stopped (SIGSTOP, state T)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_STOPPED
    except _GONE:
        return False


def start_time(pid: int) -> float | None:
    """When `pid` started (seconds since the epoch); None if it is gone. With the pid it
    identifies one process: a pid reused later has another start time."""
    try:
        return psutil.Process(pid).create_time()
    except _GONE:
        return None


def same_process(pid: int, started: float | None) -> bool:
    """Whether `pid` is still the live process that had start time `started`."""
    return started is not None and start_time(pid) == started and alive(pid)


def children(pid: int) -> list[int]:
    """The direct children of `pid` (none if it is gone)."""
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except _GONE:
        return []


def descendants(pid: int) -> set[int]:
    """Every live (non-zombie) descendant of `pid`, at any depth."""
    try:
        found = psutil.Process(pid).children(recursive=True)
    except _GONE:
        return set()
    return {child.pid for child in found if alive(child.pid)}


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    members = []
    for process in psutil.process_iter(["status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if os.getpgid(process.pid) == pgid:
                members.append(process.pid)
        except ProcessLookupError:
            continue
    return sorted(members)


def group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def command_lines(exclude: set[int] | None = None) -> dict[int, str]:
    """{pid: command line} of every process that can be read, arguments joined by spaces, as
    `ps` shows them (never the environment). This process is left out unless asked for."""
    skip = {os.getpid()} if exclude is None else exclude
    lines = {}
    for process in psutil.process_iter(["cmdline"]):
        if process.pid in skip or process.info["cmdline"] is None:
            continue
        lines[process.pid] = " ".join(process.info["cmdline"])
    return lines


def command_line(pid: int) -> str | None:
    """The command line of `pid` as `ps` shows it; None if it is gone."""
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except _GONE:
        return None


def net_namespace(pid: int) -> str | None:
    """The network namespace of `pid` (`net:[inode]`); None if it is gone. psutil has no
    namespace API: this is the one place that reads /proc directly."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def pids_in_namespace(namespace: str, exclude: Iterable[int] = ()) -> list[int]:
    """Live processes in the network namespace `namespace` (as `net_namespace` names it)."""
    excluded = set(exclude)
    return [
        pid
        for pid in psutil.pids()
        if pid not in excluded and alive(pid) and net_namespace(pid) == namespace
    ]


def wait_gone(pids: list[int] | set[int], timeout: float) -> list[int]:
    """Wait up to `timeout` for every pid to exit; returns those still alive."""
    with contextlib.suppress(WaitTimeout):
        wait_until(lambda: not any(alive(p) for p in pids), timeout, 0.2, "processes to exit")
    return [pid for pid in pids if alive(pid)]


def wait_group_gone(pgid: int, timeout: float) -> list[int]:
    """Wait up to `timeout` for the group to be empty; returns its members still alive."""
    with contextlib.suppress(WaitTimeout):
        wait_until(lambda: not group_alive(pgid), timeout, 0.2, f"process group {pgid} to exit")
    return group_members(pgid)


def stop_process_group(
    pgid: int,
    timeout: float = 15.0,
    *,
    popen: subprocess.Popen | None = None,
    sigterm_rounds: int = 1,
) -> list[int]:
    """SIGTERM the process group `pgid` and wait up to `timeout` for every member to exit
    (`sigterm_rounds` times); then SIGKILL what is left. Returns the pids that needed SIGKILL.

    `popen`, the group's leader started from here, is reaped (no zombie left behind). More than
    one SIGTERM round is for servers that restart a child on the first signal (`dagster dev`
    may restart its code server before it shuts down itself; the new one never got it).
    """
    for _ in range(sigterm_rounds):
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            break
        if popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=timeout)
        if not wait_group_gone(pgid, timeout):
            break
    killed = group_members(pgid)
    if killed:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=10)
    if killed:
        wait_group_gone(pgid, 10)
    return killed
