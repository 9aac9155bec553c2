"""Failed batch runs reported to the log and, when `FIN_ALERT_WEBHOOK_URL` is set, POSTed as
JSON to that webhook. The URL can hold a token (Slack, Teams...): it is never logged."""


import dagster as dg
import requests

from fin_assets.batch.schedules import JOB_NAME
from fin_assets.batch.specs import CSV, PRICES, RAW
from fin_assets.settings import alert_webhook_url

WEBHOOK_ENV = "FIN_ALERT_WEBHOOK_URL"
TIMEOUT_S = 10.0
BATCH_ASSETS = {key.to_user_string() for key in (RAW, PRICES, CSV)}


def failure_payload(run_id: str, job_name: str, message: str, failed_steps: list[str]) -> dict:
    return {
        "event": "batch_run_failed",
        "job": job_name,
        "run_id": run_id,
        "failed_steps": failed_steps,
        "message": message[:4000],
    }


def post_alert(url: str, payload: dict, timeout_s: float = TIMEOUT_S) -> str:
    """POST `payload`; returns what happened, in words that hold no part of the URL."""
    try:
        response = requests.post(url, json=payload, timeout=timeout_s)
    except requests.RequestException as error:
        return f"webhook unreachable ({type(error).__name__})"
    return f"webhook answered HTTP {response.status_code}"


def failure_text(context: dg.RunFailureSensorContext) -> tuple[str, list[str]]:
    steps, texts = [], []
    for event in context.get_step_failure_events():
        steps.append(event.step_key or "?")
        data = event.step_failure_data
        if data.user_failure_data and data.user_failure_data.description:
            texts.append(data.user_failure_data.description)
        elif data.error:
            texts.append(data.error.message.strip())
    message = "\n\n".join(texts) or context.failure_event.message or "run failed"
    return message, steps


def is_batch_run(run: dg.DagsterRun) -> bool:
    """The batch job's runs, and runs launched from the UI (`__ASSET_JOB`, backfills) that
    materialise a batch asset."""
    selected = {key.to_user_string() for key in run.asset_selection or ()}
    return run.job_name == JOB_NAME or bool(selected & BATCH_ASSETS)


def build_failure_sensor() -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name="batch_run_failure_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Reports each failed batch run ({JOB_NAME}, or a UI materialisation of the "
        f"batch assets) to the log and, when {WEBHOOK_ENV} is set, POSTs it as JSON there.",
    )
    def batch_run_failure_sensor(context: dg.RunFailureSensorContext) -> None:
        if is_batch_run(context.dagster_run):
            report_failure(context)

    return batch_run_failure_sensor


def report_failure(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    message, steps = failure_text(context)
    context.log.error(f"{run.job_name} run {run.run_id} failed: {message}")
    url = alert_webhook_url()  # validated; a bad value fails this tick naming the variable
    if url:
        outcome = post_alert(url, failure_payload(run.run_id, run.job_name, message, steps))
        context.log.info(f"alert for run {run.run_id}: {outcome} ({WEBHOOK_ENV})")
