"""Data semantics of the batch flow (issue 16, defect 6), against real recorded bodies, a real
local HTTP server and a real Dagster instance:

- a row on a day the exchange calendar does not list as a session never discards the symbol's
  other rows: real special sessions (Muhurat trading, budget and DR-drill Saturdays) are stored,
  any other non-session row is held back alone with a warning naming it;
- a restated window (most overlapping days changed, or a settled day moved beyond a
  correction) fails that symbol's `plausible_revisions` check and leaves its history as it was;
- a run of the partitioned assets with no symbol (reversed range, no partition) fails naming it.
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pandas as pd
import pytest
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from fin_assets.defs.batch import checks
from fin_assets.defs.batch.partitions import range_tags
from fin_assets.defs.batch.schedules import JOB_NAME
from fin_assets.lib import market_calendar
from fin_assets.lib.alpha_vantage.stand_in import daily_series_body
from fin_assets.lib.batch import prices, validation
from fin_assets_tests.fixtures.batch import AS_OF
from fin_assets_tests.helpers.batch_results import failure_text, partition_bar
from fin_assets_tests.helpers.paths import REAL_AV

RELIANCE_BODY = REAL_AV / "daily_reliance_bse_fullsize_2024-07-22.json"
SERIES = "Time Series (Daily)"
MATERIALIZED, FAILED = AssetPartitionStatus.MATERIALIZED, AssetPartitionStatus.FAILED

# Real BSE/NSE sessions that exchange_calendars 4.13 does not list (issue 16).
SPECIAL_SESSIONS = [
    pytest.param("2024-11-01", id="muhurat-2024"),
    pytest.param("2023-11-12", id="muhurat-2023-sunday"),
    pytest.param("2025-02-01", id="budget-saturday-2025"),
    pytest.param("2024-01-20", id="dr-drill-2024-01-20"),
    pytest.param("2024-03-02", id="dr-drill-2024-03-02"),
    pytest.param("2024-05-18", id="dr-drill-2024-05-18"),
]
# Days that are no BSE session and no known special one.
NON_SESSIONS = [
    pytest.param("2024-07-13", id="plain-saturday"),
    pytest.param("2024-07-17", id="muharram-holiday"),
    pytest.param("2024-07-21", id="plain-sunday"),
]


def reliance_body_with(day: str) -> str:
    """The real RELIANCE.BSE body (16 sessions 2024-06-28..2024-07-22) plus a row on `day`,
    priced like the real first row (a special session trades near its neighbours)."""
    body = json.loads(RELIANCE_BODY.read_text())
    series = body[SERIES]
    assert day not in series
    series[day] = dict(series[min(series)])
    body[SERIES] = dict(sorted(series.items(), reverse=True))
    return json.dumps(body)


def evaluation(result: dg.ExecuteInProcessResult, name: str):
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


# -- special sessions ---------------------------------------------------------------------


@pytest.mark.parametrize("symbol", ["RELIANCE.BSE", "INFY.NSE"])
@pytest.mark.parametrize("day", SPECIAL_SESSIONS)
def test_real_special_sessions_are_sessions_of_the_indian_calendar(symbol, day):
    day = dt.date.fromisoformat(day)
    assert market_calendar.is_trading_day(symbol, day)
    assert day in market_calendar.trading_days(symbol, day - dt.timedelta(days=3), day)
    # The session closes on its own day (Muhurat in the evening), not at a weekday default.
    assert market_calendar.session_close(symbol, day).astimezone(dt.UTC).date() == day
    # Only the Indian calendar gains it: for NYSE these are plain weekdays and weekends.
    assert market_calendar.is_trading_day("TSLA", day) is (day.weekday() < 5)


@pytest.mark.parametrize("day", SPECIAL_SESSIONS)
def test_a_real_special_session_row_is_stored_with_the_rest(batch, recorded_bodies, day):
    recorded_bodies.bodies["RELIANCE.BSE"] = reliance_body_with(day)
    batch.symbols = "TSLA,RELIANCE.BSE"
    result = batch.run(base_url=recorded_bodies.url)
    assert result.success, failure_text(result)
    history = pd.read_csv(batch.history_path("RELIANCE.BSE"), dtype=str)
    assert day in set(history["fecha"])
    assert len(history) == 17  # the 16 real sessions and the special one
    assert evaluation(result, "past_trading_days").passed
    csv = pd.read_csv(batch.csv_path, dtype=str)
    assert day in set(csv[csv["simbolo"] == "RELIANCE.BSE"]["fecha"])


@pytest.mark.parametrize("day", NON_SESSIONS)
def test_a_row_on_an_unlisted_day_is_held_back_alone_with_a_warning(batch, recorded_bodies, day):
    recorded_bodies.bodies["RELIANCE.BSE"] = reliance_body_with(day)
    batch.symbols = "TSLA,RELIANCE.BSE"
    result = batch.run(base_url=recorded_bodies.url)

    assert result.success  # a held-back row warns; it fails nothing
    history = pd.read_csv(batch.history_path("RELIANCE.BSE"), dtype=str)
    assert day not in set(history["fecha"])  # never stored
    assert len(history) == 16  # every other row is
    assert "2024-07-04" in set(history["fecha"])
    assert partition_bar(batch, "daily_prices")["RELIANCE.BSE"] == MATERIALIZED
    check = evaluation(result, "past_trading_days")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert f"RELIANCE.BSE: 1 row(s) held back, not stored: {day}" in check.description
    assert check.metadata["held_back_symbols"].value == "RELIANCE.BSE"
    logs = batch.instance.all_logs(result.run_id)
    warned = [
        r.user_message for r in logs if r.level >= 30 and "held back" in (r.user_message or "")
    ]
    assert warned and day in warned[0] and "RELIANCE.BSE" in warned[0]
    assert "raw/RELIANCE.BSE/" in warned[0]  # names the file the row came from
    csv = pd.read_csv(batch.csv_path, dtype=str)
    assert day not in set(csv["fecha"])
    assert len(csv[csv["simbolo"] == "RELIANCE.BSE"]) == 16


def test_a_future_row_still_quarantines_the_symbol(batch, recorded_bodies):
    """Held back is for past non-session days; a date after today there is an error."""
    future = (market_calendar.market_today("RELIANCE.BSE") + dt.timedelta(days=30)).isoformat()
    recorded_bodies.bodies["RELIANCE.BSE"] = reliance_body_with(future)
    batch.symbols = "TSLA,RELIANCE.BSE"
    result = batch.run(base_url=recorded_bodies.url)
    assert not result.success
    assert "RELIANCE.BSE: past_trading_days: 1 row(s) with a future date" in failure_text(result)
    assert not batch.history_path("RELIANCE.BSE").exists()
    assert partition_bar(batch, "daily_prices")["TSLA"] == MATERIALIZED


# -- restated history ---------------------------------------------------------------------


def split_adjusted(body: dict, ratio: float, days: int) -> dict:
    """`body` with its oldest `days` rows divided by `ratio` (volumes multiplied): how a
    provider restates a window after a split."""
    restated = json.loads(json.dumps(body))
    series = restated[SERIES]
    for day in sorted(series)[:days]:
        row = series[day]
        for field in ("1. open", "2. high", "3. low", "4. close"):
            row[field] = f"{float(row[field]) / ratio:.4f}"
        row["5. volume"] = str(int(int(row["5. volume"]) * ratio))
    return restated


def one_day_moved(body: dict, factor: float) -> dict:
    """`body` with one settled day (the tenth newest) moved by `factor`."""
    restated = json.loads(json.dumps(body))
    day = sorted(restated[SERIES])[-10]
    row = restated[SERIES][day]
    for field in ("1. open", "2. high", "3. low", "4. close"):
        row[field] = f"{float(row[field]) * factor:.4f}"
    return restated


@pytest.mark.parametrize(
    ("restate", "expected"),
    [
        pytest.param(
            lambda b: split_adjusted(b, 3, 98),
            "98 of 100 overlapping stored day(s) revised; largest change",
            id="split-3-for-1-98-of-100",
        ),
        pytest.param(
            lambda b: split_adjusted(b, 2, 100),
            "100 of 100 overlapping stored day(s) revised; largest change",
            id="split-2-for-1-whole-window",
        ),
        pytest.param(
            lambda b: one_day_moved(b, 0.5),
            "1 settled stored day(s) moved by more than 20%",
            id="one-settled-day-halved",
        ),
    ],
)
def test_a_restated_window_fails_its_symbol_and_keeps_its_history(
    batch, recorded_bodies, restate, expected
):
    assert batch.run(base_url=recorded_bodies.url).success
    tsla_history = batch.history_path("TSLA").read_bytes()
    tsla_csv_rows = [line for line in batch.csv_path.read_text().splitlines() if ",TSLA," in line]
    body = daily_series_body("TSLA", AS_OF, 100)
    recorded_bodies.bodies["TSLA"] = json.dumps(restate(body))

    result = batch.run(base_url=recorded_bodies.url)

    assert not result.success
    text = failure_text(result)
    assert f"TSLA: plausible_revisions: {expected}" in text
    assert "IBM" not in text
    assert str(batch.history_path("TSLA")) in text  # names the file kept
    assert batch.history_path("TSLA").read_bytes() == tsla_history  # no fake jump stored
    csv_rows = [line for line in batch.csv_path.read_text().splitlines() if ",TSLA," in line]
    assert csv_rows == tsla_csv_rows
    assert partition_bar(batch, "daily_prices") == {"TSLA": FAILED, "IBM": MATERIALIZED}
    check = evaluation(result, "plausible_revisions")
    assert not check.passed and check.metadata["failed_symbols"].value == "TSLA"


def test_a_split_reports_the_largest_change(batch, recorded_bodies):
    assert batch.run(base_url=recorded_bodies.url).success
    body = daily_series_body("TSLA", AS_OF, 100)
    recorded_bodies.bodies["TSLA"] = json.dumps(split_adjusted(body, 3, 98))
    text = failure_text(batch.run(base_url=recorded_bodies.url))
    assert "(-66.7%)" in text


def test_real_corrections_still_merge(batch, recorded_bodies):
    """The newest day's close arriving (+30 %) and a volume fixed on two days are corrections."""
    assert batch.run(base_url=recorded_bodies.url).success
    body = daily_series_body("TSLA", AS_OF, 100)
    series = body[SERIES]
    days = sorted(series)
    newest = series[days[-1]]
    newest["4. close"] = newest["2. high"] = f"{float(newest['2. high']) * 1.3:.4f}"
    for day in days[-30], days[-40]:
        series[day]["5. volume"] = str(int(series[day]["5. volume"]) + 1000)
    recorded_bodies.bodies["TSLA"] = json.dumps(body)
    result = batch.run(base_url=recorded_bodies.url)
    assert result.success, failure_text(result)
    history = pd.read_csv(batch.history_path("TSLA"), dtype=str)
    assert history["cierre"].iloc[-1] == str(float(newest["4. close"]))


def frame_of(body: dict, symbol: str = "TSLA") -> pd.DataFrame:
    return prices.series_to_frame(symbol, body)


@pytest.mark.parametrize(
    ("restate", "revised", "plausible"),
    [
        (lambda b: split_adjusted(b, 3, 98), 98, False),
        (lambda b: split_adjusted(b, 3, 2), 2, False),  # few days, but far beyond a correction
        (lambda b: split_adjusted(b, 1.01, 2), 2, True),  # two settled days corrected by 1 %
        (lambda b: one_day_moved(b, 1.5), 1, False),
        (lambda b: one_day_moved(b, 1.1), 1, True),
    ],
)
def test_revision_rules_as_pure_functions(restate, revised, plausible):
    body = daily_series_body("TSLA", AS_OF, 100)
    stored, fresh = frame_of(body), frame_of(restate(body))
    found = validation.revisions(stored, fresh)
    assert (found.overlapping, found.revised) == (100, revised)
    reason = validation.implausible_revision(found, stored["fecha"].max())
    assert (reason is None) is plausible
    finding = checks.revision_finding("TSLA", stored, fresh, "history/TSLA.csv")
    assert (finding is None) is plausible


# -- runs with no symbol ------------------------------------------------------------------


def test_a_reversed_partition_range_fails_naming_it(batch):
    batch.symbols = "TSLA,IBM,AAPL"
    job = batch.defs().resolve_job_def(JOB_NAME)
    result = job.execute_in_process(
        instance=batch.instance, tags=range_tags("AAPL", "TSLA"), raise_on_error=False
    )
    assert not result.success
    assert "partition range AAPL..TSLA holds no symbol" in failure_text(result)
    assert batch.server.state.requests == []  # nothing fetched
    assert not batch.csv_path.exists()


def test_the_batch_job_without_a_partition_says_none_was_chosen(batch):
    job = batch.defs().resolve_job_def(JOB_NAME)
    result = job.execute_in_process(instance=batch.instance, raise_on_error=False)
    assert not result.success
    text = failure_text(result)
    assert text.startswith("No partition was chosen")
    assert "no symbol has rows yet" not in text


def test_the_csv_alone_needs_no_partition(batch):
    assert batch.run().success
    batch.csv_path.unlink()
    result = batch.run(assets=["datos_financieros_csv"])
    assert result.success
    assert batch.csv_path.exists()
