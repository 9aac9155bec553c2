"""The Elasticsearch observation sensor against answers not shaped like Elasticsearch's, from a
real local server: each is a named skip (as the sensor promises), bounded and free of the
password, never an exception (issue 16, defect 2)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import dagster as dg
import pytest

from fin_assets.defs.resources.elasticsearch import ElasticsearchResource
from fin_assets.defs.search.sensors import elasticsearch_observation_sensor
from fin_assets_tests.helpers.http_servers import HostileHandler, HostileServer, head, leaked
from fin_assets_tests.helpers.xdist import waits_on_a_clock

PASSWORD = "Pw7Hq2Xz9Lk4Mn6B"
MAX_SKIP_CHARS = 1000  # kept in tick history and shown in the UI


@dataclass(frozen=True)
class Hostile:
    """The raw answer (status, body, extra headers) to `_count` and to `_search`."""

    count: tuple[str, bytes, str]
    search: tuple[str, bytes, str] = (
        "200 OK",
        b'{"aggregations": {"latest": {"value": null}}}',
        "",
    )
    expect: str = "Not an Elasticsearch answer"

    def __call__(self, handler: HostileHandler) -> None:
        status, body, extra = self.search if "_search" in handler.path else self.count
        handler.raw(head(status, "application/json", len(body), extra) + body)


OK_COUNT = ("200 OK", b'{"count": 3}', "")
HUGE_REASON = json.dumps({"error": {"type": "x", "reason": "A" * 5_000_000}}).encode()
ECHO = (
    f'{{"error": {{"type": "security_exception", "reason": "unable to authenticate user '
    f"[dagster_reader] with password [{PASSWORD}] for REST request "
    f'[/_count?password%3D{PASSWORD}]"}}, "status": 500}}'
).encode()

CASES = {
    "count_is_text": Hostile(("200 OK", b'{"count": "many"}', "")),
    "count_is_1e400": Hostile(("200 OK", b'{"count": 1e400}', "")),
    "count_is_true": Hostile(("200 OK", b'{"count": true}', "")),
    "count_is_negative": Hostile(("200 OK", b'{"count": -1}', "")),
    "list_for_the_count_object": Hostile(("200 OK", b'[{"count": 3}]', "")),
    "max_is_1e400": Hostile(
        OK_COUNT, ("200 OK", b'{"aggregations": {"latest": {"value": 1e400}}}', "")
    ),
    "list_for_the_max_object": Hostile(
        OK_COUNT, ("200 OK", b'{"aggregations": {"latest": [1]}}', "")
    ),
    "date_is_a_number": Hostile(
        OK_COUNT,
        ("200 OK", b'{"aggregations": {"latest": {"value": 1, "value_as_string": 7}}}', ""),
    ),
    "json_cut_short": Hostile(("200 OK", b'{"count": ', "")),
    "json_nested_100k_deep": Hostile(("200 OK", b"[" * 100_000 + b"]" * 100_000, "")),
    "non_utf8_location": Hostile(("302 Found", b"", "Location: http://\xff\xfe.example/\r\n")),
    "redirect_elsewhere": Hostile(("302 Found", b"", "Location: http://other.example/\r\n")),
    "five_mb_error_reason": Hostile(
        ("500 Internal Server Error", HUGE_REASON, ""), expect="Elasticsearch error"
    ),
    "password_in_error_body": Hostile(
        ("500 Internal Server Error", ECHO, ""), expect="Elasticsearch error"
    ),
    "password_in_403_body": Hostile(
        ("403 Forbidden", ECHO, ""), expect="Elasticsearch missing privilege"
    ),
    "error_is_a_list": Hostile(
        ("500 Internal Server Error", b'{"error": [1, 2], "status": 500}', ""),
        expect="Elasticsearch error",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_malformed_answer_is_a_named_bounded_clean_skip(case: Hostile):
    with HostileServer(case) as server, dg.DagsterInstance.ephemeral() as instance:
        resource = ElasticsearchResource(
            url=server.origin, username="dagster_reader", password=PASSWORD, deadline_seconds=10
        )
        context = dg.build_sensor_context(instance=instance, resources={"elasticsearch": resource})
        result = elasticsearch_observation_sensor(context)  # must not raise
    assert isinstance(result, dg.SkipReason), result
    message = result.skip_message or ""
    print(message)
    assert message.startswith(case.expect), message
    assert len(message) <= MAX_SKIP_CHARS, len(message)
    assert leaked(message, [PASSWORD]) == [], message


def _buckets(bucket: str) -> bytes:
    return f'{{"aggregations": {{"symbols": {{"buckets": {bucket}}}}}}}'.encode()


GOOD_BUCKET = (
    '{"key": "TSLA", "doc_count": 3, "last_date": {"value_as_string": "2026-10-05"}, '
    '"last_row": {"hits": {"hits": [{"_source": {"cierre": 222.3}}]}}}'
)


def _bucket_with(old: str, new: str) -> bytes:
    return _buckets("[" + GOOD_BUCKET.replace(old, new, 1) + "]")


SUMMARY_CASES = {
    "buckets_is_an_object": _buckets("{}"),
    "doc_count_is_text": _bucket_with('"doc_count": 3', '"doc_count": "many"'),
    "close_is_1e400": _bucket_with("222.3", "1e400"),
    "hits_is_an_object": _bucket_with('"hits": [{"_source": {"cierre": 222.3}}]', '"hits": {}'),
    "key_is_a_list": _bucket_with('"TSLA"', "[1]"),
}


@pytest.mark.parametrize("body", SUMMARY_CASES.values(), ids=SUMMARY_CASES.keys())
def test_the_check_fails_naming_a_malformed_aggregation(body: bytes, tmp_path):
    from fin_assets.defs.resources.settings import PipelineSettings
    from fin_assets.defs.search.checks import finanzas_batch_matches_csv
    from fin_assets_tests.helpers.search_data import price_frame, write_csv

    write_csv(tmp_path, price_frame())
    with HostileServer(Hostile(OK_COUNT, ("200 OK", body, ""))) as server:
        result = finanzas_batch_matches_csv(  # must not raise
            settings=PipelineSettings(data_dir=str(tmp_path), symbols="TSLA,IBM"),
            elasticsearch=ElasticsearchResource(url=server.origin),
        )
    assert not result.passed
    assert "did not answer like Elasticsearch" in result.description, result.description


@waits_on_a_clock
def test_a_tick_ends_within_its_budget_when_every_answer_is_slow(monkeypatch):
    """Each answer comes 1.5 s late, inside the 3 s request deadline: four of them would take
    6 s, but the tick's budget (2.5 s here, 40 s in production) ends it."""
    from fin_assets.defs.search import sensors

    def late(handler: HostileHandler) -> None:
        time.sleep(1.5)
        if "_search" in handler.path:
            body = b'{"aggregations": {"latest": {"value": null}}}'
        else:
            body = b'{"count": 3}'
        handler.raw(head("200 OK", "application/json", len(body)) + body)

    monkeypatch.setattr(sensors, "TICK_BUDGET_S", 2.5)
    with HostileServer(late) as server, dg.DagsterInstance.ephemeral() as instance:
        resource = ElasticsearchResource(url=server.origin, deadline_seconds=3)
        context = dg.build_sensor_context(instance=instance, resources={"elasticsearch": resource})
        started = time.monotonic()
        result = elasticsearch_observation_sensor(context)
        elapsed = time.monotonic() - started
    assert isinstance(result, dg.SkipReason), result
    assert "within" in result.skip_message or "are spent" in result.skip_message
    assert elapsed < 2.5 + 1.0, elapsed
