"""The outbound-HTTP policy as a class: every HTTP caller of the product (the Alpha Vantage
client, the Elasticsearch observation sensor and reconciliation check, the alert webhook)
against each real hostile server on 127.0.0.1 — a server dribbling one byte a second, a
300 MB answer, a login page echoing the secret, a redirect to another origin.

Issue 16, defects 1 (a secret cut before it was redacted) and 2 (Elasticsearch and the webhook
without deadline or size limit)."""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from fin_assets.defs.batch.alerts import failure_payload, post_alert
from fin_assets.defs.resources.elasticsearch import ElasticsearchResource
from fin_assets.defs.resources.settings import PipelineSettings
from fin_assets.defs.search.checks import finanzas_batch_matches_csv
from fin_assets.defs.search.sensors import elasticsearch_observation_sensor
from fin_assets.lib.alpha_vantage.client import AlphaVantageClient
from fin_assets.lib.alpha_vantage.errors import AlphaVantageError
from fin_assets.lib.outbound_http import excerpt, redact, secret_forms, url_secrets
from fin_assets.lib.rate_limit import RequestPacer
from fin_assets_tests.helpers.http_servers import (
    HostileServer,
    dribble,
    gzip_bomb,
    huge,
    leaked,
    login_page,
    redirect_to,
    run_bounded,
)
from fin_assets_tests.helpers.xdist import waits_on_a_clock

API_KEY = "Q7ZK9XW2PLM4TRV8"  # 16 characters, as in the report
ES_PASSWORD = "Pw7Hq2Xz9Lk4Mn6B"
WEBHOOK_TOKEN = "T0kZ8Yq3Wv5Rs1Up"
DEADLINE_S = 1.5
# The code before the policy never returned from a dribbling server: give up on it then.
NEVER_RETURNED_S = DEADLINE_S + 30


@dataclass(frozen=True)
class Caller:
    """One product HTTP caller: `call(origin, tmp_path)` returns every text it shows (error,
    skip message, check description and metadata, alert outcome); it must not raise."""

    name: str
    secrets: list[str]
    call: Callable[[str, Path], str]


def call_alpha_vantage(origin: str, tmp_path: Path) -> str:
    client = AlphaVantageClient(
        api_key=API_KEY,
        base_url=f"{origin}/query",
        min_interval_seconds=0.0,
        max_retries=0,
        timeout_seconds=10.0,  # socket timeouts alone: a byte a second passes them
        deadline_seconds=DEADLINE_S,
        pacer=RequestPacer(),
    )
    attempts: list[object] = []
    try:
        client.fetch_daily("TSLA", on_attempt=attempts.append)
    except AlphaVantageError as error:
        return f"{error} | {error.args!r} | {attempts!r}"
    return f"accepted | {attempts!r}"


def _es_resource(origin: str) -> ElasticsearchResource:
    return ElasticsearchResource(
        url=origin,
        username="dagster_reader",
        password=ES_PASSWORD,
        timeout_seconds=10.0,
        deadline_seconds=DEADLINE_S,
    )


def call_es_sensor(origin: str, tmp_path: Path) -> str:
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"elasticsearch": _es_resource(origin)}
        )
        result = elasticsearch_observation_sensor(context)
    assert isinstance(result, dg.SkipReason), result  # a named skip, as the sensor promises
    return result.skip_message or ""


def call_es_check(origin: str, tmp_path: Path) -> str:
    from fin_assets_tests.helpers.search_data import price_frame, write_csv

    write_csv(tmp_path, price_frame())
    result = finanzas_batch_matches_csv(
        settings=PipelineSettings(data_dir=str(tmp_path), symbols="TSLA,IBM"),
        elasticsearch=_es_resource(origin),
    )
    assert not result.passed
    return f"{result.description} | {dg.serialize_value(result.metadata)}"


def call_webhook(origin: str, tmp_path: Path) -> str:
    url = f"{origin}/services/T000/{WEBHOOK_TOKEN}"
    payload = failure_payload("run-1", "daily_batch_job", "IBM: fetch failed", ["daily_batch"])
    return post_alert(url, payload, timeout_s=DEADLINE_S)


CALLERS = [
    Caller("alpha_vantage", [API_KEY], call_alpha_vantage),
    Caller("elasticsearch_sensor", [ES_PASSWORD], call_es_sensor),
    Caller("elasticsearch_check", [ES_PASSWORD], call_es_check),
    Caller("alert_webhook", [WEBHOOK_TOKEN], call_webhook),
]
CALLER_IDS = [c.name for c in CALLERS]


@waits_on_a_clock
@pytest.mark.parametrize("in_headers", [False, True], ids=["body", "headers"])
@pytest.mark.parametrize("caller", CALLERS, ids=CALLER_IDS)
def test_a_server_dribbling_a_byte_a_second_is_cut_at_the_deadline(caller, in_headers, tmp_path):
    with HostileServer(dribble(1.0, in_headers)) as server:
        text, elapsed = run_bounded(lambda: caller.call(server.origin, tmp_path), NEVER_RETURNED_S)
    print(f"{caller.name}: returned after {elapsed:.2f} s (deadline {DEADLINE_S:g} s): {text}")
    assert f"within {DEADLINE_S:g} s" in str(text), text  # the deadline is named
    # The deadline plus the caller's own work (a Dagster test instance), never the server's pace.
    assert elapsed < DEADLINE_S + 4.0, elapsed
    assert not leaked(str(text), caller.secrets)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("caller", CALLERS, ids=CALLER_IDS)
def test_a_300_mb_answer_is_stopped_at_the_body_cap(caller, tmp_path):
    total = 300 * 1024 * 1024
    before = _peak_rss_mib()
    with HostileServer(huge(total)) as server:
        text, elapsed = run_bounded(lambda: caller.call(server.origin, tmp_path), 120)
        sent = server.bytes_sent
    grown = _peak_rss_mib() - before
    print(
        f"{caller.name}: {sent / 2**20:.1f} MiB taken of 300 MiB in {elapsed:.2f} s, "
        f"peak RSS +{grown:.1f} MiB: {text}"
    )
    assert "bytes (decompressed)" in str(text), text  # the cap is named
    assert sent < 64 * 1024 * 1024, sent  # the transfer stopped near the 16 MiB cap
    assert grown < 100, grown


@pytest.mark.parametrize("caller", CALLERS, ids=CALLER_IDS)
def test_a_gzip_bomb_is_stopped_at_the_decompressed_cap(caller, tmp_path):
    before = _peak_rss_mib()
    with HostileServer(gzip_bomb(256 * 1024 * 1024)) as server:
        text, elapsed = run_bounded(lambda: caller.call(server.origin, tmp_path), 120)
    grown = _peak_rss_mib() - before
    print(f"{caller.name}: 256 MiB gzip bomb, {elapsed:.2f} s, peak RSS +{grown:.1f} MiB: {text}")
    assert "bytes (decompressed)" in str(text), text
    assert grown < 100, grown


@pytest.mark.parametrize("status", ["200 OK", "500 Internal Server Error"])
@pytest.mark.parametrize("caller", CALLERS, ids=CALLER_IDS)
def test_a_login_page_echoing_the_secret_leaves_no_fragment_of_it(caller, status, tmp_path):
    with HostileServer(login_page(caller.secrets, status)) as server:
        text, _ = run_bounded(lambda: caller.call(server.origin, tmp_path), NEVER_RETURNED_S)
    assert server.arrivals, "the caller never asked"
    assert leaked(str(text), caller.secrets) == [], text


@pytest.mark.parametrize("status", ["302 Found", "307 Temporary Redirect"])
@pytest.mark.parametrize("caller", CALLERS, ids=CALLER_IDS)
def test_a_redirect_to_another_origin_is_not_followed(caller, status, tmp_path):
    with (
        HostileServer(login_page(caller.secrets)) as elsewhere,
        HostileServer(redirect_to(elsewhere.origin, status)) as server,
    ):
        text, _ = run_bounded(lambda: caller.call(server.origin, tmp_path), NEVER_RETURNED_S)
    assert server.arrivals
    assert elsewhere.arrivals == [], elsewhere.arrivals  # neither credentials nor payload
    assert "not followed" in str(text) or "redirect" in str(text).lower(), text
    assert elsewhere.origin.split("//")[1] in str(text)  # the refused origin is named


def test_the_key_echoed_by_a_login_page_reaches_no_file_event_or_metadata(batch, tmp_path):
    """Defect 1 end to end: the run's log file, Dagster's event log and metadata."""
    batch.api_key = API_KEY
    with HostileServer(login_page([API_KEY])) as server:
        result = batch.run(base_url=f"{server.origin}/query", max_retries=0)
    assert not result.success
    log = (batch.data_dir / "extraccion_finanzas.log").read_text()
    assert "cause=not_json" in log
    texts = {"extraccion_finanzas.log (read first)": log}
    files = [p for p in sorted(tmp_path.rglob("*")) if p.is_file() and not p.is_symlink()]
    texts |= {str(p): p.read_text(errors="replace") for p in files}
    records = batch.instance.all_logs(result.run_id)
    texts |= {f"event {i}": dg.serialize_value(r) for i, r in enumerate(records)}
    # What was read: the run's log file among the files, and every stored event of the run.
    assert records and any(name.endswith("extraccion_finanzas.log") for name in texts)
    assert len(texts) == 1 + len(files) + len(records)
    assert {name: leaked(t, [API_KEY]) for name, t in texts.items() if leaked(t, [API_KEY])} == {}


# --- the pure parts of the policy -----------------------------------------------------------


def test_excerpt_redacts_before_it_cuts_wherever_the_cut_falls():
    for offset in range(0, 100):
        text = "." * offset + f"%3Fapikey%3D{API_KEY}" + "." * 50
        for limit in (20, 40, 80):
            assert leaked(excerpt(text, API_KEY, limit), [API_KEY]) == [], (offset, limit)


def test_excerpt_of_a_huge_text_is_bounded_and_clean_even_past_its_window():
    # 5 MB of whitespace folds to nothing: the secret past the window must not slide in.
    text = " " * 5_000_000 + API_KEY + "x" * 5_000_000
    shown = excerpt(text, [API_KEY], 300)
    assert len(shown) <= 300 and leaked(shown, [API_KEY]) == []


def test_every_secret_form_is_redacted():
    secret = 'K"EY\\9é Ω/+&'
    for form in secret_forms(secret):
        assert secret not in redact(f"a {form} b", [secret]) and form not in redact(form, secret)


def test_url_secrets_cover_webhook_tokens():
    url = f"https://hooks.example/services/T000/{WEBHOOK_TOKEN}?token=abcdefgh12"
    parts = url_secrets(url)
    shown = redact(f"POST {url} failed; token {WEBHOOK_TOKEN}, abcdefgh12", parts)
    assert WEBHOOK_TOKEN not in shown and "abcdefgh12" not in shown
    # the origin alone is no secret: errors may name it
    assert (
        redact("from https://hooks.example/services", parts)
        == "from https://hooks.example/services"
    )
