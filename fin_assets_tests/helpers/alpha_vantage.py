"""The Alpha Vantage client as the HTTP-level tests build it: the test key, no pacing, no
retries, a generous timeout (a loaded machine), each test overriding what it is about.
Shared by the hostile-server and the recorded-bodies tests."""

from __future__ import annotations

from fin_assets.lib.alpha_vantage.client import AlphaVantageClient
from fin_assets.lib.rate_limit import RequestPacer
from fin_assets_tests.fixtures.batch import SECRET_KEY


def client_for(url: str, **overrides) -> AlphaVantageClient:
    options = dict(
        api_key=SECRET_KEY,
        base_url=url,
        min_interval_seconds=0.0,
        backoff_seconds=0.01,
        timeout_seconds=10.0,  # generous for a loaded machine; deadline tests set their own
        max_retries=0,
        pacer=RequestPacer(),
    )
    options.update(overrides)
    return AlphaVantageClient(**options)
