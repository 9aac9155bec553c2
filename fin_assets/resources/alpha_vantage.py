"""The Alpha Vantage API as a Dagster resource."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from fin_assets import config
from fin_assets.alpha_vantage.client import AlphaVantageClient


class AlphaVantageResource(dg.ConfigurableResource):
    """TIME_SERIES_DAILY over HTTP with timeouts, retries with backoff and 1 request/s pacing.

    The key comes from `ALPHAVANTAGE_API_KEY` (an `EnvVar`, so the UI shows the variable's name,
    never its value) and travels only as the `apikey` query parameter.
    """

    api_key: str = Field(default="", description="ALPHAVANTAGE_API_KEY")
    base_url: str = Field(
        default=config.DEFAULT_ALPHAVANTAGE_BASE_URL, description="ALPHAVANTAGE_BASE_URL"
    )
    timeout_seconds: float = Field(default=20.0, description="Per-request connect/read timeout")
    max_retries: int = Field(
        default=3, description="Retries after a timeout, connection error, HTTP 5xx or burst limit"
    )
    backoff_seconds: float = Field(default=2.0, description="First retry delay, doubled each time")
    min_interval_seconds: float = Field(
        default=1.1, description="Least seconds between two calls (free keys: 1 request/s)"
    )

    def get_client(self) -> AlphaVantageClient:
        return AlphaVantageClient(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout_seconds=self.timeout_seconds,
            max_retries=self.max_retries,
            backoff_seconds=self.backoff_seconds,
            min_interval_seconds=self.min_interval_seconds,
        )


def alpha_vantage_from_env() -> AlphaVantageResource:
    return AlphaVantageResource(
        api_key=config.env_or_default("ALPHAVANTAGE_API_KEY", ""),
        base_url=config.env_or_default(
            "ALPHAVANTAGE_BASE_URL", config.DEFAULT_ALPHAVANTAGE_BASE_URL
        ),
    )
