"""The API key never reaches a file, the event log or metadata; the CSV is replaced atomically.

Each "never" counts what it read (files, events) and names the artefacts that must be among
them: a scan of nothing would pass too."""

import os
import threading

import dagster as dg

from fin_assets.lib.batch.prices import write_atomically
from fin_assets_tests.fixtures.batch import SECRET_KEY
from fin_assets_tests.helpers.secrets import scan_files, scan_texts


def test_key_appears_nowhere_after_failures_that_echo_it(batch, stand_in, tmp_path):
    batch.symbols = "TSLA,IBM,MSFT,NOPE"
    stand_in.queue("IBM", "daily_quota")  # the provider's text echoes the key
    stand_in.queue("MSFT", "http_503", times=10)
    stand_in.queue("NOPE", "unknown_symbol")
    result = batch.run()
    assert not result.success  # three symbols quarantined...
    assert batch.csv_path.exists()  # ...TSLA written

    # every file the pipeline or Dagster wrote under the test's folders
    scan_files(tmp_path, SECRET_KEY).assert_clean(
        expect=[str(batch.csv_path), "extraccion_finanzas.log", str(batch.history_path("TSLA"))]
    )
    # every event of the run, as stored (messages, metadata, errors)
    records = batch.instance.all_logs(result.run_id)
    events = {f"event {i}": dg.serialize_value(r) for i, r in enumerate(records)}
    scan = scan_texts(events, SECRET_KEY, "stored events").assert_clean()
    assert len(scan.inspected) == len(records) > 0

    log = (batch.data_dir / "extraccion_finanzas.log").read_text()
    assert "cause=daily_quota" in log and "API key as ***" in log
    assert "cause=http_5xx" in log and "symbol=NOPE attempt=1 outcome=failed" in log


def test_key_appears_nowhere_after_transport_failures(batch, tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/query"
    result = batch.run(base_url=closed, max_retries=1)
    assert not result.success
    scan_files(tmp_path, SECRET_KEY).assert_clean(expect=["extraccion_finanzas.log"])
    records = batch.instance.all_logs(result.run_id)
    events = {f"event {i}": dg.serialize_value(r) for i, r in enumerate(records)}
    assert scan_texts(events, SECRET_KEY, "stored events").assert_clean().inspected
    assert "connection refused" in (batch.data_dir / "extraccion_finanzas.log").read_text()


def test_atomic_replacement_never_shows_a_partial_file(tmp_path):
    path = tmp_path / "Datos_financieros.csv"
    versions = ["header\n" + "a,1\n" * 20_000, "header\n" + "b,2\n" * 30_000]
    write_atomically(path, versions[0])
    seen_partial = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            text = path.read_text()
            if text not in versions:
                seen_partial.append(len(text))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(60):
            write_atomically(path, versions[(i + 1) % 2])
    finally:
        stop.set()
        thread.join()
    assert seen_partial == []
    assert path.read_text() == versions[0]
    assert [p.name for p in tmp_path.iterdir()] == ["Datos_financieros.csv"]  # no temp left


def test_atomic_write_replaces_the_inode_and_skips_identical_content(tmp_path):
    path = tmp_path / "f.csv"
    assert write_atomically(path, "x\n")
    inode = path.stat().st_ino
    assert not write_atomically(path, "x\n")
    assert path.stat().st_ino == inode
    assert write_atomically(path, "y\n")
    assert path.stat().st_ino != inode
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert os.listdir(tmp_path) == ["f.csv"]
