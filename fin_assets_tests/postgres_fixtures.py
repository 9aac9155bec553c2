"""A real PostgreSQL (Debian's 15) for the tests, run by scripts/postgres.sh: on the host on a
free port (`postgres_server`), or inside a private namespace on the port a config names."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pytest

REPO = Path(__file__).resolve().parents[1]
POSTGRES_SCRIPT = REPO / "scripts" / "postgres.sh"

# Runs a command (argv, env) and returns its CompletedProcess: the host, or a namespace's `run`.
Runner = Callable[[list[str], dict[str, str]], subprocess.CompletedProcess]


def run_on_host(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180, check=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def state_folder(prefix: str) -> Path:
    """A temp folder the server's user (nobody, when we are root) can reach: mkdtemp is 0700."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


@dataclass
class PostgresServer:
    state_dir: Path
    port: int
    user: str
    database: str
    password: str = field(repr=False)
    runner: Runner = run_on_host
    host: str = "127.0.0.1"

    def _script(self, action: str) -> subprocess.CompletedProcess:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PG_PORT": str(self.port),
            "PG_DIR": str(self.state_dir / "pg"),
            "PG_USER": self.user,
            "PG_DB": self.database,
            "PG_PASSWORD": self.password,  # by environment: never argv
            "PG_HOST": self.host,
        }
        result = self.runner([str(POSTGRES_SCRIPT), action], env)
        if action != "status" and result.returncode != 0:
            raise RuntimeError(f"postgres.sh {action} failed: {result.stderr[-3000:]}")
        return result

    def start(self) -> PostgresServer:
        self._script("start")
        return self

    def stop(self) -> None:
        self._script("stop")

    def is_running(self) -> bool:
        return self._script("status").returncode == 0

    def connect(self):
        return psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password,
            dbname=self.database, connect_timeout=10,
        )  # fmt: skip

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        connection.close()
        return rows


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL on a free host port, stopped at the end of the session."""
    server = PostgresServer(
        state_folder("fin-postgres-test-"), free_port(), "dagster", "dagster",
        secrets.token_urlsafe(16),
    )  # fmt: skip
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.state_dir, ignore_errors=True)
