"""Daily-pipeline idioms: holiday skips, the failure alert to a real local webhook, freshness,
schema and lineage at definition time, and data that lives in files rather than the instance."""

import datetime as dt
import json

import dagster as dg
import pytest
from dagster._core.events import DagsterEventType

from fin_assets.defs.batch.alerts import WEBHOOK_ENV, build_failure_sensor, is_batch_run
from fin_assets.defs.batch.definitions import build_defs
from fin_assets.defs.batch.schedules import schedule_decision
from fin_assets.defs.resources.alpha_vantage import AlphaVantageResource
from fin_assets.defs.resources.settings import PipelineSettings
from fin_assets.lib.config import CSV_COLUMNS
from fin_assets_tests.helpers.http_servers import LoopbackHTTPServer, QuietHandler

THANKSGIVING = dt.date(2026, 11, 26)


def evaluate_schedule(symbols: list[str], day: dt.date):
    resources = {"alpha_vantage": AlphaVantageResource(), "settings": PipelineSettings()}
    schedule = build_defs(symbols, resources).resolve_schedule_def("daily_batch_schedule")
    when = dt.datetime.combine(day, dt.time(23, 30), tzinfo=dt.UTC)  # 18:30 New York
    with dg.build_schedule_context(scheduled_execution_time=when) as context:
        return schedule.evaluate_tick(context)


def test_the_schedule_skips_days_when_no_configured_exchange_trades():
    skipped = evaluate_schedule(["TSLA", "IBM"], THANKSGIVING)
    assert skipped.run_requests == []
    assert "2026-11-26: no configured exchange trades today" in skipped.skip_message

    next_day = THANKSGIVING + dt.timedelta(days=1)
    (request,) = evaluate_schedule(["TSLA", "IBM"], next_day).run_requests
    assert request.partition_key_range == dg.PartitionKeyRange("TSLA", "IBM")  # one run, all

    # Mumbai trades on US Thanksgiving: that day the run goes ahead.
    assert isinstance(schedule_decision(["TSLA", "RELIANCE.BSE"], THANKSGIVING), dg.RunRequest)


class Webhook(LoopbackHTTPServer):
    path = "/hooks/T0KEN"

    def __init__(self) -> None:
        super().__init__(_WebhookHandler)
        self.received: list[dict] = []


class _WebhookHandler(QuietHandler):
    server: Webhook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(
            {"path": self.path, "type": self.headers["Content-Type"], "json": json.loads(body)}
        )
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def webhook():
    with Webhook() as server:
        yield server


def test_a_failed_batch_run_is_posted_to_the_webhook(batch, stand_in, webhook, monkeypatch):
    stand_in.queue("IBM", "daily_quota")
    result = batch.run()
    assert not result.success
    run = batch.instance.get_run_by_id(result.run_id)
    (failure,) = batch.instance.all_logs(result.run_id, of_type=DagsterEventType.RUN_FAILURE)
    monkeypatch.setenv(WEBHOOK_ENV, webhook.url)
    sensor = build_failure_sensor()
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=failure.dagster_event,
        dagster_instance=batch.instance,
        dagster_run=run,
    ).for_run_failure()
    sensor(context)

    (posted,) = webhook.received
    assert posted["path"] == "/hooks/T0KEN" and posted["type"] == "application/json"
    assert posted["json"]["event"] == "batch_run_failed"
    assert posted["json"]["run_id"] == result.run_id
    assert "IBM: fetch failed" in posted["json"]["message"]
    assert posted["json"]["failed_steps"] == ["daily_batch"]


def test_the_csv_declares_freshness_schema_and_column_lineage(batch):
    specs = {s.key.to_user_string(): s for s in batch.defs().resolve_all_asset_specs()}
    csv = specs["datos_financieros_csv"]
    assert csv.freshness_policy.deadline_cron == "0 20 * * 1-5"
    assert csv.freshness_policy.timezone == "America/New_York"
    schema = csv.metadata["dagster/column_schema"]
    assert [c.name for c in schema.columns] == list(CSV_COLUMNS)
    assert specs["daily_prices"].partitions_def.get_partition_keys() == ["TSLA", "IBM"]
    assert csv.partitions_def is None

    result = batch.run()
    (event,) = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey("datos_financieros_csv")
    ]
    lineage = event.metadata["dagster/column_lineage"].value
    assert lineage.deps_by_column["cierre"] == [
        dg.TableColumnDep(asset_key=dg.AssetKey("daily_prices"), column_name="cierre")
    ]


def test_each_asset_re_executes_alone_on_a_fresh_instance(batch, tmp_path):
    assert batch.run().success
    csv_before = batch.csv_path.read_bytes()
    batch.csv_path.unlink()
    (tmp_path / "rebuilt_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "rebuilt_home")) as fresh:
        batch.instance = fresh  # nothing of the first run is known here
        rebuilt = batch.run(assets=["datos_financieros_csv"])
        assert rebuilt.success
        assert batch.csv_path.read_bytes() == csv_before  # from history/<SYMBOL>.csv

        remerged = batch.run(only=["IBM"], assets=["daily_prices"])  # from raw/IBM/*.json
        assert remerged.success
        (event,) = remerged.get_asset_materialization_events()
        assert event.materialization.partition == "IBM"
        assert event.materialization.metadata["added_days"].value == 0
        assert not any(e.event_type == DagsterEventType.STEP_FAILURE for e in remerged.all_events)


def test_only_batch_runs_are_alerted():
    assert is_batch_run(dg.DagsterRun(job_name="daily_batch_job"))
    from_ui = dg.DagsterRun(job_name="__ASSET_JOB", asset_selection={dg.AssetKey("daily_prices")})
    assert is_batch_run(from_ui)
    assert not is_batch_run(dg.DagsterRun(job_name="transaction_simulator_job"))
