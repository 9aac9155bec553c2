"""Pure functions of the batch flow: parsing, upsert, CSV text, quality rules, calendar."""

import datetime as dt

import pandas as pd
import pytest

from fin_assets.defs.batch import checks
from fin_assets.lib import market_calendar
from fin_assets.lib.alpha_vantage.stand_in import daily_series_body
from fin_assets.lib.batch import prices, validation


def frame(rows: list[tuple]) -> pd.DataFrame:
    data = pd.DataFrame(
        rows, columns=["fecha", "simbolo", "apertura", "maximo", "minimo", "cierre", "volumen"]
    )  # noqa: E501
    data["fecha"] = pd.to_datetime(data["fecha"])
    return data.astype(prices.CSV_DTYPES)


GOOD = ("2026-10-05", "TSLA", 10.0, 12.0, 9.0, 11.0, 100)


def test_series_to_frame_sorts_and_types_whatever_the_order():
    payload = daily_series_body("TSLA", dt.date(2026, 10, 5), 5)
    series = payload["Time Series (Daily)"]
    payload["Time Series (Daily)"] = dict(reversed(list(series.items())))  # oldest first now
    parsed = prices.series_to_frame("TSLA", payload)
    assert list(parsed["fecha"].dt.strftime("%Y-%m-%d")) == sorted(series)
    assert str(parsed["volumen"].dtype) == "int64"
    assert str(parsed["cierre"].dtype) == "float64"


def test_csv_text_is_lossless_and_minimal():
    data = frame([("2026-10-05", "TSLA", 222.3, 222.88, 220.3, 221.58, 6318079)])
    text = prices.to_csv_text(data)
    assert text == (
        "fecha,simbolo,apertura,maximo,minimo,cierre,volumen\n"
        "2026-10-05,TSLA,222.3,222.88,220.3,221.58,6318079\n"
    )


def test_csv_round_trip_keeps_every_value(tmp_path):
    payload = daily_series_body("IBM", dt.date(2026, 10, 5), 100)
    original = prices.series_to_frame("IBM", payload)
    path = tmp_path / "h.csv"
    prices.write_atomically(path, prices.to_csv_text(original))
    pd.testing.assert_frame_equal(prices.read_price_csv(path), original, check_dtype=False)


def test_upsert_counts_new_and_revised_days():
    history = frame([GOOD, ("2026-10-06", "TSLA", 11.0, 12.0, 10.0, 11.5, 50)])
    fresh = frame(
        [
            ("2026-10-06", "TSLA", 11.0, 13.0, 10.0, 12.5, 90),
            ("2026-10-07", "TSLA", 12.0, 13.0, 11.0, 12.0, 70),
        ]
    )  # noqa: E501
    result = prices.upsert(history, fresh)
    assert (result.added_days, result.changed_days) == (1, 1)
    assert list(result.frame["cierre"]) == [11.0, 12.5, 12.0]


def test_quality_rules_find_each_problem():
    assert validation.duplicate_symbol_days(frame([GOOD, GOOD])).shape[0] == 2
    high_below_close = ("2026-10-05", "TSLA", 10.0, 10.5, 9.0, 11.0, 100)
    negative = ("2026-10-05", "TSLA", -1.0, 12.0, -2.0, 11.0, 100)
    assert len(validation.inconsistent_prices(frame([GOOD, high_below_close, negative]))) == 2
    assert len(validation.negative_volumes(frame([GOOD, (*GOOD[:6], -5)]))) == 1
    missing = frame([GOOD]).astype({"cierre": "float64"})
    missing.loc[0, "cierre"] = float("nan")
    assert len(validation.rows_with_missing_values(missing)) == 1
    weekend = ("2026-10-04", "TSLA", 10.0, 12.0, 9.0, 11.0, 100)
    christmas = ("2026-12-25", "TSLA", 10.0, 12.0, 9.0, 11.0, 100)
    future = ("2026-10-07", "TSLA", 10.0, 12.0, 9.0, 11.0, 100)
    bad = validation.non_trading_or_future_days(
        frame([GOOD, weekend, christmas, future]),
        today=dt.date(2026, 10, 6),
        trading_days=lambda start, end: set(market_calendar.trading_days("TSLA", start, end)),
    )
    assert list(bad["fecha"].dt.strftime("%Y-%m-%d")) == ["2026-10-04", "2026-12-25", "2026-10-07"]
    assert validation.inconsistent_prices(frame([GOOD])).empty


@pytest.mark.parametrize(
    ("day", "trading"),
    [
        ("2026-04-03", False),  # Good Friday
        ("2026-06-19", False),  # Juneteenth
        ("2026-07-03", False),  # Independence Day observed (4 July is a Saturday)
        ("2026-11-26", False),  # Thanksgiving
        ("2026-11-27", True),
        ("2021-12-31", True),  # New Year's Day on a Saturday: NYSE stays open on Friday
        ("2025-01-09", False),  # national day of mourning
    ],
)
def test_nyse_calendar(day, trading):
    assert market_calendar.is_trading_day("TSLA", dt.date.fromisoformat(day)) is trading


def test_trading_days_per_year():
    days = market_calendar.trading_days("TSLA", dt.date(2025, 1, 1), dt.date(2025, 12, 31))
    assert len(days) == 250


def test_last_closed_session_depends_on_new_york_time():
    before_close = dt.datetime(2026, 10, 5, 19, 0, tzinfo=dt.UTC)  # 15:00 in New York
    after_close = dt.datetime(2026, 10, 5, 21, 0, tzinfo=dt.UTC)
    assert market_calendar.last_closed_trading_day("TSLA", before_close) == dt.date(2026, 10, 2)
    assert market_calendar.last_closed_trading_day("TSLA", after_close) == dt.date(2026, 10, 5)


def test_batched_log_sends_the_first_line_at_once_then_groups_lines():
    from fin_assets.defs.batch.formatting import BatchedLog

    sent: list[str] = []
    log = BatchedLog(sent.append, interval_s=3600)
    for symbol in ("TSLA", "IBM", "MSFT"):
        log.add(f"{symbol}: 100 days")
    assert sent == ["TSLA: 100 days"]
    log.flush()
    assert sent == ["TSLA: 100 days", "IBM: 100 days\nMSFT: 100 days"]
    log.flush()
    assert len(sent) == 2  # nothing left, nothing sent


@pytest.mark.parametrize(
    "row",
    [
        ("1677-09-21", "TSLA", 10.0, 12.0, 9.0, 11.0, 100),  # pandas' earliest Timestamp
        ("2026-10-05", "TSLA", 10.0, 1e308, 9.0, 11.0, 100),
        ("2026-10-05", "TSLA", 10.0, float("inf"), 9.0, 11.0, 100),
        ("2026-10-05", "TSLA", 10.0, 12.0, 9.0, 11.0, 10**15),
    ],
)
def test_implausible_dates_and_values_are_found(row):
    assert len(validation.implausible_values(frame([GOOD, row]))) == 1
    findings = checks.run_rules(frame([GOOD, row]), "TSLA", dt.date(2026, 10, 6))
    assert "plausible_values" in {f.check for f in findings}
