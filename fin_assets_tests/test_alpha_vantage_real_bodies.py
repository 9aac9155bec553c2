"""Every real Alpha Vantage body recorded in fin_assets_tests/data/real_av (sources.txt), served by
a real local HTTP server to the client: data bodies yield exactly their values, the others their
named cause."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fin_assets.lib.alpha_vantage.errors import AlphaVantageError, FailureCause
from fin_assets.lib.alpha_vantage.responses import ROW_FIELDS
from fin_assets_tests.fixtures.batch import SECRET_KEY
from fin_assets_tests.helpers.alpha_vantage import client_for
from fin_assets_tests.helpers.http_servers import LocalHTTPServer
from fin_assets_tests.helpers.paths import REAL_AV

# file -> (symbol asked for, datatype, expected cause or None for data, rows, one known row)
DATA = {
    "daily_msft_compact_2018-08-16.json": (
        "MSFT", "json", 100, ("2018-08-16", "108.3000", "108.8600", "107.3000", "107.6400"),
    ),
    "daily_msft_provisional_2018-05-10.json": (
        "MSFT", "json", 3, ("2018-05-10", "97.4600", "97.8700", "97.0500", "97.4800"),
    ),
    "daily_ibm_fullsize_provisional_2020-05-08.json": (
        "IBM", "json", 2, ("2020-05-08", "122.6700", "122.8000", None, None),
    ),
    "daily_reliance_bse_fullsize_2024-07-22.json": (
        "RELIANCE.BSE", "json", 16, ("2024-07-22", "3070.1500", "3070.6000", None, None),
    ),
    "daily_amj_datatype_csv_2020-08-21.csv": (
        "AMJ", "csv", 100, ("2020-08-21", "13.2600", "13.3200", "13.1500", "13.2500"),
    ),
    "daily_ibm_datatype_csv_2026-05-15.csv": (
        "IBM", "csv", 100, ("2026-05-15", "218.2000", "220.9100", "217.6150", "219.3000"),
    ),
}  # fmt: skip

FAILURES = {
    "err_empty_object.json": FailureCause.EMPTY_RESPONSE,
    "err_error_apikey_missing.json": FailureCause.INVALID_API_KEY,
    "err_error_invalid_call_cmo.json": FailureCause.INVALID_CALL,
    "err_error_invalid_call_tsd.json": FailureCause.INVALID_CALL,
    "err_info_25day_noecho.json": FailureCause.DAILY_QUOTA,
    # Throttles of 2018 and of premium keys, not premium gates:
    "err_info_higher_call_volume_2018.json": FailureCause.CALL_VOLUME_LIMIT,
    "err_info_kindly_contact_support_2018.json": FailureCause.CALL_VOLUME_LIMIT,
    "err_info_premium_key_volume.json": FailureCause.CALL_VOLUME_LIMIT,
    "err_info_premium_avc_2022.json": FailureCause.PREMIUM_ONLY,
    "err_info_premium_endpoint_2023.json": FailureCause.PREMIUM_ONLY,
    "err_note_5min_500day.json": FailureCause.MINUTE_LIMIT,
}


def test_the_table_covers_every_recorded_body():
    recorded = {p.name for p in REAL_AV.iterdir() if p.suffix in (".json", ".csv")}
    assert recorded == set(DATA) | set(FAILURES)


@pytest.fixture(scope="module")
def replay():
    """One real server for the module; each test sets the bytes it answers with."""
    answer = {"body": b"", "type": "application/json"}

    def respond(handler) -> None:
        handler.send_body(200, answer["body"], answer["type"])

    with LocalHTTPServer(respond) as server:
        server.answer = answer
        yield server


def serve(replay, name: str) -> None:
    path = REAL_AV / name
    replay.answer["body"] = path.read_bytes()
    replay.answer["type"] = "text/csv" if path.suffix == ".csv" else "application/json"


def recorded_rows(path: Path) -> dict[str, dict[str, str]]:
    """The file's own rows in the JSON shape, read without the code under test."""
    if path.suffix == ".csv":
        with path.open(newline="") as handle:
            return {
                row["timestamp"]: dict(zip(ROW_FIELDS, list(row.values())[1:], strict=True))
                for row in csv.DictReader(handle)
            }
    return json.loads(path.read_text())["Time Series (Daily)"]


@pytest.mark.parametrize("name", sorted(DATA))
def test_real_data_body_yields_its_exact_values(replay, name):
    symbol, datatype, rows, (day, open_, high, low, close) = DATA[name]
    serve(replay, name)
    series = client_for(replay.url, datatype=datatype).fetch_daily(symbol)
    days = series.payload["Time Series (Daily)"]
    assert days == recorded_rows(REAL_AV / name)
    assert len(days) == rows
    newest = days[day]
    for field, expected in zip(ROW_FIELDS, (open_, high, low, close), strict=False):
        if expected is not None:
            assert newest[field] == expected
    assert series.datatype == datatype
    assert f"datatype={datatype}" in replay.paths[-1]


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_real_failure_body_is_named(replay, name):
    serve(replay, name)
    with pytest.raises(AlphaVantageError) as failure:
        client_for(replay.url, max_retries=0).fetch_daily("TSLA")
    error = failure.value
    assert error.cause is FAILURES[name]
    assert error.cause.explanation in str(error)
    provider_text = next(iter(json.loads((REAL_AV / name).read_text()).values()), "")
    assert provider_text[:60] in str(error)  # the provider's words are kept, shortened
    assert SECRET_KEY not in str(error)


def test_errors_come_as_json_also_for_datatype_csv(replay):
    serve(replay, "err_info_25day_noecho.json")
    with pytest.raises(AlphaVantageError) as failure:
        client_for(replay.url, datatype="csv").fetch_daily("IBM")
    assert failure.value.cause is FailureCause.DAILY_QUOTA


@pytest.mark.parametrize(
    ("name", "asked"),
    [
        ("daily_msft_compact_2018-08-16.json", "IBM"),
        ("daily_reliance_bse_fullsize_2024-07-22.json", "RELIANCE.NSE"),
    ],
)
def test_a_body_for_another_symbol_fails_the_symbol_asked_for(replay, name, asked):
    serve(replay, name)
    with pytest.raises(AlphaVantageError) as failure:
        client_for(replay.url).fetch_daily(asked)
    assert failure.value.cause is FailureCause.SYMBOL_MISMATCH
    assert failure.value.symbol == asked and "asked for" in str(failure.value)


def test_unknown_notice_keeps_its_redacted_shortened_text(replay):
    text = f"Something new from Alpha Vantage for key {SECRET_KEY}. " + "More words. " * 40
    replay.answer["body"] = json.dumps({"Information": text}).encode()
    replay.answer["type"] = "application/json"
    with pytest.raises(AlphaVantageError) as failure:
        client_for(replay.url).fetch_daily("TSLA")
    message = str(failure.value)
    assert failure.value.cause is FailureCause.UNRECOGNISED_NOTICE
    assert "Something new from Alpha Vantage for key ***" in message
    assert SECRET_KEY not in message and len(message) < 400 and message.endswith("…")
