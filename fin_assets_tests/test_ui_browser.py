"""The Dagster UI in Chromium, as users use it: lineage, Materialize, the CSV's metadata, the
schedule and the simulator sensor toggles, terminating the simulator run.

Each step is screenshotted under test-artifacts/ui/<test>/. With FIN_UPDATE_SCREENSHOTS=1 the
README's screenshots under docs/screenshots/ are refreshed too.
The same outcomes are checked through GraphQL in test_ui_graphql.py.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

from fin_assets_tests.helpers.browser import wait_until_opaque
from fin_assets_tests.helpers.dagster_ui import (
    BATCH_CHAIN,
    EXPECTED,
    NRT_CHAIN,
    SCHEDULE,
    SEARCH_BATCH_EDGE,
    SIMULATOR_JOB,
    SIMULATOR_SENSOR,
    SYMBOLS,
    DagsterUI,
)
from fin_assets_tests.helpers.graphql import LOCATION_NAME, TRANSIENT
from fin_assets_tests.helpers.paths import REPO
from fin_assets_tests.helpers.polling import wait_until
from fin_assets_tests.helpers.prerequisites import missing

pytestmark = pytest.mark.browser

DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"
RUN_TIMEOUT_MS = 90_000


def publish(shot, name: str) -> None:
    """Copy a step's screenshot to docs/screenshots/<name>.png when asked to."""
    if os.environ.get("FIN_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOTS / f"{name}.png")


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


# --- the lineage graph, read from what is drawn ------------------------------------------------

# Asset nodes and edges as drawn in the graph's SVG: nodes are <foreignObject> boxes (group
# frames carry the class "group" or no text), edges are <path>s with an arrow marker.
READ_GRAPH_JS = """
() => {
  const svg = document.querySelector('svg foreignObject')?.ownerSVGElement;
  if (!svg) return {nodes: [], edges: []};
  const nodes = Array.from(svg.querySelectorAll('foreignObject'))
    .filter(f => f.getAttribute('class') !== 'group' && (f.textContent || '').trim())
    .map(f => ({
      text: (f.textContent || '').trim(),
      x: +f.getAttribute('x'), y: +f.getAttribute('y'),
      w: +f.getAttribute('width'), h: +f.getAttribute('height'),
    }));
  const edges = Array.from(svg.querySelectorAll('path[marker-end]'))
    .map(p => (p.getAttribute('d').match(/-?[0-9.]+/g) || []).map(Number))
    .filter(n => n.length >= 4)
    .map(n => ({x1: n[0], y1: n[1], x2: n[n.length - 2], y2: n[n.length - 1]}));
  return {nodes, edges};
}
"""


def label_matches(name: str, text: str) -> bool:
    """A node's label is the asset name, middle-truncated with "…" when zoomed out."""
    if name in text:
        return True
    for head, tail in re.findall(r"([A-Za-z0-9_]+)…([A-Za-z0-9_]+)", text):
        if name.startswith(head) and name.endswith(tail) and len(head) + len(tail) < len(name):
            return True
    return False


def drawn_lineage(page, names: list[str]) -> tuple[dict[str, dict], set[tuple[str, str]]]:
    graph = page.evaluate(READ_GRAPH_JS)
    boxes: dict[str, dict] = {}
    for name in names:
        matching = [n for n in graph["nodes"] if label_matches(name, n["text"])]
        if len(matching) == 1:
            boxes[name] = matching[0]

    def node_at(x: float, y: float, side: str) -> str | None:
        for name, b in boxes.items():
            edge_x = b["x"] + b["w"] if side == "right" else b["x"]
            if abs(edge_x - x) <= 12 and b["y"] <= y <= b["y"] + b["h"]:
                return name
        return None

    edges = set()
    for e in graph["edges"]:
        source, target = node_at(e["x1"], e["y1"], "right"), node_at(e["x2"], e["y2"], "left")
        if source and target:
            edges.add((source, target))
    return boxes, edges


def test_lineage_shows_batch_and_near_real_time_flows(ui_page, dagster_ui: DagsterUI, shots):
    """The global lineage, groups expanded: both chains, down to the Elasticsearch indices."""
    present = [k for k in EXPECTED if k in dagster_ui.asset_nodes()]
    page = ui_page
    page.goto("/asset-groups")
    for group in {EXPECTED[k][0] for k in present}:
        expect(page.get_by_text(group, exact=True).first).to_be_visible()
    shots(page, "lineage-groups-collapsed")

    # The graph's settings menu (the cog at the bottom right), as a user expands the groups.
    page.get_by_role("button", name="settings", exact=True).click()
    page.get_by_role("menuitem", name=re.compile("Expand all groups")).click()
    page.keyboard.press("Escape")

    expected_edges = set(BATCH_CHAIN)
    if {"finanzas_batch"} <= set(present):
        expected_edges.add(SEARCH_BATCH_EDGE)
    if {"transacciones_financieras", "transacciones_nrt"} <= set(present):
        expected_edges.update(NRT_CHAIN)

    def all_drawn():
        boxes, edges = drawn_lineage(page, present)
        return (boxes, edges) if set(boxes) == set(present) and expected_edges <= edges else None

    try:
        boxes, edges = wait_until(
            all_drawn, 20, message="the expanded lineage graph to draw every edge", ignore=TRANSIENT
        )
    finally:
        shot = shots(page, "lineage-expanded")
    publish(shot, "lineage")
    assert expected_edges <= edges
    assert sorted(set(EXPECTED) - set(present)) == [], "assets missing from the lineage"


# --- Materialize, the run, the CSV's metadata ---------------------------------------------------


def launch_batch_materialization(
    page, dagster_ui: DagsterUI, shots, keep: list[str] | None = None
) -> list[dict]:
    """The batch group's "Materialize all" dialog: every symbol partition ("All"), or only
    `keep` (Custom, the others removed from the picker). Several partitions launch a backfill
    (one run for the range: single-run policy), a single one launches one run. Returns the
    runs, once all of them have finished."""
    page.goto(f"/locations/{LOCATION_NAME}/asset-groups/batch")
    materialize = page.get_by_role("button", name=re.compile(r"Materialize all"))
    expect(materialize).to_be_enabled()
    shots(page, "batch-group")
    materialize.click()
    dialog = page.locator("[role=dialog]").first
    expect(dialog.get_by_text("Partition selection")).to_be_visible()
    symbols = SYMBOLS.split(",")
    if keep is None:
        dialog.get_by_role("button", name="All", exact=True).click()
    else:
        dialog.get_by_role("button", name="Custom", exact=True).click()
        for symbol in symbols:
            if symbol not in keep:
                dialog.locator(f"[data-tooltip='{symbol}'] [aria-label='close']").click()
    count = len(keep) if keep is not None else len(symbols)
    expect(dialog.get_by_text(re.compile(rf"^{count} partitions?$"))).to_be_visible()
    picker = shots(page, "partition-picker")
    if keep is not None:
        publish(picker, "partition-picker")
    before = {r["runId"] for r in dagster_ui.runs(limit=50)}
    dialog.get_by_role("button", name=re.compile(r"^Launch (backfill|1 run)$")).click()
    toast = page.get_by_text(re.compile(r"(Created backfill|Launched run) [a-z0-9]+")).first
    expect(toast).to_be_visible()
    if toast.inner_text().startswith("Created backfill"):
        backfill = dagster_ui.wait_backfill(toast.inner_text().split()[-1], RUN_TIMEOUT_MS / 500)
        assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), backfill
        runs = backfill["runs"]
    else:
        (run_id,) = wait_until(
            lambda: [r["runId"] for r in dagster_ui.runs(limit=50) if r["runId"] not in before],
            60,
            message="the launched run",
            ignore=TRANSIENT,
        )
        dagster_ui.wait_run(run_id, {"SUCCESS"}, timeout=RUN_TIMEOUT_MS / 1000)
        runs = dagster_ui.backfill_runs_by_id([run_id])
    assert runs and {r["status"] for r in runs} == {"SUCCESS"}, runs
    return runs


def partition_range(run: dict) -> tuple[str, str] | None:
    tags = {t["key"]: t["value"] for t in run["tags"]}
    if "dagster/partition" in tags:
        return (tags["dagster/partition"], tags["dagster/partition"])
    start = tags.get("dagster/asset_partition_range_start")
    return (start, tags["dagster/asset_partition_range_end"]) if start else None


def test_materialize_batch_and_csv_metadata(ui_page, dagster_ui: DagsterUI, shots):
    page = ui_page
    runs = launch_batch_materialization(page, dagster_ui, shots)
    # Every symbol partition in one run (single-run backfill policy); the unpartitioned CSV
    # in the backfill's next run, built from the histories that run stored.
    symbols = SYMBOLS.split(",")
    ranges = [partition_range(r) for r in runs if partition_range(r)]
    assert ranges == [(symbols[0], symbols[-1])], runs
    run_id = next(r["runId"] for r in runs if partition_range(r))
    page.goto(f"/runs/{run_id}")
    success = page.get_by_text("Success", exact=True).first
    try:
        expect(success).to_be_visible(timeout=RUN_TIMEOUT_MS)
        # The event log loads after the status: a person reads the events.
        expect(page.get_by_text(re.compile("Loading run logs"))).to_have_count(0)
        expect(page.get_by_text("Succeeded (1)").first).to_be_visible()
    finally:
        shot = shots(page, "batch-run")
    publish(shot, "materialization-run")

    rows = dagster_ui.csv_path.read_text().splitlines()
    page.goto("/assets/datos_financieros_csv")
    expect(page.get_by_text("Latest materialization")).to_be_visible()
    expect(page.get_by_text("Row count")).to_be_visible()
    row_count = page.get_by_text(str(len(rows) - 1), exact=True).first
    expect(row_count).to_be_visible()
    metadata = page.get_by_role("table").filter(has_text="date_ranges").first
    expect(metadata).to_be_visible()
    for label in ("path", "date_ranges", "preview"):
        expect(metadata.get_by_text(label, exact=True).first).to_be_visible()
    expect(metadata.get_by_text(str(dagster_ui.csv_path)).first).to_be_visible()
    for symbol in SYMBOLS.split(","):
        expect(metadata.get_by_text(symbol, exact=True).first).to_be_visible()
    # Group and kind in the definition panel.
    expect(page.get_by_role("link", name="batch").first).to_be_visible()
    shot = shots(page, "csv-asset")
    publish(shot, "csv-asset-metadata")

    # The preview table: the CSV's columns, the newest rows.
    # Scroll down to the preview as a reader would (vertically only: the table is wide).
    metadata.get_by_text("Show schema").first.evaluate(
        "e => e.scrollIntoView({block: 'start', inline: 'nearest'})"
    )
    for column in rows[0].split(","):
        expect(metadata.get_by_text(column, exact=True).first).to_be_visible()
    newest = max(line.split(",")[0] for line in rows[1:])
    expect(metadata.get_by_text(newest, exact=True).first).to_be_visible()
    shots(page, "csv-asset-preview")

    # The price chart: one sparkline per symbol, in the Markdown metadata entry.
    chart_row = metadata.get_by_role("row").filter(has_text="price_chart").first
    chart_row.get_by_text("Show Markdown").click()
    chart = page.locator("[role=dialog]").filter(has_text="price_chart").first
    for symbol in symbols:
        expect(chart.get_by_text(symbol, exact=True).first).to_be_visible()
    expect(chart.locator("img[src^='data:image/svg+xml']")).to_have_count(len(symbols))
    wait_until_opaque(chart)
    publish(shots(page, "csv-price-chart"), "csv-price-chart")


def test_rerun_one_symbol_from_the_partition_picker(ui_page, dagster_ui: DagsterUI, shots):
    """Re-running one symbol is the partition picker: only that partition is fetched again,
    and the partition bar shows every symbol materialised."""
    page = ui_page
    raw = dagster_ui.data_dir / "raw"
    symbols = SYMBOLS.split(",")
    if not all((raw / s).is_dir() for s in symbols):  # run alone: materialise everything first
        launch_batch_materialization(page, dagster_ui, shots)
    before = {s: len(list((raw / s).glob("*.json"))) for s in symbols}
    again = symbols[-1]

    runs = launch_batch_materialization(page, dagster_ui, shots, keep=[again])
    assert [partition_range(r) for r in runs if partition_range(r)] == [(again, again)]
    after = {s: len(list((raw / s).glob("*.json"))) for s in symbols}
    assert after == {s: before[s] + (s == again) for s in symbols}

    page.goto("/assets/daily_prices?view=partitions")
    expect(page.get_by_text(f"Materialized ({len(symbols)})")).to_be_visible()
    expect(page.get_by_text("Failed (0)")).to_be_visible()
    page.get_by_text(again, exact=True).first.click()
    expect(page.get_by_text("added_days").first).to_be_visible()  # that partition's metadata
    publish(shots(page, "partition-bar"), "partition-bar")


# --- schedule and sensor ------------------------------------------------------------------------


def automation_toggle(page, name: str):
    """The on/off switch in the Automation list's row for `name`.

    A row holds a selection checkbox before the name's link and the switch after it. While a
    row re-renders (a tick arrives) its switch can be briefly absent, so the locator names the
    row itself (the list's `data-index` item) and the checkbox that follows the link.
    """
    link = page.get_by_role("link", name=re.compile(rf"\b{name}\b"))
    expect(link).to_be_visible()
    href = link.get_attribute("href")
    row = link.locator("xpath=ancestor::*[@data-index][1]")
    toggle = row.locator(f"xpath=.//input[@type='checkbox'][preceding::a[@href='{href}']]")
    expect(toggle).to_have_count(1)
    expect(toggle).to_be_enabled()
    return toggle


def flip(toggle, on: bool) -> None:
    """Click the switch. The <input> is hidden under the drawn switch; its <label> is what a
    user clicks."""
    toggle.locator("xpath=..").click()
    if on:
        expect(toggle).to_be_checked()
    else:
        expect(toggle).not_to_be_checked()


def test_schedule_and_sensor_turn_on_and_the_sensor_launches_the_simulator(
    ui_page, dagster_ui: DagsterUI, shots
):
    page = ui_page
    page.goto("/automation")
    schedule = automation_toggle(page, SCHEDULE)
    assert dagster_ui.sensor(SIMULATOR_SENSOR) is not None, f"{SIMULATOR_SENSOR} not defined"
    sensor = automation_toggle(page, SIMULATOR_SENSOR)
    expect(schedule).not_to_be_checked()
    expect(sensor).not_to_be_checked()
    shots(page, "automation-off")

    # The schedule: on, seen by the instance, off again (no 18:30 run during the tests).
    flip(schedule, on=True)
    wait_until(
        lambda: dagster_ui.schedule(SCHEDULE)["scheduleState"]["status"] == "RUNNING",
        10,
        message="the schedule to be RUNNING",
        ignore=TRANSIENT,
    )

    before = {r["runId"] for r in dagster_ui.runs(job_name=SIMULATOR_JOB)}
    flip(sensor, on=True)
    wait_until(
        lambda: dagster_ui.sensor(SIMULATOR_SENSOR)["sensorState"]["status"] == "RUNNING",
        10,
        message="the sensor to be RUNNING",
        ignore=TRANSIENT,
    )
    shot = shots(page, "automation-on")
    publish(shot, "automation")
    page.reload()
    expect(automation_toggle(page, SCHEDULE)).to_be_checked()
    flip(automation_toggle(page, SCHEDULE), on=False)

    if not dagster_ui.kafka_bootstrap:
        flip(automation_toggle(page, SIMULATOR_SENSOR), on=False)
        missing(f"sensor launch not checked: {dagster_ui.kafka_reason}")

    try:
        run_id = wait_for_sensor_run(page, dagster_ui, before, shots)
    finally:
        # As the sensor's description says: to stop the flow, turn the sensor off first.
        page.goto("/automation")
        flip(automation_toggle(page, SIMULATOR_SENSOR), on=False)
    assert dagster_ui.sensor(SIMULATOR_SENSOR)["sensorState"]["status"] == "STOPPED"

    page.goto(f"/runs/{run_id}")
    page.get_by_role("button", name=re.compile(r"\bTerminate$")).click()
    confirm = page.get_by_role("dialog").filter(has_text=re.compile("Terminate", re.I))
    shots(page, "terminate-dialog")
    confirm.get_by_role("button", name=re.compile(r"^Terminate( 1 run)?$")).click()
    try:
        expect(page.get_by_text("Canceled", exact=True).first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    finally:
        shots(page, "simulator-run-canceled")
    assert dagster_ui.run_status(run_id) == "CANCELED"


def wait_for_sensor_run(page, ui: DagsterUI, before: set[str], shots) -> str:
    """The sensor's tick launches the simulator job: its run shows up on the Runs page."""

    def launched() -> str | None:
        fresh = [r for r in ui.runs(job_name=SIMULATOR_JOB) if r["runId"] not in before]
        return fresh[0]["runId"] if fresh and fresh[0]["status"] == "STARTED" else None

    run_id = wait_until(
        launched,
        90,
        message=f"{SIMULATOR_SENSOR}'s tick to start {SIMULATOR_JOB}",
        ignore=TRANSIENT,
    )
    page.goto("/runs")
    run_link = page.locator(f"a[href='/runs/{run_id}']").first
    expect(run_link).to_be_visible()
    row = run_link.locator("xpath=ancestor::*[.//a[contains(@href,'/sensors/')]][1]")
    expect(row.get_by_role("link", name=SIMULATOR_JOB)).to_be_visible()
    expect(row.get_by_role("link", name=SIMULATOR_SENSOR)).to_be_visible()
    expect(row.get_by_text("Started", exact=True)).to_be_visible()
    shot = shots(page, "simulator-run-started")
    publish(shot, "simulator-run")
    return run_id
