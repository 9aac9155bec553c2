"""The batch job end to end against the real stand-in server: values, history upsert,
provisional-day overwrite, idempotence, failures that lose nothing, blocking checks."""

import base64
import datetime as dt
import json
import re

import dagster as dg
import pandas as pd

from fin_assets.lib import market_calendar
from fin_assets.lib.alpha_vantage.stand_in import daily_series_body
from fin_assets.lib.config import CSV_COLUMNS
from fin_assets_tests.helpers.batch_results import failure_text


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_csv_holds_exactly_the_servers_values(batch):
    result = batch.run()
    assert result.success
    assert all(check_results(result).values())

    text = batch.csv_path.read_text()
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    csv = pd.read_csv(batch.csv_path, dtype=str)
    assert list(csv["simbolo"].unique()) == ["IBM", "TSLA"]  # sorted by simbolo, then fecha
    for symbol, rows in csv.groupby("simbolo"):
        assert list(rows["fecha"]) == sorted(rows["fecha"])
        served = daily_series_body(symbol, dt.date(2026, 10, 5), 100)["Time Series (Daily)"]
        assert len(rows) == len(served) == 100
        for row in rows.itertuples():
            day = served[row.fecha]
            assert float(row.apertura) == float(day["1. open"])
            assert float(row.maximo) == float(day["2. high"])
            assert float(row.minimo) == float(day["3. low"])
            assert float(row.cierre) == float(day["4. close"])
            assert row.volumen == day["5. volume"]


def test_raw_responses_are_stored_per_symbol_and_fetch(batch):
    batch.run()
    batch.run()
    raw_files = sorted((batch.data_dir / "raw" / "TSLA").glob("*.json"))
    assert len(raw_files) == 2
    assert "Time Series (Daily)" in json.loads(raw_files[0].read_text())


def test_history_grows_beyond_the_compact_window(batch, stand_in):
    batch.run()
    stand_in.state.as_of = dt.date(2026, 11, 16)  # 30 trading days later
    result = batch.run()
    assert result.success
    history = pd.read_csv(batch.history_path("TSLA"))
    expected_days = market_calendar.trading_days(
        "TSLA", dt.date.fromisoformat(history["fecha"].iloc[0]), dt.date(2026, 11, 16)
    )
    assert len(history) == 130 == len(expected_days)
    assert history["fecha"].iloc[-1] == "2026-11-16"
    csv = pd.read_csv(batch.csv_path)
    assert (csv.groupby("simbolo").size() == 130).all()


def test_provisional_day_is_overwritten_by_final_values(batch, stand_in):
    stand_in.queue("*", "provisional", times=2)
    batch.run()
    session_day = market_calendar.next_trading_day("TSLA", dt.date(2026, 10, 5)).isoformat()
    provisional = pd.read_csv(batch.csv_path).set_index(["simbolo", "fecha"])
    assert ("TSLA", session_day) in provisional.index

    stand_in.state.as_of = dt.date.fromisoformat(session_day)
    assert batch.run().success
    final = pd.read_csv(batch.csv_path).set_index(["simbolo", "fecha"])
    served = daily_series_body("TSLA", stand_in.state.as_of, 100)["Time Series (Daily)"]
    assert final.loc[("TSLA", session_day), "cierre"] == float(served[session_day]["4. close"])
    assert (
        final.loc[("TSLA", session_day), "cierre"]
        != provisional.loc[("TSLA", session_day), "cierre"]
    )  # noqa: E501
    assert final.index.is_unique


def test_rerunning_the_same_day_changes_nothing(batch):
    batch.run()
    before = {p: p.read_bytes() for p in [batch.csv_path, batch.history_path("TSLA")]}
    inode = batch.csv_path.stat().st_ino
    result = batch.run()
    assert result.success
    assert {p: p.read_bytes() for p in before} == before
    assert batch.csv_path.stat().st_ino == inode  # not even rewritten


def test_failed_symbol_keeps_its_history_and_others_update(batch, stand_in):
    batch.run()
    ibm_history = batch.history_path("IBM").read_bytes()
    ibm_rows_before = [line for line in batch.csv_path.read_text().splitlines() if ",IBM," in line]

    stand_in.state.as_of = dt.date(2026, 10, 12)
    stand_in.queue("IBM", "daily_quota")
    result = batch.run()

    assert not result.success  # the run ends failed, naming the symbol and the cause...
    assert "IBM: fetch failed" in failure_text(result)
    assert "daily request quota" in failure_text(result)
    checks = check_results(result)
    assert checks["every_symbol_fetched"] is False
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "every_symbol_fetched"
    )
    assert evaluation.metadata["cause/IBM"].value == "daily_quota"
    assert batch.history_path("IBM").read_bytes() == ibm_history
    ibm_rows_after = [line for line in batch.csv_path.read_text().splitlines() if ",IBM," in line]
    assert ibm_rows_after == ibm_rows_before
    tsla = pd.read_csv(batch.history_path("TSLA"))  # ...and the other symbol updated
    assert tsla["fecha"].iloc[-1] == "2026-10-12"
    assert pd.read_csv(batch.csv_path).query("simbolo == 'TSLA'")["fecha"].max() == "2026-10-12"
    log = (batch.data_dir / "extraccion_finanzas.log").read_text()
    assert "symbol=IBM attempt=1 outcome=failed cause=daily_quota" in log


def test_when_every_symbol_fails_the_run_fails_and_nothing_is_written(batch, stand_in):
    batch.run()
    before = batch.csv_path.read_bytes()
    stand_in.queue("*", "empty", times=2)
    result = batch.run()
    assert not result.success
    assert "TSLA: fetch failed" in failure_text(result)
    assert "empty JSON object" in failure_text(result)
    assert batch.csv_path.read_bytes() == before


def test_first_run_failing_leaves_no_csv(batch, stand_in):
    stand_in.queue("*", "not_json", times=2)
    assert not batch.run().success
    assert not batch.csv_path.exists()


def test_rerun_of_one_symbol_keeps_the_others_in_the_csv(batch, stand_in):
    batch.run()
    stand_in.state.as_of = dt.date(2026, 10, 12)
    result = batch.run(only=["TSLA"])
    assert result.success
    csv = pd.read_csv(batch.csv_path)
    last = csv.groupby("simbolo")["fecha"].max().to_dict()
    assert last == {"IBM": "2026-10-05", "TSLA": "2026-10-12"}
    assert [r["symbol"] for r in stand_in.state.requests][-1:] == ["TSLA"]


def test_csv_metadata_for_the_ui(batch):
    result = batch.run()
    csv_event = next(
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("datos_financieros_csv")
    )
    metadata = csv_event.materialization.metadata
    assert metadata["path"].value == str(batch.csv_path)
    assert metadata["dagster/row_count"].value == 200
    assert "| TSLA | 100 |" in metadata["date_ranges"].value
    assert len(metadata["preview"].value.records) == 10
    assert isinstance(metadata["last_close/TSLA"].value, float)
    # one inline SVG line chart per symbol, 100 points each
    chart = metadata["price_chart"].value
    images = re.findall(r"!\[(\w+) closes\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", chart)
    assert [symbol for symbol, _ in images] == ["IBM", "TSLA"]
    svg = base64.b64decode(images[1][1]).decode()
    assert svg.startswith("<svg") and len(re.search(r'points="([^"]+)"', svg)[1].split()) == 100
