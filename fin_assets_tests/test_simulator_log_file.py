"""logs_transacciones.log that cannot be written (a directory, a symlink, a FIFO where the log
belongs): the simulator reports it once and the Kafka feed goes on, as docs/simulator.md says;
a link never redirects the log (the target stays as it was).

The first tests use the real TransactionLog on real files; the last ones run the real
`fin-assets simulate` against a real broker and read the topic back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fin_assets.lib.simulator.events import EventGenerator
from fin_assets.lib.simulator.transactions_log import TransactionLog
from fin_assets_tests.helpers.blocking import within
from fin_assets_tests.helpers.paths import REPO
from fin_assets_tests.helpers.simulator_cli import cli_env, parse_summary, topic_event_ids

OUTSIDE = b"outside the data folder: must stay as it is\n"


def events(count: int) -> list[dict]:
    generator = EventGenerator(["TSLA"], {"TSLA": 100.0}, "run-1", seed=3)
    return [generator.next_event() for _ in range(count)]


def damage(log: Path, how: str, tmp_path: Path) -> Path | None:
    """Puts `how` where the log belongs; returns a link's target."""
    log.parent.mkdir(parents=True, exist_ok=True)
    if how == "directory":
        log.mkdir()
        return None
    if how == "fifo":
        os.mkfifo(log)
        return None
    target = tmp_path / "outside.log" if how == "symlink_outside" else log.parent / "other.log"
    target.write_bytes(OUTSIDE)
    log.symlink_to(target)
    return target


DAMAGES = {
    "directory": "is a directory where a file belongs",
    "fifo": "is a FIFO (named pipe), not a regular file",
    "symlink_outside": "is a symlink: not followed",
    "symlink_inside": "is a symlink: not followed",
}


@pytest.mark.parametrize("how", list(DAMAGES))
def test_a_log_that_cannot_be_opened_never_raises_and_names_the_problem(tmp_path, how):
    log_path = tmp_path / "data" / "logs_transacciones.log"
    target = damage(log_path, how, tmp_path)
    log = within(30, lambda: TransactionLog(log_path), log_path.parent)  # built even so
    try:
        assert log.write_many(events(3)) == 0
        assert log.write(events(1)[0]) is False
        assert f"{log_path}: {DAMAGES[how]}" in str(log.last_error)
    finally:
        log.close()
    if target is not None:
        assert target.read_bytes() == OUTSIDE


def simulate(data_dir: Path, bootstrap: str, topic: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "fin_assets.cli", "simulate", "--rate", "200"]
    command += ["--duration", "3"]
    return subprocess.run(
        command,
        env=cli_env(data_dir, bootstrap, topic),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.kafka
@pytest.mark.parametrize("how", ["directory", "symlink_outside", "fifo"])
def test_simulate_reports_the_log_once_and_the_feed_goes_on(
    tmp_path, kafka_bootstrap_servers, unique_topic, how
):
    data_dir = tmp_path / "data"
    log_path = data_dir / "logs_transacciones.log"
    target = damage(log_path, how, tmp_path)

    result = simulate(data_dir, kafka_bootstrap_servers, unique_topic)

    # Events not logged: the documented exit 3, not a crash.
    assert result.returncode == 3, (result.stdout, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.splitlines()
    reported = [line for line in lines if "Cannot write the transactions log" in line]
    assert len(reported) == 1, result.stderr[-3000:]
    assert f"{log_path}: {DAMAGES[how]}" in reported[0]
    summary = parse_summary(result.stdout)
    assert summary["generated"] > 0
    assert f"{summary['generated']} events not written" in result.stdout
    # The feed went on: Kafka holds every generated event.
    topic_ids = topic_event_ids(kafka_bootstrap_servers, unique_topic)
    assert summary["acknowledged"] == summary["generated"] == len(set(topic_ids))
    if target is not None:
        assert target.read_bytes() == OUTSIDE
    assert os.path.lexists(log_path)  # left as it was, for a person to see
