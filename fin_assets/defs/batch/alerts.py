"""Failed batch runs reported to the log and, when `FIN_ALERT_WEBHOOK_URL` is set, POSTed as
JSON to that webhook. The URL can hold a token (Slack, Teams...): it is never logged."""

import json

import dagster as dg
import requests

from fin_assets.defs.batch.schedules import JOB_NAME
from fin_assets.defs.batch.specs import CSV, PRICES, RAW
from fin_assets.lib.outbound_http import (
    READ_CHUNK,
    REDIRECT_STATUSES,
    HttpPolicy,
    PolicyViolation,
    deadline,
    deadline_passed,
    read_capped,
    refuse_redirect,
    resolve_location,
    same_origin,
    send_once,
    url_secrets,
    watched_session,
)
from fin_assets.lib.settings import alert_webhook_url

WEBHOOK_ENV = "FIN_ALERT_WEBHOOK_URL"
TIMEOUT_S = 10.0  # the overall deadline of one alert
MAX_ANSWER_BYTES = 64 * 1024  # the answer is not used: its status is enough
BATCH_ASSETS = {key.to_user_string() for key in (RAW, PRICES, CSV)}


def failure_payload(run_id: str, job_name: str, message: str, failed_steps: list[str]) -> dict:
    return {
        "event": "batch_run_failed",
        "job": job_name,
        "run_id": run_id,
        "failed_steps": failed_steps,
        "message": message[:4000],
    }


def post_alert(
    url: str,
    payload: dict,
    timeout_s: float = TIMEOUT_S,
    session: requests.Session | None = None,
) -> str:
    """POST `payload` under the outbound-HTTP policy; returns what happened, in words that hold
    no part of the URL. Never raises: a failed alert must not hide the failure it reports.

    `timeout_s` is the overall deadline (connect, headers, the whole answer), so a receiver
    that dribbles its answer cannot hold the failure sensor; the answer itself is not needed
    and at most `MAX_ANSWER_BYTES` of it are read. Redirects are followed only within the
    webhook's own origin.
    """
    policy = HttpPolicy(
        deadline_seconds=timeout_s,
        timeout_seconds=timeout_s,
        max_body_bytes=MAX_ANSWER_BYTES,
        secrets=url_secrets(url),
    )
    session = watched_session(session)
    try:
        status = _post(session, policy, url, payload)
    except PolicyViolation as violation:
        return f"webhook failed ({violation.cause}): {policy.excerpt(violation.detail, 200)}"
    except Exception as error:  # noqa: BLE001 - requests' texts hold the URL: only the class
        return f"webhook unreachable ({type(error).__name__})"
    return f"webhook answered HTTP {status}"


def _post(session: requests.Session, policy: HttpPolicy, url: str, payload: dict) -> int:
    """The final status; PolicyViolation for the deadline, a refused redirect or a too large
    answer; requests' exceptions for the rest."""
    with deadline(policy.deadline_seconds) as watch:
        try:
            return _exchange(session, policy, url, json.dumps(payload).encode(), watch)
        except requests.RequestException:
            if watch.expired:  # the watchdog shut the socket: that is the cause
                raise deadline_passed("the webhook", policy.deadline_seconds) from None
            raise


def _exchange(
    session: requests.Session, policy: HttpPolicy, url: str, body: bytes | None, watch
) -> int:
    method, target = "POST", url
    for _hop in range(policy.max_redirects + 1):
        request = requests.Request(
            method, target, data=body, headers={"Content-Type": "application/json"}
        )
        response = send_once(session, session.prepare_request(request), policy.timeout_seconds)
        try:
            status = response.status_code
            if status not in REDIRECT_STATUSES:
                chunks = response.iter_content(chunk_size=READ_CHUNK)
                cap, seconds = policy.max_body_bytes, policy.deadline_seconds
                read_capped(chunks, cap, "the webhook", watch, seconds)
                return status
            target = _follow(url, target, response)
        finally:
            response.close()
        if status in (301, 302, 303):
            method, body = "GET", None  # what every HTTP client does for these
    raise PolicyViolation("redirect_refused", f"more than {policy.max_redirects} redirects")


def _follow(configured: str, current: str, response: requests.Response) -> str:
    """The same-origin URL a redirect points to, or PolicyViolation."""
    target = resolve_location(current, response.headers.get("Location"), response.status_code)
    if not same_origin(configured, target):
        raise refuse_redirect(response.status_code, current, target)
    return target


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
