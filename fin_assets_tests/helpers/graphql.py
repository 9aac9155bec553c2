"""The Dagster GraphQL API as the UI tests ask it, for a webserver on 127.0.0.1.

Submitting, polling the status of and terminating runs go through Dagster's own client,
`dagster_graphql.DagsterGraphQLClient`; the questions it has no call for (asset nodes, runs by
filter, run logs, materialization metadata, sensors, schedules, backfills, the workspace and
daemon health) are raw queries, kept here so that every test asks them the same way.
`GraphQLMixin` gives these calls to anything with a `port`, a `requests` `session` and a
`log_path`: the session's `dagster dev` (helpers/dagster_ui.py) and the supervision tests'
`fin-assets dev`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
import yaml
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from fin_assets_tests.helpers.paths import REPO
from fin_assets_tests.helpers.polling import wait_until

# The code location's name, as workspace.yaml (and `dg dev`, and the docker code server) names it.
_WORKSPACE = yaml.safe_load((REPO / "workspace.yaml").read_text())
LOCATION_NAME = _WORKSPACE["load_from"][0]["python_module"]["location_name"]


class GraphQLError(AssertionError):
    pass


# What a wait on the webserver treats as "not yet": the server busy or restarting, an answer
# without the object yet.
TRANSIENT = (requests.RequestException, GraphQLError)

LOCATION_QUERY = """
query Locations {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name } }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

DAEMON_QUERY = """
query Daemons {
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
}
"""


REPOSITORY = "__repository__"
LIVE_RUN_STATUSES = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]
FINISHED_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}

ASSET_NODES_QUERY = """
query AssetNodes {
  assetNodes {
    assetKey { path }
    dependencyKeys { path }
    groupName
    kinds
    description
    isExecutable
    metadataEntries { label }
  }
}
"""

RUNS_QUERY = """
query Runs($filter: RunsFilter, $limit: Int) {
  runsOrError(filter: $filter, limit: $limit) {
    __typename
    ... on Runs { results { runId jobName status tags { key value } } }
    ... on PythonError { message }
  }
}
"""

RUN_LOGS_QUERY = """
query RunLogs($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message level stepKey }
        ... on ExecutionStepFailureEvent { error { message } }
      }
    }
  }
}
"""

METADATA_FIELDS = """
metadataEntries {
  label
  __typename
  ... on TextMetadataEntry { text }
  ... on IntMetadataEntry { intValue }
  ... on FloatMetadataEntry { floatValue }
  ... on BoolMetadataEntry { boolValue }
  ... on PathMetadataEntry { path }
  ... on MarkdownMetadataEntry { mdStr }
  ... on JsonMetadataEntry { jsonString }
  ... on TableMetadataEntry { table { records schema { columns { name } } } }
}
"""

LATEST_MATERIALIZATION_QUERY = """
query Latest($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset {
      assetMaterializations(limit: 1) { runId timestamp description METADATA }
    }
  }
}
""".replace("METADATA", METADATA_FIELDS)

SENSOR_QUERY = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      name
      minIntervalSeconds
      targets { pipelineName }
      sensorState { id status ticks(limit: 5) { status runIds skipReason error { message } } }
    }
    ... on PythonError { message }
  }
}
"""

START_SENSOR = """
mutation Start($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
  }
}
"""

STOP_SENSOR = """
mutation Stop($id: String!) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message }
  }
}
"""

SCHEDULE_QUERY = """
query Schedule($selector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $selector) {
    __typename
    ... on Schedule {
      name
      cronSchedule
      executionTimezone
      pipelineName
      scheduleState { id status }
    }
    ... on PythonError { message }
  }
}
"""

START_SCHEDULE = """
mutation Start($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
  }
}
"""

STOP_SCHEDULE = """
mutation Stop($id: String!) {
  stopRunningSchedule(id: $id) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
  }
}
"""


def metadata_values(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """GraphQL metadata entries as {label: value}."""
    values: dict[str, Any] = {}
    for entry in entries:
        value: Any = None
        for name in ("text", "intValue", "floatValue", "boolValue", "path", "mdStr"):
            if entry.get(name) is not None:
                value = entry[name]
                break
        if entry.get("table") is not None:
            value = entry["table"]
        if entry.get("jsonString") is not None:
            value = entry["jsonString"]
        values[entry["label"]] = value
    return values


BACKFILL_QUERY = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
  }
}
"""

BACKFILL_RUNS_QUERY = """
query BackfillRuns($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}) {
    ... on Runs {
      results { runId status assetSelection { path } tags { key value } }
    }
  }
}
"""


BACKFILL_RUNS_QUERY_BY_ID = """
query RunsById($ids: [String!]) {
  runsOrError(filter: {runIds: $ids}) {
    ... on Runs {
      results { runId status assetSelection { path } tags { key value } }
    }
  }
}
"""


class GraphQLMixin:
    """The GraphQL calls the tests share (one method per question a test asks), for a webserver
    at `self.port` with a `requests` `self.session` and its log at `self.log_path`."""

    port: int
    session: requests.Session
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST /graphql; returns `data`, raises GraphQLError on transport or GraphQL errors."""
        response = self.session.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
        )
        if response.status_code != 200:
            raise GraphQLError(f"HTTP {response.status_code}: {response.text[:500]}")
        body = response.json()
        if body.get("errors"):
            raise GraphQLError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def client(self) -> DagsterGraphQLClient:
        """Dagster's own client for this webserver (one per object: it keeps its transport)."""
        client = getattr(self, "_dagster_client", None)
        if client is None:
            client = DagsterGraphQLClient("127.0.0.1", port_number=self.port, timeout=30)
            self._dagster_client = client
        return client

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def asset_nodes(self) -> dict[str, dict[str, Any]]:
        nodes = self.graphql(ASSET_NODES_QUERY)["assetNodes"]
        return {"/".join(n["assetKey"]["path"]): n for n in nodes}

    def runs(self, job_name: str | None = None, statuses: list[str] | None = None, limit=20):
        run_filter: dict[str, Any] = {}
        if job_name:
            run_filter["pipelineName"] = job_name
        if statuses:
            run_filter["statuses"] = statuses
        data = self.graphql(RUNS_QUERY, {"filter": run_filter, "limit": limit})["runsOrError"]
        if data["__typename"] != "Runs":
            raise GraphQLError(f"runsOrError: {data}")
        return data["results"]

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        """A backfill's status and its runs (id, status, partition tags)."""
        data = self.graphql(BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]
        if data["__typename"] != "PartitionBackfill":
            raise GraphQLError(f"partitionBackfillOrError: {data}")
        runs = self.graphql(
            BACKFILL_RUNS_QUERY, {"tags": [{"key": "dagster/backfill", "value": backfill_id}]}
        )["runsOrError"]["results"]
        return {"status": data["status"], "runs": runs}

    def backfill_runs_by_id(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """Runs (id, status, asset selection, tags), as `backfill` lists them."""
        runs = self.graphql(BACKFILL_RUNS_QUERY_BY_ID, {"ids": run_ids})["runsOrError"]
        return runs["results"]

    def wait_backfill(self, backfill_id: str, timeout: float) -> dict[str, Any]:
        """Poll until the backfill is done (its daemon launches the runs one after the other)."""

        def done() -> dict[str, Any] | None:
            backfill = self.backfill(backfill_id)
            return backfill if backfill["status"] not in ("REQUESTED", "CANCELING") else None

        return wait_until(
            done, timeout, message=f"backfill {backfill_id} to finish", ignore=TRANSIENT
        )

    def run_status(self, run_id: str) -> str:
        """The run's status (e.g. "STARTED"), through DagsterGraphQLClient.get_run_status."""
        try:
            return self.client().get_run_status(run_id).value
        except DagsterGraphQLClientError as exc:  # RunNotFoundError, PythonError, transport
            raise GraphQLError(f"run {run_id}: {exc}") from exc

    def wait_run(self, run_id: str, statuses: set[str], timeout: float) -> str:
        """Poll until the run reaches one of `statuses` (or any other finished status)."""
        seen: list[str] = []

        def reached() -> str | None:
            status = self.run_status(run_id)
            if not seen or seen[-1] != status:
                seen.append(status)
            if status in statuses or status in FINISHED_RUN_STATUSES:
                return status
            return None

        return wait_until(
            reached, timeout, message=f"run {run_id} to reach {sorted(statuses)}", ignore=TRANSIENT
        )

    def run_messages(self, run_id: str) -> list[dict[str, Any]]:
        data = self.graphql(RUN_LOGS_QUERY, {"runId": run_id})["logsForRun"]
        if data["__typename"] != "EventConnection":
            raise GraphQLError(f"logsForRun: {data}")
        return data["events"]

    def latest_materialization(self, key: str) -> dict[str, Any] | None:
        data = self.graphql(LATEST_MATERIALIZATION_QUERY, {"key": {"path": key.split("/")}})
        asset = data["assetOrError"]
        if asset["__typename"] != "Asset" or not asset["assetMaterializations"]:
            return None
        event = asset["assetMaterializations"][0]
        return {**event, "metadata": metadata_values(event["metadataEntries"])}

    def sensor_selector(self, name: str) -> dict[str, str]:
        return {
            "repositoryLocationName": LOCATION_NAME,
            "repositoryName": REPOSITORY,
            "sensorName": name,
        }

    def schedule_selector(self, name: str) -> dict[str, str]:
        return {
            "repositoryLocationName": LOCATION_NAME,
            "repositoryName": REPOSITORY,
            "scheduleName": name,
        }

    def sensor(self, name: str) -> dict[str, Any] | None:
        data = self.graphql(SENSOR_QUERY, {"selector": self.sensor_selector(name)})
        sensor = data["sensorOrError"]
        return sensor if sensor["__typename"] == "Sensor" else None

    def schedule(self, name: str) -> dict[str, Any] | None:
        data = self.graphql(SCHEDULE_QUERY, {"selector": self.schedule_selector(name)})
        schedule = data["scheduleOrError"]
        return schedule if schedule["__typename"] == "Schedule" else None

    def start_sensor(self, name: str) -> str:
        result = self.graphql(START_SENSOR, {"selector": self.sensor_selector(name)})
        return result["startSensor"]["sensorState"]["status"]

    def stop_sensor(self, name: str) -> str:
        state_id = self.sensor(name)["sensorState"]["id"]
        result = self.graphql(STOP_SENSOR, {"id": state_id})["stopSensor"]
        return result["instigationState"]["status"]

    def start_schedule(self, name: str) -> str:
        result = self.graphql(START_SCHEDULE, {"selector": self.schedule_selector(name)})
        return result["startSchedule"]["scheduleState"]["status"]

    def stop_schedule(self, name: str) -> str:
        state_id = self.schedule(name)["scheduleState"]["id"]
        result = self.graphql(STOP_SCHEDULE, {"id": state_id})["stopRunningSchedule"]
        return result["scheduleState"]["status"]

    def terminate_live_runs(self, timeout: float = 60.0) -> list[str]:
        """Terminate every queued or running run; wait until they are finished."""
        live = [r["runId"] for r in self.runs(statuses=LIVE_RUN_STATUSES, limit=50)]
        if live:
            self.client().terminate_runs(live)
            for run_id in live:
                self.wait_run(run_id, FINISHED_RUN_STATUSES, timeout)
        return live
