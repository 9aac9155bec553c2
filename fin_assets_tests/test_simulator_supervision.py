"""Simulator supervision without `dagster dev`: shard assignment, backoff, the fence's verdict
and its stall detection (pure), the env settings, and the op fencing itself inside a real run
against a real Kafka broker."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import dagster as dg
import pytest
from dagster import DagsterRunStatus
from dagster._core.test_utils import create_run_for_test

from fin_assets.defs.resources.kafka import kafka_from_env
from fin_assets.defs.resources.settings import settings_from_env
from fin_assets.defs.simulator.config import (
    SupervisionConfigError,
    SupervisionSettings,
    supervision_settings,
)
from fin_assets.defs.simulator.fencing import FencedStop, RunState, fence_verdict
from fin_assets.defs.simulator.specs import FENCED_TAG, JOB_NAME, OP_NAME, SHARD_TAG
from fin_assets.lib.simulator.backoff import (
    EndedRun,
    backoff,
    backoff_delay_s,
    consecutive_failures,
)
from fin_assets.lib.simulator.shards import ShardError, assign_shards, parse_shard_tags
from fin_assets_tests.fixtures.kafka import read_topic
from fin_assets_tests.helpers.polling import wait_until

# --- shards -------------------------------------------------------------------------------


def test_shards_are_disjoint_cover_every_symbol_and_ignore_order():
    symbols = ["TSLA", "IBM", "AAPL", "MSFT", "NVDA"]
    shards = assign_shards(symbols, 2)
    assert sorted(sum(shards, [])) == sorted(symbols)
    assert not set(shards[0]) & set(shards[1])
    assert abs(len(shards[0]) - len(shards[1])) <= 1
    assert assign_shards(reversed(symbols), 2) == shards
    assert assign_shards(symbols + ["tsla"], 2) == shards  # duplicates, case
    assert assign_shards(symbols, 1) == [sorted(symbols)]


def test_more_shards_than_symbols_is_an_error_naming_both():
    with pytest.raises(ShardError, match=r"3 shards for 2 symbol\(s\) \(IBM,TSLA\)"):
        assign_shards(["TSLA", "IBM"], 3)


def test_shard_tags_are_validated():
    assert parse_shard_tags(None, None, 1) == (0, 1)
    assert parse_shard_tags("1", "2", 1) == (1, 2)
    with pytest.raises(ShardError, match="fin_assets/shard=2 is outside 0..1"):
        parse_shard_tags("2", "2", 1)
    with pytest.raises(ShardError, match="fin_assets/shard='x'"):
        parse_shard_tags("x", None, 1)


# --- backoff ------------------------------------------------------------------------------


def _failed(n: int, start: float = 100.0, lived: float = 2.0) -> EndedRun:
    return EndedRun(f"f{n}", True, start, start + lived)


def test_backoff_doubles_from_the_second_failure_up_to_the_cap():
    assert [backoff_delay_s(n, 15, 600) for n in range(8)] == [0, 0, 15, 30, 60, 120, 240, 480]
    assert backoff_delay_s(9, 15, 600) == 600
    assert backoff_delay_s(10_000, 15, 600) == 600


def test_failures_are_counted_back_to_the_last_success_or_healthy_run():
    ok = EndedRun("ok", False, 0.0, 50.0)
    assert consecutive_failures([_failed(3), _failed(2), ok, _failed(1)], 60) == 2
    # A run that lived an hour before failing was healthy: the streak stops there.
    assert consecutive_failures([_failed(2), _failed(1, lived=3600), _failed(0)], 60) == 2
    assert consecutive_failures([], 60) == 0


def test_backoff_waits_from_the_newest_failure_end():
    runs = [_failed(3, start=200), _failed(2), _failed(1)]
    wait = backoff(runs, base_s=15, cap_s=600, healthy_run_s=60)
    assert (wait.failures, wait.delay_s, wait.last_failed_run_id) == (3, 30, "f3")
    assert wait.retry_at == 202 + 30
    assert backoff([_failed(1)], 15, 600, 60).retry_at == 0  # first failure: at once


# --- settings -----------------------------------------------------------------------------


def test_settings_default_and_parse():
    assert supervision_settings({}) == SupervisionSettings()
    parsed = supervision_settings({"FIN_SIMULATOR_SHARDS": "3", "FIN_SIMULATOR_RATE": "6"})
    assert (parsed.shards, parsed.rate_per_shard) == (3, 2.0)
    assert parsed.run_lifetime_s == 0  # no rotation by default


@pytest.mark.parametrize(
    "variable, value, message",
    [
        # The one error style of fin_assets/lib/settings.py: variable, value, what it accepts.
        ("FIN_SIMULATOR_SHARDS", "two", "FIN_SIMULATOR_SHARDS='two' is refused .*whole number"),
        ("FIN_SIMULATOR_SHARDS", "0", "FIN_SIMULATOR_SHARDS='0' is refused: .* from 1 to"),
        ("FIN_SIMULATOR_BACKOFF_CAP_S", "-1", "FIN_SIMULATOR_BACKOFF_CAP_S='-1' is refused: .*0,"),
        ("FIN_SIMULATOR_RATE", "fast", "FIN_SIMULATOR_RATE='fast' is refused .*finite number"),
    ],
)
def test_bad_settings_name_the_variable(variable, value, message):
    with pytest.raises(SupervisionConfigError, match=message):
        supervision_settings({variable: value})


# --- fence: verdict and stall detection ---------------------------------------------------

STARTED, FAILURE = DagsterRunStatus.STARTED, DagsterRunStatus.FAILURE


def test_fence_verdict():
    me = RunState("me", STARTED, 10)
    assert fence_verdict(me, [me]) is None
    assert fence_verdict(me, [me, RunState("older", STARTED, 5)]) is None
    assert "FAILURE" in fence_verdict(RunState("me", FAILURE, 10), [])
    assert "CANCELED" in fence_verdict(RunState("me", DagsterRunStatus.CANCELED, 10), [])
    # CANCELING is Dagster's own termination in progress: the op ends it itself.
    assert fence_verdict(RunState("me", DagsterRunStatus.CANCELING, 10), []) is None
    assert "newer" in fence_verdict(me, [RunState("new", DagsterRunStatus.STARTING, 11), me])
    assert "no longer exists" in fence_verdict(None, [])


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_fenced_stop_checks_before_the_next_event_after_a_stall():
    mono, wall = FakeClock(), FakeClock()
    verdicts: list[str | None] = [None]
    stop = FencedStop(lambda: verdicts[-1], max_unverified_s=3, monotonic=mono, wall=wall)
    assert not stop.is_set() and stop.checks == 0  # fresh: no storage query per event
    verdicts.append("its run is now FAILURE")
    mono.now += 2.9
    assert not stop.is_set() and stop.checks == 0
    mono.now += 60  # SIGSTOP: the monotonic clock jumped
    assert stop.is_set() and stop.checks == 1
    assert stop.reason == "its run is now FAILURE"


def test_fenced_stop_sees_a_wall_clock_jump_too():
    mono, wall = FakeClock(), FakeClock()
    stop = FencedStop(lambda: "replaced", max_unverified_s=3, monotonic=mono, wall=wall)
    wall.now += 3600  # a suspended machine: the monotonic clock stood still
    assert stop.is_set() and stop.reason == "replaced"


def test_fenced_stop_stops_when_it_cannot_check():
    mono = FakeClock()

    def broken() -> str | None:
        raise OSError("database is locked")

    stop = FencedStop(broken, max_unverified_s=3, monotonic=mono, wall=mono, retry_pause_s=0)
    mono.now += 10
    assert stop.is_set()
    assert "could not confirm" in stop.reason and "database is locked" in stop.reason


# --- the op fences itself inside a real run -----------------------------------------------


@pytest.fixture
def sim_env(monkeypatch, tmp_path, kafka_bootstrap_servers, unique_topic):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap_servers)
    monkeypatch.setenv("FIN_KAFKA_TOPIC", unique_topic)
    monkeypatch.setenv("FIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FIN_SYMBOLS", "TSLA,IBM")
    monkeypatch.setenv("FIN_SIMULATOR_HEARTBEAT_S", "1")
    return kafka_bootstrap_servers, unique_topic


def _run_job_in_thread(instance: dg.DagsterInstance, rate: float = 5.0):
    from fin_assets.definitions import build_definitions

    job = build_definitions().resolve_job_def(JOB_NAME)
    resources = {"kafka": kafka_from_env(), "settings": settings_from_env()}
    result: list = []
    config = {"ops": {OP_NAME: {"config": {"rate_per_s": rate, "max_duration_s": 120}}}}
    thread = threading.Thread(
        target=lambda: result.append(
            job.execute_in_process(
                run_config=config,
                instance=instance,
                raise_on_error=False,
                tags={SHARD_TAG: "0"},
                resources=resources,
            )
        ),
        daemon=True,
    )
    thread.start()

    def producing_run():
        runs = instance.get_runs(dg.RunsFilter(job_name=JOB_NAME, statuses=[STARTED]))
        return runs[0] if runs and "fin_assets/worker_pid" in runs[0].tags else None

    run = wait_until(producing_run, 90, 0.2, message="the simulator run to start")
    return run, thread, result


def _events(bootstrap: str, topic: str) -> list[dict]:
    """The topic's events; none while the topic does not exist yet."""
    try:
        return [event for _, _, event in read_topic(bootstrap, topic)]
    except AssertionError:
        return []


def _ts(event) -> float:
    return datetime.strptime(event["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


@pytest.mark.kafka
@pytest.mark.parametrize("how", ["marked_failed", "newer_run_started"])
def test_the_op_stops_producing_once_it_is_not_the_live_run(sim_env, tmp_path, how):
    bootstrap, topic = sim_env
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        run, thread, result = _run_job_in_thread(instance)
        wait_until(
            lambda: any(e["run_id"] == run.run_id for e in _events(bootstrap, topic)),
            60,
            0.1,
            message="the run's first events",
        )
        if how == "marked_failed":  # what the sensor does to a stale run
            instance.report_run_failed(run, message="test: replaced")
        else:  # a run of the same shard started outside the queue
            create_run_for_test(instance, job_name=JOB_NAME, status=STARTED, tags={SHARD_TAG: "0"})
        fenced_at = time.time()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the op kept running"
        assert not result[0].success
        stored = instance.get_run_by_id(run.run_id)
        assert stored.status == FAILURE
        assert FENCED_TAG in stored.tags, stored.tags
        events = [e for e in _events(bootstrap, topic) if e["run_id"] == run.run_id]
        # The op checks the fence every second; an event being generated at that moment may
        # still go out: nothing later than that.
        assert max(map(_ts, events)) < fenced_at + 1.5
