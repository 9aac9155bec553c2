"""transaction_simulator_sensor against Dagster's test instance: one run per shard, stale runs
retired, no rotation, backoff after failures."""

from __future__ import annotations

import time

import dagster as dg
import pytest
from dagster import DagsterRunStatus
from dagster._core.test_utils import create_run_for_test

from fin_assets.defs.simulator.config import SupervisionSettings
from fin_assets.defs.simulator.job import HEARTBEAT_TAG, JOB_NAME, OP_NAME
from fin_assets.defs.simulator.sensor import (
    DEFAULT_STALE_AFTER_S,
    next_run_requests,
    transaction_simulator_sensor,
)
from fin_assets.defs.simulator.specs import SHARD_COUNT_TAG, SHARD_TAG


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as test_instance:
        yield test_instance


def evaluate(instance: dg.DagsterInstance):
    from fin_assets.defs.resources.settings import PipelineSettings

    context = dg.build_sensor_context(
        instance=instance, resources={"settings": PipelineSettings(symbols="TSLA")}
    )
    return transaction_simulator_sensor(context)


def add_run(instance: dg.DagsterInstance, status: DagsterRunStatus, **tags: str) -> dg.DagsterRun:
    return create_run_for_test(instance, job_name=JOB_NAME, status=status, tags=tags)


def only(requests) -> dg.RunRequest:
    assert isinstance(requests, list) and len(requests) == 1, requests
    return requests[0]


def test_default_status_is_stopped():
    assert transaction_simulator_sensor.default_status == dg.DefaultSensorStatus.STOPPED


def test_starts_one_run_that_does_not_rotate(instance):
    request = only(evaluate(instance))
    assert request.run_key == "shard-0-first"
    assert request.tags[SHARD_TAG] == "0" and request.tags[SHARD_COUNT_TAG] == "1"
    # No max_duration_s: the run lives until terminated, so the stream has no hourly gap.
    assert "max_duration_s" not in request.run_config["ops"][OP_NAME]["config"]


@pytest.mark.parametrize(
    "status",
    [
        # (QUEUED runs need a real code-location origin; NOT_STARTED stands for the same case.)
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
        DagsterRunStatus.CANCELING,
    ],
)
def test_no_second_run_while_one_is_alive(instance, status):
    run = add_run(instance, status, **{HEARTBEAT_TAG: f"{time.time():.0f}"})
    result = evaluate(instance)
    assert isinstance(result, dg.SkipReason)
    assert run.run_id in result.skip_message


@pytest.mark.parametrize(
    "status", [DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED, DagsterRunStatus.SUCCESS]
)
def test_replaces_a_run_that_ended(instance, status):
    older = add_run(instance, status=DagsterRunStatus.SUCCESS, **{SHARD_TAG: "0"})
    ended = add_run(instance, status, **{SHARD_TAG: "0"})
    request = only(evaluate(instance))
    # Keyed on the run it replaces: a new key each time (run_key dedupes forever).
    assert request.run_key == f"shard-0-after-{ended.run_id}" != f"shard-0-after-{older.run_id}"


def test_stale_started_run_is_failed_then_replaced(instance):
    stale = add_run(
        instance, DagsterRunStatus.STARTED, **{HEARTBEAT_TAG: f"{time.time():.0f}", SHARD_TAG: "0"}
    )
    # Fresh heartbeat: alive.
    assert isinstance(next_run_requests(instance, now=time.time()), dg.SkipReason)
    # Its process died: no heartbeat for longer than the limit.
    later = time.time() + DEFAULT_STALE_AFTER_S + 60
    request = only(next_run_requests(instance, now=later))
    assert request.run_key == f"shard-0-after-{stale.run_id}"
    assert instance.get_run_by_id(stale.run_id).status == DagsterRunStatus.FAILURE
    # The replacement is alive: no third run.
    add_run(instance, DagsterRunStatus.STARTING, **{SHARD_TAG: "0"})
    assert isinstance(next_run_requests(instance, now=time.time()), dg.SkipReason)


def test_a_starting_run_gets_its_start_grace(instance):
    settings = SupervisionSettings(stale_after_s=10, start_grace_s=60)
    add_run(instance, DagsterRunStatus.STARTING, **{SHARD_TAG: "0"})
    assert isinstance(next_run_requests(instance, time.time() + 30, settings), dg.SkipReason)
    assert isinstance(next_run_requests(instance, time.time() + 90, settings), list)


def test_not_started_run_is_never_declared_stale(instance):
    # Waiting in a queue is not a dead process: only heartbeating statuses can go stale.
    add_run(instance, DagsterRunStatus.NOT_STARTED)
    far_future = time.time() + 100 * DEFAULT_STALE_AFTER_S
    assert isinstance(next_run_requests(instance, now=far_future), dg.SkipReason)


def test_one_run_per_shard(instance):
    settings = SupervisionSettings(shards=2, rate_per_s=4)
    symbols = ["TSLA", "IBM", "AAPL"]
    requests = next_run_requests(instance, time.time(), settings, symbols)
    assert [r.tags[SHARD_TAG] for r in requests] == ["0", "1"]
    assert {r.run_config["ops"][OP_NAME]["config"]["rate_per_s"] for r in requests} == {2.0}
    # Shard 0 alive: only shard 1 is requested.
    beat = {HEARTBEAT_TAG: f"{time.time():.0f}", SHARD_TAG: "0", SHARD_COUNT_TAG: "2"}
    add_run(instance, DagsterRunStatus.STARTED, **beat)
    assert [r.tags[SHARD_TAG] for r in next_run_requests(instance, time.time(), settings)] == ["1"]


def test_a_run_of_another_shard_layout_is_retired(instance):
    old = add_run(instance, DagsterRunStatus.STARTED, **{SHARD_TAG: "0", SHARD_COUNT_TAG: "3"})
    requests = next_run_requests(instance, time.time(), SupervisionSettings(shards=1))
    assert only(requests).tags[SHARD_TAG] == "0"
    assert instance.get_run_by_id(old.run_id).status == DagsterRunStatus.FAILURE


def test_more_shards_than_symbols_fails_the_tick_with_a_named_cause(instance, monkeypatch):
    monkeypatch.setenv("FIN_SIMULATOR_SHARDS", "2")
    with pytest.raises(ValueError, match="FIN_SIMULATOR_SHARDS"):
        evaluate(instance)  # FIN_SYMBOLS is TSLA only


def test_repeated_failures_back_off_and_say_until_when(instance):
    settings = SupervisionSettings(backoff_base_s=15, backoff_cap_s=600)
    for _ in range(4):
        add_run(instance, DagsterRunStatus.FAILURE, **{SHARD_TAG: "0"})
    now = time.time()
    result = next_run_requests(instance, now, settings)
    # 4 failures in a row: 15 * 2**2 = 60 s after the last one ended.
    assert isinstance(result, dg.SkipReason)
    assert "backing off after 4 failed runs in a row" in result.skip_message
    assert "next launch at" in result.skip_message and "delay 60 s" in result.skip_message
    assert isinstance(next_run_requests(instance, now + 120, settings), list)
