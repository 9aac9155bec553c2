"""Nothing blocks tomorrow: a batch killed with SIGKILL never leaves the `alpha_vantage` pool
slot taken, neither for the next `fin-assets batch` nor for runs the daemon would start."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import yaml
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.instance.ref import InstanceRef

from fin_assets.cli.instance import instance_config
from fin_assets.defs.batch.recovery import dead_run_sensor, release_dead_runs
from fin_assets.defs.batch.schedules import JOB_NAME
from fin_assets_tests.fixtures.batch import SECRET_KEY
from fin_assets_tests.helpers.polling import wait_until


def cli_environment(tmp_path: Path, stand_in) -> dict[str, str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("ALPHAVANTAGE_", "FIN_"))
    }
    environment.update(
        DAGSTER_HOME=str(tmp_path / "dagster_home"),
        ALPHAVANTAGE_API_KEY=SECRET_KEY,
        ALPHAVANTAGE_BASE_URL=stand_in.url,
        FIN_SYMBOLS="TSLA,IBM",
        FIN_DATA_DIR=str(tmp_path / "data"),
    )
    return environment


def test_a_batch_killed_mid_run_does_not_block_the_next_one(tmp_path, stand_in):
    environment = cli_environment(tmp_path, stand_in)
    stand_in.state.hang_seconds = 60  # the first fetch hangs: the run holds the pool slot
    stand_in.queue("TSLA", "hang")
    command = [sys.executable, "-m", "fin_assets.cli", "batch"]
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(
            command, env=environment, cwd=tmp_path, stdout=log, stderr=log, start_new_session=True
        )
    try:
        wait_until(lambda: stand_in.state.requests, 120, 0.2, message="the first run's fetch")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)

    second = subprocess.run(
        command, env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "its process is gone; marked failed, its pool slot freed" in second.stdout
    assert set(pd.read_csv(tmp_path / "data" / "Datos_financieros.csv")["simbolo"]) == {
        "TSLA",
        "IBM",
    }
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(environment["DAGSTER_HOME"])) as inst:
        statuses = [r.status for r in inst.get_runs()]
        assert sorted(s.value for s in statuses) == ["FAILURE", "SUCCESS"]
        assert inst.event_log_storage.get_concurrency_run_ids() == set()
    written = yaml.safe_load((tmp_path / "dagster_home" / "dagster.yaml").read_text())
    assert written == yaml.safe_load(instance_config(tmp_path / "dagster_home"))
    assert written["run_storage"]["config"]["base_dir"] == str(
        (tmp_path / "dagster_home" / "history").resolve()
    )
    assert written["run_monitoring"]["enabled"] is True


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_dead_run_sensor_frees_the_slot_of_a_run_whose_process_is_gone(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.event_log_storage.set_concurrency_slots("alpha_vantage", 1)

        def started_run(pid: int) -> dg.DagsterRun:
            run = instance.create_run_for_job(
                dg.GraphDefinition("g").to_job(JOB_NAME), status=dg.DagsterRunStatus.STARTED
            )
            instance.report_dagster_event(
                DagsterEvent(DagsterEventType.RUN_START.value, job_name=JOB_NAME, pid=pid),
                run.run_id,
            )
            return run

        alive = started_run(os.getpid())  # this process: alive, must be left alone
        dead = started_run(dead_pid())
        claim = instance.event_log_storage.claim_concurrency_slot("alpha_vantage", dead.run_id, "s")
        assert claim.is_claimed

        result = dead_run_sensor(dg.build_sensor_context(instance=instance))
        assert dead.run_id in result.skip_message

        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
        assert instance.event_log_storage.get_concurrency_run_ids() == set()
        assert release_dead_runs(instance, [JOB_NAME]) == []  # settled once
