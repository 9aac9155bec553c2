"""Elasticsearch as a Dagster resource: where the indices live, configured with EnvVars; the
client itself is fin_assets/lib/search/elasticsearch.py."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from fin_assets.defs.resources.settings import env_var_or, secret_env_var, unusable_resource
from fin_assets.lib import config, settings
from fin_assets.lib.outbound_http import DEFAULT_MAX_BODY_BYTES
from fin_assets.lib.search.elasticsearch import ElasticsearchClient, split_credentials, split_urls


class ElasticsearchResource(dg.ConfigurableResource):
    """Where the search indices live. Credentials are optional (the local test node runs without
    security); set them through `EnvVar` so the UI shows the variable name, never the value."""

    url: str = Field(
        default=config.DEFAULT_ELASTICSEARCH_URL,
        description="Base URL of one node, or of several comma-separated (the client fails "
        "over between them), e.g. https://es01:9200,https://es02:9200",
    )
    username: str | None = Field(default=None, description="Basic-auth user (ELASTICSEARCH_USER)")
    password: str | None = Field(
        default=None, description="Basic-auth password (ELASTICSEARCH_PASSWORD)"
    )
    ca_certs: str | None = Field(
        default=None, description="CA bundle to verify https (ELASTICSEARCH_CA)"
    )
    timeout_seconds: float = Field(default=5.0, description="Connect, and each single read")
    deadline_seconds: float = Field(
        default=15.0,
        description="Overall deadline of one request (connect, headers and body): a server "
        "that dribbles its answer cannot hold a sensor tick longer",
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES, description="Largest answer read (decompressed)"
    )

    def get_client(self, budget_seconds: float | None = None) -> ElasticsearchClient:
        """A client; `budget_seconds` bounds all its requests together (a sensor tick)."""
        auth = (self.username, self.password or "") if self.username else None
        return ElasticsearchClient(
            self.url,
            auth=auth,
            verify=self.ca_certs or True,
            timeout=self.timeout_seconds,
            deadline_seconds=self.deadline_seconds,
            max_body_bytes=self.max_body_bytes,
            budget_seconds=budget_seconds,
        )

    @property
    def display_url(self) -> str:
        return ",".join(split_credentials(u)[0] for u in split_urls(self.url))


def elasticsearch_from_env() -> ElasticsearchResource | dg.ResourceDefinition:
    """The resource from fin_assets/lib/settings.py: credentials (and the URL, which may hold one)
    as EnvVars when set; with a bad setting, a stand-in that fails naming the variable."""
    try:
        values = settings.elasticsearch()
    except settings.SettingsError as error:
        return unusable_resource("elasticsearch", error)
    return ElasticsearchResource(
        url=env_var_or("ELASTICSEARCH_URL", values.url),
        username=env_var_or("ELASTICSEARCH_USER", None),
        password=secret_env_var("ELASTICSEARCH_PASSWORD", values.password),
        ca_certs=values.ca_certs,
    )
