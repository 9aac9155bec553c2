"""The local instance's SQLite run and schedule storage waits out a busy database (another
process writing for longer than pysqlite's 5 s default) instead of failing the caller: a
sensor tick, a GraphQL query, a simulator heartbeat."""

import sqlite3
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.scheduler.instigation import TickData, TickStatus
from dagster._core.storage.runs import SqliteRunStorage

from fin_assets.cli.instance import ensure_instance_config
from fin_assets.cli.sqlite_storage import PatientSqliteRunStorage, PatientSqliteScheduleStorage
from fin_assets_tests.helpers.xdist import waits_on_a_clock

pytestmark = waits_on_a_clock  # three locks held 7 s each

HOLD_S = 7.0  # longer than pysqlite's 5 s default, well inside the 30 s the storage waits


@pytest.fixture
def instance(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    ensure_instance_config(home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        yield instance


def hold_write_lock(database: Path, seconds: float) -> threading.Thread:
    """Another writer: takes the database's write lock, keeps it `seconds`, then commits."""
    taken = threading.Event()

    def writer():
        conn = sqlite3.connect(database, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            taken.set()
            time.sleep(seconds)
            conn.execute("COMMIT")
        finally:
            conn.close()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    assert taken.wait(10), f"could not lock {database}"
    return thread


def test_the_files_stay_where_dagster_puts_them(instance: dg.DagsterInstance, tmp_path):
    home = tmp_path / "dagster_home"
    assert isinstance(instance.run_storage, PatientSqliteRunStorage)
    assert isinstance(instance.schedule_storage, PatientSqliteScheduleStorage)
    assert (home / "history" / "runs.db").is_file()
    assert (home / "schedules" / "schedules.db").is_file()


def test_a_dagster_yaml_an_earlier_version_wrote_still_loads(tmp_path, monkeypatch):
    """Earlier versions named the storage classes' module fin_assets.sqlite_storage; the file is
    the user's, so only that path is updated and every other line is kept."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    written = (ensure_instance_config(tmp_path / "fresh")).read_text()
    old = written.replace("fin_assets.cli.sqlite_storage", "fin_assets.sqlite_storage")
    old += "# my own note\n"
    assert old.count("module: fin_assets.sqlite_storage") == 2  # run and schedule storage
    (home / "dagster.yaml").write_text(old)

    ensure_instance_config(home)

    kept = (home / "dagster.yaml").read_text()
    assert kept == old.replace("fin_assets.sqlite_storage", "fin_assets.cli.sqlite_storage")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PatientSqliteRunStorage)
        assert isinstance(instance.schedule_storage, PatientSqliteScheduleStorage)


def test_a_run_tag_write_waits_for_a_writer_holding_the_lock_7_s(instance: dg.DagsterInstance):
    run = instance.create_run_for_job(dg.GraphDefinition("g").to_job(), run_id=None)
    database = Path(instance.root_directory) / "history" / "runs.db"
    writer = hold_write_lock(database, HOLD_S)
    started = time.monotonic()
    instance.add_run_tags(run.run_id, {"fin_assets/heartbeat": "1"})
    waited = time.monotonic() - started
    writer.join()
    assert instance.get_run_by_id(run.run_id).tags["fin_assets/heartbeat"] == "1"
    assert waited > HOLD_S - 1.5, f"the write did not wait for the lock ({waited:.1f} s)"


def test_dagsters_own_run_storage_gives_up_after_5_s(tmp_path):
    """The failure the subclass removes, shown on the class it replaces."""
    storage = SqliteRunStorage.from_local(str(tmp_path / "history"))
    writer = hold_write_lock(tmp_path / "history" / "runs.db", HOLD_S)
    try:
        with pytest.raises(Exception, match="database is locked"):
            storage.set_cursor_values({"fin_assets_test": "1"})
    finally:
        writer.join()


def test_sensor_ticks_wait_too(instance: dg.DagsterInstance):
    database = Path(instance.root_directory) / "schedules" / "schedules.db"
    writer = hold_write_lock(database, HOLD_S)
    tick = instance.schedule_storage.create_tick(
        TickData(
            instigator_origin_id="fin_assets_test",
            instigator_name="fin_assets_test",
            instigator_type=InstigatorType.SENSOR,
            status=TickStatus.STARTED,
            timestamp=time.time(),
            selector_id="fin_assets_test",
        )
    )
    writer.join()
    assert [
        t.tick_id for t in instance.schedule_storage.get_ticks("fin_assets_test", "fin_assets_test")
    ] == [tick.tick_id]
