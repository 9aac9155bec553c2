"""transaction_simulator_sensor against Dagster's test instance."""

from __future__ import annotations

import time

import dagster as dg
import pytest
from dagster import DagsterRunStatus
from dagster._core.test_utils import create_run_for_test

from fin_assets.simulator.job import HEARTBEAT_TAG, JOB_NAME, OP_NAME
from fin_assets.simulator.sensor import (
    DEFAULT_STALE_AFTER_S,
    next_run_request,
    transaction_simulator_sensor,
)


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def evaluate(instance: dg.DagsterInstance):
    return transaction_simulator_sensor(dg.build_sensor_context(instance=instance))


def add_run(instance: dg.DagsterInstance, status: DagsterRunStatus, **tags: str) -> dg.DagsterRun:
    return create_run_for_test(instance, job_name=JOB_NAME, status=status, tags=tags)


def test_default_status_is_stopped():
    assert transaction_simulator_sensor.default_status == dg.DefaultSensorStatus.STOPPED


def test_starts_a_bounded_run_when_none_exists(instance):
    request = evaluate(instance)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == "first-run"
    assert request.run_config["ops"][OP_NAME]["config"]["max_duration_s"] > 0


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
    older = add_run(instance, DagsterRunStatus.SUCCESS)
    ended = add_run(instance, status)
    request = evaluate(instance)
    assert isinstance(request, dg.RunRequest)
    # Keyed on the run it replaces: a new key each time (run_key dedupes forever).
    assert request.run_key == f"after-{ended.run_id}" != f"after-{older.run_id}"


def test_stale_started_run_is_failed_then_replaced(instance):
    stale = add_run(instance, DagsterRunStatus.STARTED, **{HEARTBEAT_TAG: f"{time.time():.0f}"})
    # Fresh heartbeat: alive.
    assert isinstance(next_run_request(instance, now=time.time()), dg.SkipReason)
    # Its process died: no heartbeat for longer than the limit.
    later = time.time() + DEFAULT_STALE_AFTER_S + 60
    request = next_run_request(instance, now=later)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == f"after-{stale.run_id}"
    assert instance.get_run_by_id(stale.run_id).status == DagsterRunStatus.FAILURE
    # The replacement is alive: no third run.
    add_run(instance, DagsterRunStatus.STARTING)
    assert isinstance(next_run_request(instance, now=time.time()), dg.SkipReason)


def test_not_started_run_is_never_declared_stale(instance):
    # Waiting in a queue is not a dead process: only heartbeating statuses can go stale.
    add_run(instance, DagsterRunStatus.NOT_STARTED)
    far_future = time.time() + 100 * DEFAULT_STALE_AFTER_S
    assert isinstance(next_run_request(instance, now=far_future), dg.SkipReason)
