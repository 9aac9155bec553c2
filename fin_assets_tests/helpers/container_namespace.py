"""Containers without a Docker engine: a private mount and network namespace (root only) in
which a compose service's processes run at their container paths.

- `/opt` is a fresh tmpfs inside the namespace, so the image's files and the compose volumes
  can be bind-mounted at their container paths (`/opt/dagster/...`) without touching the host.
- The namespace has its own loopback: fixed ports (5432, 3000, 9092) are free, and
  `/etc/hosts` maps every compose service name to 127.0.0.1, as if all containers shared one
  host. Nothing outside the namespace changes.
- The test talks to the services from a thread that joined the namespace's network
  (`NamespaceClient`): sockets opened there reach the namespace's loopback.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from fin_assets_tests.helpers import processes
from fin_assets_tests.helpers.polling import WaitTimeout, wait_until

T = TypeVar("T")

CLONE_NEWNET = 0x40000000

# Runs in the new namespaces: loopback up, a private /opt, the hosts file, then holds them open.
HOLDER_SCRIPT = """
set -euo pipefail
ip link set lo up
mount -t tmpfs -o mode=755,size=64m fin-stack-opt /opt
mount --bind "$1" /etc/hosts
echo ready
exec sleep infinity
"""


def hosts_file_text(names: Iterable[str]) -> str:
    return "127.0.0.1 localhost " + " ".join(sorted(set(names))) + "\n::1 localhost\n"


def stop_process_group(process: subprocess.Popen, timeout_s: float = 15.0) -> None:
    """SIGTERM the process's group, then SIGKILL it after `timeout_s` (some servers, such as
    `dagster code-server start`, ignore SIGTERM). The group, not only the process: nsenter
    may exit on SIGTERM while the server it forked ignores it. Zombies do not count as
    running: the namespace's init does not reap the orphans it adopts."""
    processes.stop_process_group(process.pid, timeout_s, popen=process)


class PrivateNamespace:
    """`unshare --mount --net` held open by a sleeping process; `command()` enters it."""

    def __init__(self, work_dir: Path, host_names: Iterable[str]) -> None:
        self.work_dir = work_dir
        self.host_names = list(host_names)
        self.holder: subprocess.Popen | None = None
        self.inode: str | None = None
        self.init_pid = 0
        self._services: list[subprocess.Popen] = []

    @property
    def pid(self) -> int:
        assert self.holder is not None, "namespace not started"
        return self.holder.pid

    def start(self) -> PrivateNamespace:
        if os.geteuid() != 0:
            raise RuntimeError("a private mount namespace needs root (unshare -m -n)")
        hosts = self.work_dir / "hosts"
        hosts.write_text(hosts_file_text(self.host_names))
        # A PID namespace too, whose init is the holder: when the holder dies, the kernel kills
        # every process in the namespace. --kill-child and the parent-death signal chain that
        # to this process, so even a SIGKILLed pytest leaves nothing running.
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child",
             "--propagation", "private", "--", "bash", "-c",
             HOLDER_SCRIPT, "fin-stack-namespace", str(hosts)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            start_new_session=True, text=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
        line = self.holder.stdout.readline()  # the holder prints "ready" or exits
        if line.strip() != "ready":
            self.holder.kill()
            raise RuntimeError(f"namespace holder failed: {self.holder.stderr.read()}")
        # The namespace's PID 1 (unshare's child), seen from here.
        self.init_pid = processes.children(self.holder.pid)[0]
        self.inode = processes.net_namespace(self.init_pid)
        return self

    def command(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--target={self.init_pid}", "--mount", "--net", "--pid", "--", *argv]

    def run(self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 120.0,
            check: bool = True, cwd: str | None = None) -> subprocess.CompletedProcess:  # fmt: skip
        # cwd is applied inside the namespace (a container path may only exist there).
        inner = ["env", "-C", cwd, *argv] if cwd else argv
        result = subprocess.run(
            self.command(inner), env=env, capture_output=True, text=True, timeout=timeout,
            check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{argv[0]} failed in the namespace (exit {result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def bind(self, source: Path, target: str, read_only: bool = False) -> None:
        """Bind-mount a host file or folder at a container path under /opt."""
        if not target.startswith("/opt/"):
            raise ValueError(f"{target}: only paths under /opt can be created in the namespace")
        make = (
            ["mkdir", "-p", target]
            if source.is_dir()
            else ["sh", "-c", 'mkdir -p "$(dirname "$1")" && touch "$1"', "_", target]
        )  # noqa: E501
        self.run(make)
        self.run(["mount", "--bind", str(source), target])
        if read_only:
            self.run(["mount", "-o", "remount,bind,ro", target])

    def popen(self, argv: list[str], env: dict[str, str], log_path: Path,
              cwd: str | None = None) -> subprocess.Popen:  # fmt: skip
        """A service in its own process group, output to `log_path`."""
        inner = ["env", "-C", cwd, *argv] if cwd else argv
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                self.command(inner), env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self._services.append(process)
        return process

    def stop_services(self, timeout_s: float = 15.0) -> None:
        """The services started with `popen`, in reverse start order (TERM, then KILL)."""
        while self._services:
            stop_process_group(self._services.pop(), timeout_s)

    def stop(self, timeout_s: float = 15.0) -> None:
        """The services, then whatever else still lives in the namespace (run workers that a
        server spawned in their own sessions), by PID, then the holder."""
        self.stop_services(timeout_s)
        inode = self.inode
        leftovers = processes.pids_in_namespace(inode, exclude=[self.init_pid]) if inode else []
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            with contextlib.suppress(WaitTimeout):
                wait_until(
                    lambda pids=leftovers: (
                        not any(processes.net_namespace(p) == inode for p in pids)
                    ),
                    timeout_s,
                    0.2,
                    message="the namespace's leftover processes to exit",
                )
            leftovers = [p for p in leftovers if processes.net_namespace(p) == inode]
            if not leftovers:
                break
        if self.holder is not None and self.holder.poll() is None:
            stop_process_group(self.holder, timeout_s)


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the parent (this test process) dies."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _join_network_namespace(pid: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into the network namespace of {pid}: {os.strerror(errno)}")
    finally:
        os.close(fd)


class NamespaceClient:
    """One worker thread inside the namespace's network: `call(f, ...)` runs `f` there, so the
    sockets it opens reach the namespace's 127.0.0.1 (setns applies to the calling thread only)."""

    def __init__(self, namespace: PrivateNamespace) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="fin-stack-client",
            initializer=_join_network_namespace,
            initargs=(namespace.init_pid,),
        )

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._executor.submit(function, *args, **kwargs).result()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
