"""Fixtures for the batch flow: a real stand-in HTTP server and a job wired to it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from fin_assets.alpha_vantage.stand_in import StandInServer, StandInState
from fin_assets.batch.assets import (
    alpha_vantage_api,
    alpha_vantage_daily_raw,
    daily_prices,
    datos_financieros_csv,
)
from fin_assets.batch.checks import price_checks
from fin_assets.batch.schedules import daily_batch_job
from fin_assets.resources.alpha_vantage import AlphaVantageResource
from fin_assets.resources.settings import PipelineSettings

SECRET_KEY = "SEKRET9X7Q2LMZ"
AS_OF = dt.date(2026, 10, 5)


@pytest.fixture
def stand_in() -> Iterator[StandInServer]:
    with StandInServer(state=StandInState(as_of=AS_OF)) as server:
        yield server


@dataclass
class BatchRunner:
    server: StandInServer
    data_dir: Path
    instance: dg.DagsterInstance
    symbols: str = "TSLA,IBM"
    api_key: str = SECRET_KEY

    @property
    def csv_path(self) -> Path:
        return self.data_dir / "Datos_financieros.csv"

    def history_path(self, symbol: str) -> Path:
        return self.data_dir / "history" / f"{symbol}.csv"

    def run(self, only: list[str] | None = None, **client: float) -> dg.ExecuteInProcessResult:
        resources = {
            "settings": PipelineSettings(data_dir=str(self.data_dir), symbols=self.symbols),
            "alpha_vantage": AlphaVantageResource(
                api_key=self.api_key,
                base_url=client.pop("base_url", self.server.url),
                min_interval_seconds=client.pop("min_interval_seconds", 0.0),
                backoff_seconds=client.pop("backoff_seconds", 0.01),
                timeout_seconds=client.pop("timeout_seconds", 5.0),
                **client,
            ),
        }
        defs = dg.Definitions(
            assets=[
                alpha_vantage_api,
                alpha_vantage_daily_raw,
                daily_prices,
                datos_financieros_csv,
            ],
            asset_checks=price_checks,
            jobs=[daily_batch_job],
            resources=resources,
        )
        run_config = (
            {"ops": {"alpha_vantage_daily_raw": {"config": {"symbols": only}}}} if only else None
        )
        return defs.resolve_job_def("daily_batch_job").execute_in_process(
            instance=self.instance, run_config=run_config, raise_on_error=False
        )


@pytest.fixture
def dagster_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance


@pytest.fixture
def batch(stand_in: StandInServer, tmp_path: Path, dagster_instance) -> BatchRunner:
    return BatchRunner(stand_in, tmp_path / "data", dagster_instance)
