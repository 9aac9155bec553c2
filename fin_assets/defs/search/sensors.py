"""Reports the state of the Logstash-written indices as asset observations."""

from __future__ import annotations

import json

import dagster as dg

from fin_assets.defs.resources.elasticsearch import ElasticsearchResource
from fin_assets.lib.outbound_http import shorten
from fin_assets.lib.search.elasticsearch import (
    ElasticsearchAuthError,
    ElasticsearchError,
    ElasticsearchUnavailable,
    IndexMissing,
    NotElasticsearch,
)
from fin_assets.lib.search.observation import OBSERVED_INDICES, parse_cursor, read_state

MAX_SKIP_CHARS = 1000
# All of a tick's requests together: Dagster gives a sensor evaluation 60 s by default, and a
# server answering each request just inside its own deadline must not use them up.
TICK_BUDGET_S = 40.0


@dg.sensor(
    name="elasticsearch_observation_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Every minute, counts the documents and the latest date of finanzas_batch and "
        "transacciones_nrt and records an AssetObservation when they changed. Skips, naming "
        "the cause, while Elasticsearch is unreachable, rejects the credentials, answers like "
        "something else, or Logstash has not created an index."
    ),
)
def elasticsearch_observation_sensor(
    context: dg.SensorEvaluationContext, elasticsearch: ElasticsearchResource
) -> dg.SensorResult | dg.SkipReason:
    client = elasticsearch.get_client(budget_seconds=TICK_BUDGET_S)
    seen = parse_cursor(context.cursor)
    events: list[dg.AssetObservation] = []
    missing: list[str] = []
    try:
        for index, date_field in OBSERVED_INDICES.items():
            try:
                state = read_state(client, index, date_field)
            except IndexMissing:
                missing.append(index)
                continue
            # Only changes are recorded: an unchanged index would add an event every minute.
            if seen.get(index) != state.fingerprint():
                seen[index] = state.fingerprint()
                events.append(dg.AssetObservation(asset_key=index, metadata=state.metadata()))
    except ElasticsearchError as exc:
        # Every failure is a named skip: a raising sensor only shows a stack trace in the UI.
        return dg.SkipReason(skip_message(exc))
    finally:
        client.close()

    missing_text = (
        f"index {', '.join(missing)} does not exist yet at {elasticsearch.display_url} "
        "(Logstash has not written to it)"
        if missing
        else ""
    )
    if not events:
        return dg.SkipReason(missing_text or "No change in the observed indices")
    if missing_text:
        context.log.warning(missing_text)
    return dg.SensorResult(asset_events=events, cursor=json.dumps(seen, sort_keys=True))


def skip_message(exc: ElasticsearchError) -> str:
    """The cause first, then the client's text (which names URL and user, never a password,
    already redacted and bounded by the outbound-HTTP policy); bounded again here because tick
    history keeps every skip message."""
    return shorten(_skip_text(exc), MAX_SKIP_CHARS)


def _skip_text(exc: ElasticsearchError) -> str:
    if isinstance(exc, ElasticsearchUnavailable):
        return str(exc)
    if isinstance(exc, ElasticsearchAuthError):
        cause = "credentials rejected" if exc.status == 401 else "missing privilege"
        return f"Elasticsearch {cause} (HTTP {exc.status}): {exc}"
    if isinstance(exc, NotElasticsearch):
        return f"Not an Elasticsearch answer: {exc}"
    return f"Elasticsearch error: {exc}"
