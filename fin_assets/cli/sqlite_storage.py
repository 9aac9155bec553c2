"""SQLite run and schedule storage that waits for a busy database like Dagster's event log does.

Dagster 1.13 opens its SQLite event log with a 30 s busy timeout (`SQLITE_BUSY_TIMEOUT_SECONDS`:
"concurrent writers can spend longer than that queued behind the WAL writer lock"), but its run
and schedule storages with pysqlite's 5 s default. Under `fin-assets dev` the webserver, the
daemon's sensors and every simulator run (heartbeat tags, fence checks) share `runs.db`; on a
loaded 2-core machine a reader waited more than 5 s and the sensor tick failed with
`sqlite3.OperationalError: database is locked`. These subclasses change only the timeout; the
files are where Dagster's defaults put them (`history/runs.db`, `schedules/schedules.db` under
`$DAGSTER_HOME`, written as `base_dir` by fin_assets/cli/instance.py), so an instance written
before keeps its runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool


class _PatientConnections:
    """Every connection with the event log's busy timeout; the storage class comes next in the
    bases (its `from_config_value` would build the parent class, not ours)."""

    _conn_string: str

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls.from_local(inst_data=inst_data, **config_value)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        engine = create_engine(
            self._conn_string,
            poolclass=NullPool,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )
        with engine.connect() as conn, conn.begin():
            yield conn


class PatientSqliteRunStorage(_PatientConnections, SqliteRunStorage):
    """`SqliteRunStorage` (runs, their tags) with the event log's busy timeout."""


class PatientSqliteScheduleStorage(_PatientConnections, SqliteScheduleStorage):
    """`SqliteScheduleStorage` (sensor and schedule ticks) with the event log's busy timeout."""
