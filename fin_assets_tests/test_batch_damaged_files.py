"""Damaged files under FIN_DATA_DIR against the real batch (real files, the real stand-in):
every file kind x every damage a data folder really gets.

- A symbol's file (its history, its raw folder, its stored raw response) quarantines that
  symbol only: the others update, the CSV is rewritten with the damaged symbol's old rows,
  and the failure names the symbol, the file and the problem.
- A run-level file (Datos_financieros.csv, extraccion_finanzas.log) is one named failure, never
  a traceback; a symlink is never followed out of the folder, a log never through any link.

"Unreadable": the tests run as root, for whom chmod 000 changes nothing, so the unreadable
file is a FIFO (a named pipe with no writer: a plain open() of it blocks for ever, which is
what the code before the file store did).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import threading
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from fin_assets.defs.batch.partitions import symbol_partitions

MATERIALIZED, FAILED = AssetPartitionStatus.MATERIALIZED, AssetPartitionStatus.FAILED
NEXT_WEEK = dt.date(2026, 10, 12)
OUTSIDE_TEXT = b"a file outside the data folder: must stay as it is\n"
RUN_TIMEOUT_S = 120


def release_fifos(root: Path) -> None:
    """Give a reader blocked on a FIFO under `root` its end of file (a writer that opens and
    closes), a blocked writer its broken pipe (a reader that does), so that a hung run ends
    and the test reports the hang instead of hanging."""
    for path in root.rglob("*"):
        if path.is_fifo():
            for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
                with contextlib.suppress(OSError):  # ENXIO: no reader waiting
                    os.close(os.open(path, flags))


def run_within(batch, **options) -> dg.ExecuteInProcessResult:
    """`batch.run(**options)`, failing (not hanging) if it blocks, e.g. on a FIFO."""
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(result=batch.run(**options)))
    thread.start()
    thread.join(RUN_TIMEOUT_S)
    hung = thread.is_alive()
    while thread.is_alive():
        release_fifos(batch.data_dir)
        thread.join(1)
    assert not hung, f"the run blocked for {RUN_TIMEOUT_S} s (a FIFO read or opened?)"
    return outcome["result"]


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """The step's failure as the UI shows it; a crash (no dg.Failure) is not a named failure."""
    failure = next(e for e in result.all_events if e.is_step_failure)
    user = failure.step_failure_data.user_failure_data
    error = failure.step_failure_data.error
    assert user is not None, f"a traceback, not a named failure:\n{error.to_string()}"
    return user.description


def rows_of(csv_path: Path, symbol: str) -> list[str]:
    return [line for line in csv_path.read_text().splitlines() if f",{symbol}," in line]


def last_day(csv_path: Path, symbol: str) -> str:
    frame = pd.read_csv(csv_path, dtype=str)
    return frame[frame["simbolo"] == symbol]["fecha"].max()


def partition_bar(batch, asset: str) -> dict:
    return batch.instance.get_status_by_partition(
        dg.AssetKey(asset), batch.symbol_list, symbol_partitions(batch.symbol_list)
    )


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def damage(path: Path, how: str, outside: Path) -> Path | None:
    """Damages `path` as `how`; returns the outside file a link points to, if any."""
    original = path.read_bytes() if path.is_file() else b""
    remove(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "directory":
        path.mkdir()
        (path / "left-by-someone").write_text("x")
    elif how == "file":  # where a folder belongs
        path.write_text("not a folder\n")
    elif how == "fifo":
        os.mkfifo(path)
    elif how in ("symlink_outside", "symlink_outside_folder"):
        outside.mkdir(parents=True, exist_ok=True)
        if how == "symlink_outside_folder":
            target = outside / "folder"
            target.mkdir()
        else:
            target = outside / path.name
            # A readable copy, so that following the link would even "work".
            target.write_bytes(original or OUTSIDE_TEXT)
        path.symlink_to(target)
        return target
    elif how == "symlink_inside":
        target = path.parent / f"elsewhere-{path.name}"
        target.write_bytes(OUTSIDE_TEXT)
        path.symlink_to(target)
        return target
    elif how == "truncated":
        path.write_bytes(original[: len(original) // 2])
    elif how == "corrupt":
        path.write_bytes(b'{"Meta Data": \xff\xfe garbage')
    else:
        raise AssertionError(how)
    return None


def snapshot(target: Path | None) -> dict[str, bytes] | None:
    """Everything under an outside target (file or folder), to prove nothing was written."""
    if target is None:
        return None
    if target.is_dir():
        return {str(p): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    return {str(target): target.read_bytes()}


# (file kind, damage, what the failure must say about the file)
SYMBOL_CASES = [
    ("history", "directory", "is a directory where a file belongs"),
    ("history", "symlink_outside", "leads through a symlink to"),
    ("history", "fifo", "is a FIFO (named pipe), not a regular file"),
    ("raw_folder", "file", "is a regular file where a folder belongs"),
    ("raw_folder", "symlink_outside_folder", "leads through a symlink to"),
    ("raw_folder", "fifo", "is a FIFO (named pipe) where a folder belongs"),
    ("stored_raw", "truncated", "truncated JSON"),
    ("stored_raw", "corrupt", "not UTF-8 text"),
    ("stored_raw", "directory", "is a directory where a file belongs"),
    ("stored_raw", "symlink_outside", "leads through a symlink to"),
    ("stored_raw", "fifo", "is a FIFO (named pipe), not a regular file"),
]


class TestASymbolsDamagedFileQuarantinesThatSymbolOnly:
    """TSLA's file damaged between two runs; IBM must update as if nothing happened."""

    @pytest.mark.parametrize(
        ("kind", "how", "problem"), SYMBOL_CASES, ids=[f"{k}-{h}" for k, h, _ in SYMBOL_CASES]
    )
    def test_only_that_symbol_is_quarantined(self, batch, stand_in, tmp_path, kind, how, problem):
        assert batch.run().success
        tsla_rows = rows_of(batch.csv_path, "TSLA")
        stand_in.state.as_of = NEXT_WEEK
        raw_dir = batch.data_dir / "raw" / "TSLA"
        if kind == "stored_raw":
            # `daily_prices` alone works from the newest stored response of each symbol.
            assert run_within(batch, assets=["alpha_vantage_daily_raw"]).success
            damaged = sorted(raw_dir.glob("*.json"))[-1]
            options = {"assets": ["daily_prices", "datos_financieros_csv"]}
        else:
            damaged = batch.history_path("TSLA") if kind == "history" else raw_dir
            options = {}
        tsla_history = batch.history_path("TSLA").read_bytes() if kind != "history" else None
        target = damage(damaged, how, tmp_path / "outside")
        outside_before = snapshot(target)

        result = run_within(batch, **options)

        assert not result.success
        text = failure_text(result)
        tsla_part = text.split("- TSLA: ", 1)[-1]
        assert "- TSLA: " in text and str(damaged) in tsla_part and problem in tsla_part, text
        assert "- IBM:" not in text, text
        # The others updated, the CSV rewritten, TSLA's rows in it as they were.
        assert last_day(batch.history_path("IBM"), "IBM") == NEXT_WEEK.isoformat()
        assert last_day(batch.csv_path, "IBM") == NEXT_WEEK.isoformat()
        assert rows_of(batch.csv_path, "TSLA") == tsla_rows
        if tsla_history is not None:
            assert batch.history_path("TSLA").read_bytes() == tsla_history
        bar = partition_bar(batch, "daily_prices")
        assert (bar["TSLA"], bar["IBM"]) == (FAILED, MATERIALIZED)
        # The damage is left for a person to see; nothing was written through a link.
        assert os.path.lexists(damaged)
        assert snapshot(target) == outside_before


RUN_FILE_CASES = [
    ("Datos_financieros.csv", "directory", "is a directory where a file belongs"),
    ("Datos_financieros.csv", "symlink_outside", "leads through a symlink to"),
    ("Datos_financieros.csv", "fifo", "is a FIFO (named pipe), not a regular file"),
    ("extraccion_finanzas.log", "directory", "is a directory where a file belongs"),
    ("extraccion_finanzas.log", "symlink_outside", "is a symlink: not followed"),
    ("extraccion_finanzas.log", "symlink_inside", "is a symlink: not followed"),
    ("extraccion_finanzas.log", "fifo", "is a FIFO (named pipe), not a regular file"),
]


class TestARunLevelFileProblemIsOneNamedFailure:
    @pytest.mark.parametrize(
        ("name", "how", "problem"),
        RUN_FILE_CASES,
        ids=[f"{n.split('.')[-1]}-{h}" for n, h, _ in RUN_FILE_CASES],
    )
    def test_the_run_fails_naming_the_file(self, batch, stand_in, tmp_path, name, how, problem):
        path = batch.data_dir / name
        target = damage(path, how, tmp_path / "outside")
        outside_before = snapshot(target)

        result = run_within(batch)

        assert not result.success
        text = failure_text(result)
        assert text.startswith("File problem: "), text
        assert f"{path}: {problem}" in text, text
        assert "Traceback" not in text
        assert os.path.lexists(path) and snapshot(target) == outside_before
        if name == "extraccion_finanzas.log":
            # Stopped before any request: no quota spent on a run that cannot be logged.
            assert stand_in.state.requests == []
            assert not (batch.data_dir / "raw").exists()
        else:
            # The CSV alone is the problem: every history is updated.
            for symbol in batch.symbol_list:
                assert last_day(batch.history_path(symbol), symbol) == "2026-10-05"


def test_a_data_folder_that_is_a_file_is_one_named_failure(batch, stand_in):
    batch.data_dir.write_text("FIN_DATA_DIR points at a file\n")
    result = run_within(batch)
    assert not result.success
    text = failure_text(result)
    assert text.startswith(f"File problem: {batch.data_dir}: cannot be the data folder"), text
    assert stand_in.state.requests == []
