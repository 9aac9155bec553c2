"""Fixtures for the batch flow: a real stand-in HTTP server and a job wired to it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import pytest

from fin_assets.defs.batch.definitions import build_defs
from fin_assets.defs.batch.partitions import contiguous_ranges, range_tags
from fin_assets.defs.batch.schedules import JOB_NAME
from fin_assets.defs.resources.alpha_vantage import AlphaVantageResource
from fin_assets.defs.resources.settings import PipelineSettings
from fin_assets.lib.alpha_vantage.stand_in import StandInServer, StandInState, daily_series_body
from fin_assets_tests.helpers.http_servers import LoopbackHTTPServer, QuietHandler

SECRET_KEY = "SEKRET9X7Q2LMZ"
AS_OF = dt.date(2026, 10, 5)
# Real Alpha Vantage bodies recorded in public repositories, with their sources.txt.
REAL_AV = Path(__file__).resolve().parent / "data" / "real_av"


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
    def symbol_list(self) -> list[str]:
        return [s.strip() for s in self.symbols.split(",") if s.strip()]

    @property
    def csv_path(self) -> Path:
        return self.data_dir / "Datos_financieros.csv"

    def history_path(self, symbol: str) -> Path:
        return self.data_dir / "history" / f"{symbol}.csv"

    def defs(self, **client: float) -> dg.Definitions:
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
        return build_defs(self.symbol_list, resources)

    def run(
        self,
        only: Sequence[str] | None = None,
        assets: Sequence[str] | None = None,
        **client: float,
    ) -> dg.ExecuteInProcessResult:
        """One run over `only` (default: every symbol), as the schedule or the CLI starts it."""
        (keys,) = contiguous_ranges(self.symbol_list, only or self.symbol_list)
        job = self.defs(**client).resolve_job_def(JOB_NAME)
        csv_only = list(assets or []) == ["datos_financieros_csv"]  # unpartitioned: no range
        return job.execute_in_process(
            instance=self.instance,
            tags={} if csv_only else range_tags(keys[0], keys[-1]),
            asset_selection=[dg.AssetKey(a) for a in assets] if assets else None,
            raise_on_error=False,
        )


@pytest.fixture
def dagster_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.ephemeral(tempdir=str(home)) as instance:
        yield instance


@pytest.fixture
def batch(stand_in: StandInServer, tmp_path: Path, dagster_instance) -> BatchRunner:
    return BatchRunner(stand_in, tmp_path / "data", dagster_instance)


class RecordedBodies(LoopbackHTTPServer):
    """A real local HTTP server answering TIME_SERIES_DAILY with recorded Alpha Vantage bodies
    (`bodies[symbol]`), and the stand-in's synthetic series for any other symbol."""

    def __init__(self, bodies: dict[str, str]) -> None:
        self.bodies = bodies
        super().__init__(_RecordedHandler)


class _RecordedHandler(QuietHandler):
    server: RecordedBodies

    def do_GET(self) -> None:
        params = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        symbol = params.get("symbol", "")
        body = self.server.bodies.get(symbol) or json.dumps(daily_series_body(symbol, AS_OF, 100))
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def recorded_bodies() -> Iterator[RecordedBodies]:
    with RecordedBodies({}) as server:
        yield server
