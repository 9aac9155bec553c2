"""`fin-assets batch` as a user runs it, in a subprocess."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from fin_assets.lib.alpha_vantage.stand_in import daily_series_body
from fin_assets_tests.fixtures.batch import SECRET_KEY
from fin_assets_tests.helpers.paths import REPO


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("ALPHAVANTAGE_", "FIN_"))
    }
    environment.pop("DAGSTER_HOME", None)
    environment.update(FIN_DATA_DIR=str(tmp_path / "data"), **env)
    return subprocess.run(
        [sys.executable, "-m", "fin_assets.cli", "batch", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )


def test_without_a_key_it_runs_on_the_synthetic_stand_in(tmp_path):
    done = run_cli(tmp_path, FIN_SYMBOLS="TSLA,IBM")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Prices are SYNTHETIC" in done.stdout
    assert "batch: OK" in done.stdout
    csv = pd.read_csv(tmp_path / "data" / "Datos_financieros.csv")
    assert set(csv["simbolo"]) == {"TSLA", "IBM"}


def test_with_a_key_it_writes_exactly_the_servers_values(tmp_path, stand_in):
    done = run_cli(
        tmp_path,
        ALPHAVANTAGE_API_KEY=SECRET_KEY,
        ALPHAVANTAGE_BASE_URL=stand_in.url,
        FIN_SYMBOLS="MSFT",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ALPHAVANTAGE_API_KEY is not set" not in done.stdout  # the stand-in was not started
    csv = pd.read_csv(tmp_path / "data" / "Datos_financieros.csv", dtype=str)
    served = daily_series_body("MSFT", dt.date(2026, 10, 5), 100)["Time Series (Daily)"]
    assert len(csv) == 100
    for row in csv.itertuples():
        day = served[row.fecha]
        assert [float(row.apertura), float(row.cierre), row.volumen] == [
            float(day["1. open"]),
            float(day["4. close"]),
            day["5. volume"],
        ]
    assert SECRET_KEY not in done.stdout + done.stderr


def test_a_failed_symbol_exits_non_zero_and_says_why(tmp_path, stand_in):
    stand_in.queue("IBM", "daily_quota")
    done = run_cli(
        tmp_path,
        ALPHAVANTAGE_API_KEY=SECRET_KEY,
        ALPHAVANTAGE_BASE_URL=stand_in.url,
        FIN_SYMBOLS="TSLA,IBM",
    )
    assert done.returncode == 1
    assert "every_symbol_fetched: FAILED" in done.stdout
    assert "daily request quota" in done.stdout + done.stderr
    assert SECRET_KEY not in done.stdout + done.stderr
    assert "batch: FAILED" in done.stdout


def test_dagster_asset_materialize_runs_the_same_assets(tmp_path, stand_in):
    home = tmp_path / "dagster_home"
    home.mkdir()
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("ALPHAVANTAGE_", "FIN_"))
    }
    environment.update(
        DAGSTER_HOME=str(home),
        ALPHAVANTAGE_API_KEY=SECRET_KEY,
        ALPHAVANTAGE_BASE_URL=stand_in.url,
        FIN_DATA_DIR=str(tmp_path / "data"),
        FIN_SYMBOLS="TSLA",
    )
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "fin_assets.definitions"]
        + ["--select", "alpha_vantage_daily_raw,daily_prices,datos_financieros_csv"]
        + ["--partition", "TSLA"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stderr
    assert len(pd.read_csv(tmp_path / "data" / "Datos_financieros.csv")) == 100
    assert SECRET_KEY not in done.stdout + done.stderr


def test_a_symbol_outside_fin_symbols_is_refused_before_any_fetch(tmp_path, stand_in):
    environment = {
        "ALPHAVANTAGE_API_KEY": SECRET_KEY,
        "ALPHAVANTAGE_BASE_URL": stand_in.url,
        "FIN_SYMBOLS": "TSLA,IBM",
    }
    refused = run_cli(tmp_path, "--symbols", "AAPL", **environment)
    assert refused.returncode == 2
    assert "AAPL" in refused.stderr and "FIN_SYMBOLS" in refused.stderr
    assert stand_in.state.requests == []  # never fetched, so never dropped
    assert not (tmp_path / "data" / "raw" / "AAPL").exists()

    done = run_cli(tmp_path, "--symbols", "ibm", **environment)  # a partition of its own
    assert done.returncode == 0, done.stdout + done.stderr
    assert [r["symbol"] for r in stand_in.state.requests] == ["IBM"]
    assert set(pd.read_csv(tmp_path / "data" / "Datos_financieros.csv")["simbolo"]) == {"IBM"}


def test_a_symbol_that_could_be_a_path_is_refused_naming_it(tmp_path):
    done = run_cli(tmp_path, FIN_SYMBOLS="TSLA,../../X")
    assert done.returncode == 2
    assert "'../../X'" in done.stderr and "FIN_SYMBOLS" in done.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == []  # nothing written anywhere
    done = run_cli(tmp_path, "--symbols", "a/b", FIN_SYMBOLS="TSLA")
    assert done.returncode == 2 and "'a/b'" in done.stderr
