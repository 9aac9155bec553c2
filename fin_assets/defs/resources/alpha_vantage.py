"""The Alpha Vantage API as a Dagster resource."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from fin_assets.defs.resources.settings import secret_env_var, unusable_resource
from fin_assets.lib import config, rate_limit, settings
from fin_assets.lib.alpha_vantage.client import AlphaVantageClient


class AlphaVantageResource(dg.ConfigurableResource):
    """TIME_SERIES_DAILY over HTTP with timeouts, an overall deadline and a size limit per
    request, retries with backoff, and pacing shared by every process on the machine.

    The key comes from `ALPHAVANTAGE_API_KEY` (an `EnvVar`, so the UI shows the variable's name,
    never its value) and travels only as the `apikey` query parameter, to the configured host
    only (redirects elsewhere are refused).
    """

    api_key: str = Field(default="", description="ALPHAVANTAGE_API_KEY")
    base_url: str = Field(
        default=config.DEFAULT_ALPHAVANTAGE_BASE_URL, description="ALPHAVANTAGE_BASE_URL"
    )
    timeout_seconds: float = Field(default=20.0, description="Connect timeout, and per single read")
    deadline_seconds: float = Field(
        default=60.0, description="Overall limit for one request: connect, headers and body"
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, description="Largest accepted body, counted decompressed"
    )
    max_retries: int = Field(
        default=3, description="Retries after a timeout, connection error, HTTP 5xx or burst limit"
    )
    backoff_seconds: float = Field(default=2.0, description="First retry delay, doubled each time")
    requests_per_minute: float = Field(
        default=settings.FREE_KEY_REQUESTS_PER_MINUTE,
        description="ALPHAVANTAGE_REQUESTS_PER_MINUTE: the key's plan (free keys: 60, i.e. "
        "1 request/s); calls are spaced 60/this s apart plus a 10% margin",
    )
    min_interval_seconds: float | None = Field(
        default=None,
        description="Least seconds between two calls; overrides requests_per_minute when set",
    )

    def effective_min_interval(self) -> float:
        if self.min_interval_seconds is not None:
            return self.min_interval_seconds
        return rate_limit.min_interval_for(self.requests_per_minute)

    def get_client(self) -> AlphaVantageClient:
        return AlphaVantageClient(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout_seconds=self.timeout_seconds,
            deadline_seconds=self.deadline_seconds,
            max_body_bytes=self.max_body_bytes,
            max_retries=self.max_retries,
            backoff_seconds=self.backoff_seconds,
            min_interval_seconds=self.effective_min_interval(),
        )


def alpha_vantage_from_env() -> AlphaVantageResource | dg.ResourceDefinition:
    """The resource from fin_assets/lib/settings.py; with a bad batch setting, a stand-in that fails
    the batch runs naming the variable while every other flow still loads."""
    try:
        values = settings.alpha_vantage()
    except settings.SettingsError as error:
        return unusable_resource("alpha_vantage", error)
    return AlphaVantageResource(
        api_key=secret_env_var("ALPHAVANTAGE_API_KEY", values.api_key) or "",
        base_url=values.base_url,
        requests_per_minute=values.requests_per_minute,
    )
