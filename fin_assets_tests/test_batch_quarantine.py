"""Quarantine, not blockade: one symbol's bad day fails that symbol's partition only; the
others update, the CSV keeps the bad symbol's previous rows, and the next clean day heals it."""

import datetime as dt

import pandas as pd
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from fin_assets_tests.helpers.batch_results import failure_text, partition_bar
from fin_assets_tests.helpers.paths import REAL_AV

MATERIALIZED, FAILED = AssetPartitionStatus.MATERIALIZED, AssetPartitionStatus.FAILED


def rows_of(csv_text: str, symbol: str) -> list[str]:
    return [line for line in csv_text.splitlines() if f",{symbol}," in line]


def test_bad_bar_quarantines_only_its_symbol_and_the_next_clean_day_heals_it(batch, stand_in):
    batch.symbols = "TSLA,IBM,RELIANCE.BSE"
    assert batch.run().success
    tsla_history = batch.history_path("TSLA").read_bytes()
    tsla_rows = rows_of(batch.csv_path.read_text(), "TSLA")

    stand_in.state.as_of = dt.date(2026, 10, 12)
    stand_in.queue("TSLA", "inconsistent")  # the newest day's high is below its low
    result = batch.run()

    assert not result.success
    text = failure_text(result)
    assert "TSLA: prices_positive_and_consistent: 1 row(s)" in text
    assert "2026-10-12,TSLA," in text  # the offending row itself
    assert "IBM" not in text and "RELIANCE.BSE" not in text
    assert batch.history_path("TSLA").read_bytes() == tsla_history  # stays clean
    csv = batch.csv_path.read_text()
    assert rows_of(csv, "TSLA") == tsla_rows
    last_day = pd.read_csv(batch.csv_path).groupby("simbolo")["fecha"].max().to_dict()
    assert last_day == {"IBM": "2026-10-12", "RELIANCE.BSE": "2026-10-12", "TSLA": "2026-10-05"}
    assert partition_bar(batch, "daily_prices") == {
        "TSLA": FAILED,
        "IBM": MATERIALIZED,
        "RELIANCE.BSE": MATERIALIZED,
    }
    evaluation = next(
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "prices_positive_and_consistent"
    )
    assert not evaluation.passed and evaluation.metadata["failed_symbols"].value == "TSLA"

    healed = batch.run()  # the next run gets clean data: no manual step
    assert healed.success
    assert pd.read_csv(batch.history_path("TSLA"))["fecha"].iloc[-1] == "2026-10-12"
    assert set(partition_bar(batch, "daily_prices").values()) == {MATERIALIZED}


def test_a_non_us_listing_is_checked_against_its_own_exchange(batch, recorded_bodies):
    """RELIANCE.BSE's real body holds 2024-07-04, an NYSE holiday and a Mumbai session."""
    body = (REAL_AV / "daily_reliance_bse_fullsize_2024-07-22.json").read_text()
    recorded_bodies.bodies["RELIANCE.BSE"] = body
    batch.symbols = "TSLA,RELIANCE.BSE"
    result = batch.run(base_url=recorded_bodies.url)
    assert result.success, failure_text(result)
    history = pd.read_csv(batch.history_path("RELIANCE.BSE"), dtype=str)
    assert "2024-07-04" in set(history["fecha"])
    assert len(history) == 16
    assert set(pd.read_csv(batch.csv_path)["simbolo"]) == {"TSLA", "RELIANCE.BSE"}


def test_an_unknown_exchange_suffix_is_checked_on_weekdays_with_a_warning(batch):
    batch.symbols = "ACME.ZZZ"
    result = batch.run()
    assert result.success
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "past_trading_days"
    )
    assert evaluation.passed
    assert "ACME.ZZZ" in evaluation.metadata["calendar_warnings"].value


def test_a_corrupt_history_names_file_and_line_and_the_others_carry_on(batch, stand_in):
    assert batch.run().success
    tsla_rows = rows_of(batch.csv_path.read_text(), "TSLA")
    path = batch.history_path("TSLA")
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(lines[3][:10], "07/10/2026")  # hand-edited in a spreadsheet
    path.write_text("\n".join(lines) + "\n")
    edited = path.read_bytes()

    stand_in.state.as_of = dt.date(2026, 10, 12)
    result = batch.run()
    assert not result.success
    text = failure_text(result)
    assert f"{path} line 4: fecha is not a YYYY-MM-DD date" in text
    assert path.read_bytes() == edited  # left for a person to fix, not overwritten
    assert rows_of(batch.csv_path.read_text(), "TSLA") == tsla_rows
    assert pd.read_csv(batch.history_path("IBM"))["fecha"].iloc[-1] == "2026-10-12"
    assert partition_bar(batch, "daily_prices")["TSLA"] == FAILED
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "history_file_readable"
    )
    assert not evaluation.passed


def test_the_csv_is_never_written_empty(batch, stand_in):
    stand_in.queue("*", "inconsistent", times=2)
    result = batch.run()
    assert not result.success
    assert "never written empty" in failure_text(result)
    assert not batch.csv_path.exists()
    assert not batch.history_path("TSLA").exists()  # no row that failed a check is stored
