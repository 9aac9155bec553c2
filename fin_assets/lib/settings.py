"""Every environment variable the product reads, parsed and validated here and nowhere else.

One `pydantic-settings` model per concern, so a bad value in one flow's settings never stops
another flow from loading: `common()` (data folder, symbols), `source_links()` ("View
source"), `alpha_vantage()` (batch API), `alerts()` (batch failure webhook), `kafka()` and
`simulator()` (the near-real-time flow), `elasticsearch()` (the search flow). Each call reads
the environment again, so callers read at definitions build, resource init or sensor tick,
never at import.

A value that cannot be used raises `SettingsError`, one message per variable, in one style:
`FIN_SIMULATOR_RATE='nan' is refused: expected a finite number from 0.001 to 1000000 (events
per second)`. Secret values (keys, passwords, URLs that may carry tokens) are never repeated.
Unset or blank means the default. Numbers must be ASCII (Python's own `int`/`float` accept
`'١'` as 1), finite, and in a range that makes sense for them.

No Dagster here (plain library); the resources are built from these models in
`fin_assets/defs/resources/`. A test fails if any other module of the package reads `os.environ`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationError
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict

from fin_assets.lib import symbols as symbol_rules

DEFAULT_ALPHAVANTAGE_BASE_URL = "https://www.alphavantage.co/query"
DEFAULT_SYMBOLS = "TSLA"
DEFAULT_DATA_DIR = "./data"
DEFAULT_KAFKA_BOOTSTRAP_SERVERS = "localhost:9092"
DEFAULT_KAFKA_TOPIC = "transacciones_financieras"
DEFAULT_ELASTICSEARCH_URL = "http://localhost:9200"
DEFAULT_SENSOR_INTERVAL_S = 15
FREE_KEY_REQUESTS_PER_MINUTE = 60.0

MAX_RATE_PER_S = 1_000_000.0  # above it no Python producer keeps up (docs/benchmarks.md)
# Longest duration accepted anywhere: a year. Beyond it a value is a typo, and 1e300 s would
# overflow the datetimes the sensor prints.
MAX_SECONDS = 365 * 24 * 3600.0
# Shortest non-zero duration: below 10 ms nothing here (run tags, sensor ticks) can act on it.
MIN_SECONDS = 0.01

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
KAFKA_SECURITY_PROTOCOLS: tuple[str, ...] = get_args(KafkaSecurityProtocol)
KAFKA_SASL_MECHANISMS: tuple[str, ...] = get_args(KafkaSaslMechanism)

SHOWN_CHARACTERS = 80  # of a refused value, in its error

# Values never repeated in an error: they are, or may hold, credentials.
SECRET_VARIABLES = frozenset(
    {
        "ALPHAVANTAGE_API_KEY",
        "FIN_ALERT_WEBHOOK_URL",
        "KAFKA_SASL_PASSWORD",
        "ELASTICSEARCH_PASSWORD",
        "ELASTICSEARCH_URL",  # https://user:password@host is accepted
    }
)


class SettingsError(ValueError):
    """Environment variables that cannot be used; the message names each one and what it
    accepts. `variables` lists them."""

    def __init__(self, message: str, variables: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.variables = variables


# --- reading the environment -------------------------------------------------------------

# Tests (and callers holding a mapping) parse another mapping than os.environ through this.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("fin_assets_environ", default=None)


class _EnvironSource(EnvSettingsSource):
    """The environment source of pydantic-settings, reading `_ENVIRON` when one is given."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = _ENVIRON.get()
        return dict(os.environ if environ is None else environ)


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_others):
        # The environment only: no .env file and no secrets folder is read behind the user's back.
        return (init_settings, _EnvironSource(settings_cls))


S = TypeVar("S", bound=_Settings)


def _load(model: type[S], environ: Mapping[str, str] | None) -> S:
    token = _ENVIRON.set(environ)
    try:
        return model()
    except ValidationError as error:
        raise _settings_error(model, error, environ) from None
    finally:
        _ENVIRON.reset(token)


def _settings_error(
    model: type[_Settings], error: ValidationError, environ: Mapping[str, str] | None
) -> SettingsError:
    environ = os.environ if environ is None else environ
    by_alias = {
        (field.validation_alias or name): field for name, field in model.model_fields.items()
    }
    lines: list[str] = []
    variables: list[str] = []
    for problem in error.errors(include_url=False):
        variable = str(problem["loc"][0]) if problem["loc"] else "?"
        if variable in variables:
            continue
        variables.append(variable)
        field = by_alias.get(variable)
        accepts = field.description if field is not None else None
        shown = (
            " (value not shown: it may hold a credential)"
            if variable in SECRET_VARIABLES
            else f"={_shown(environ.get(variable, ''))}"
        )
        # Our own validators' reasons are worth repeating; pydantic's internals are not.
        reason = ""
        if problem["type"] == "value_error" and variable not in SECRET_VARIABLES:
            reason = f" ({str(problem['ctx']['error'])})"
        lines.append(f"{variable}{shown} is refused{reason}: expected {accepts}")
    return SettingsError("; ".join(lines), tuple(variables))


def _shown(raw: str) -> str:
    """The value as typed, bounded: a 5 MB variable must not become a 5 MB message."""
    if len(raw) <= SHOWN_CHARACTERS:
        return repr(raw)
    return f"{raw[:SHOWN_CHARACTERS]!r}... ({len(raw)} characters)"


# --- value types -------------------------------------------------------------------------

_ASCII_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_ASCII_WHOLE = re.compile(r"\+?\d+", re.ASCII)


def _blank_is_default(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        if not value:
            raise PydanticUseDefault()
    return value


def _ascii_number(value: Any) -> Any:
    value = _blank_is_default(value)
    if isinstance(value, str) and not _ASCII_NUMBER.fullmatch(value):
        # Anything else (Arabic-Indic digits, '1_000', 'inf', 'nan') is refused here.
        raise ValueError("not a finite decimal number in ASCII digits")
    return value


def _ascii_whole(value: Any) -> Any:
    value = _blank_is_default(value)
    if isinstance(value, str) and not _ASCII_WHOLE.fullmatch(value):
        raise ValueError("not a whole number in ASCII digits")
    return value


def _zero_or_at_least(low: float) -> Any:
    def check(value: float) -> float:
        if value != 0 and value < low:
            raise ValueError(f"neither 0 nor at least {low:g}")
        return value

    return AfterValidator(check)


def _number(low: float, high: float) -> Any:
    return Annotated[
        float, BeforeValidator(_ascii_number), Field(ge=low, le=high, allow_inf_nan=False)
    ]


def _whole(low: int, high: int) -> Any:
    return Annotated[int, BeforeValidator(_ascii_whole), Field(ge=low, le=high)]


def _in_ascii(accepts: str) -> str:
    return f"{accepts}, in ASCII digits"


Rate = _number(0.001, MAX_RATE_PER_S)
RATE_ACCEPTS = _in_ascii("a finite number from 0.001 to 1000000 (events per second)")
Seconds = _number(MIN_SECONDS, MAX_SECONDS)
SECONDS_ACCEPTS = _in_ascii("a finite number of seconds from 0.01 to 31536000 (a year)")
ZeroOrSeconds = Annotated[
    float,
    BeforeValidator(_ascii_number),
    Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False),
    _zero_or_at_least(MIN_SECONDS),
]
ZERO_OR_SECONDS_ACCEPTS = f"0, or {SECONDS_ACCEPTS}"
RequestsPerMinute = _number(0.1, 100_000)
REQUESTS_ACCEPTS = _in_ascii("a finite number from 0.1 to 100000 (requests per minute)")
Shards = _whole(1, 1000)
SHARDS_ACCEPTS = _in_ascii("a whole number from 1 to 1000 (simulator runs)")
SensorSeconds = _whole(1, 86_400)
SENSOR_SECONDS_ACCEPTS = _in_ascii("a whole number of seconds from 1 to 86400")
Partitions = _whole(1, 10_000)
PARTITIONS_ACCEPTS = _in_ascii("a whole number from 1 to 10000 (partitions)")
Replicas = _whole(1, 32_767)
REPLICAS_ACCEPTS = _in_ascii("a whole number from 1 to 32767 (replicas)")


def _text(value: Any) -> Any:
    return _blank_is_default(value)


Text = Annotated[str, BeforeValidator(_text)]


_BROKER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:(\d{1,5}))?", re.ASCII)


def _brokers(value: str) -> str:
    for broker in (part.strip() for part in value.split(",")):
        match = _BROKER.fullmatch(broker)
        if match is None or (match.group(3) and not 1 <= int(match.group(3)) <= 65535):
            raise ValueError(f"{broker!r} is not host:port")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http:// or https:// URL with a host")
    return value


HttpUrl = Annotated[str, BeforeValidator(_text), AfterValidator(_http_url)]


def _secret_http_url(value: SecretStr) -> SecretStr:
    _http_url(value.get_secret_value())
    return value


SecretHttpUrl = Annotated[SecretStr, BeforeValidator(_text), AfterValidator(_secret_http_url)]
Secret = Annotated[SecretStr, BeforeValidator(_text)]


def _symbol_list(value: Any) -> Any:
    value = _text(value)
    try:
        return symbol_rules.parse_symbols(value)
    except symbol_rules.InvalidSymbolError as error:
        raise ValueError(str(error)) from None


def _elasticsearch_urls(value: str) -> str:
    for url in (part.strip() for part in value.split(",")):
        _http_url(url)
    return value


_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}", re.ASCII)


def _kafka_topic(value: str) -> str:
    if not _TOPIC.fullmatch(value) or value in (".", ".."):
        raise ValueError("Kafka topic names are 1-249 of A-Z a-z 0-9 . _ -")
    return value


def _field(variable: str, accepts: str, default: Any = None) -> Any:
    return Field(default=default, validation_alias=variable, description=accepts)


# --- the settings of each concern --------------------------------------------------------


class CommonSettings(_Settings):
    """What every flow shares: the data folder and the symbols."""

    data_dir: Text = _field("FIN_DATA_DIR", "a folder path", DEFAULT_DATA_DIR)
    symbols: Annotated[list[str], NoDecode, BeforeValidator(_symbol_list)] = _field(
        "FIN_SYMBOLS",
        "comma-separated symbols (ASCII letters, digits, '.', '-')",
        DEFAULT_SYMBOLS,  # validated like a set value (validate_default)
    )


class SourceLinkSettings(_Settings):
    """ "View source" links into the Git host instead of local files."""

    git_url: HttpUrl | None = _field("FIN_SOURCE_GIT_URL", "an http(s) URL")
    git_branch: Text = _field("FIN_SOURCE_GIT_BRANCH", "a branch name", "main")


class AlphaVantageSettings(_Settings):
    """The batch flow's API: key (secret), server, plan rate, pacing lock folder."""

    api_key: Secret | None = _field("ALPHAVANTAGE_API_KEY", "the API key")
    base_url: HttpUrl = _field(
        "ALPHAVANTAGE_BASE_URL", "an http(s) URL", DEFAULT_ALPHAVANTAGE_BASE_URL
    )
    requests_per_minute: RequestsPerMinute = _field(
        "ALPHAVANTAGE_REQUESTS_PER_MINUTE", REQUESTS_ACCEPTS, FREE_KEY_REQUESTS_PER_MINUTE
    )
    rate_limit_dir: Text | None = _field("FIN_RATE_LIMIT_DIR", "a folder path")


class AlertSettings(_Settings):
    """Where batch_run_failure_sensor POSTs failed runs (the URL can hold a token)."""

    webhook_url: SecretHttpUrl | None = _field("FIN_ALERT_WEBHOOK_URL", "an http(s) URL")


class KafkaSettings(_Settings):
    """Where and how the simulator produces. Protocol/mechanism combinations are checked by
    `resources.kafka_security` (they need each other), naming the variable too."""

    bootstrap_servers: Annotated[str, BeforeValidator(_text), AfterValidator(_brokers)] = _field(
        "KAFKA_BOOTSTRAP_SERVERS",
        "a comma-separated host:port list",
        DEFAULT_KAFKA_BOOTSTRAP_SERVERS,
    )
    topic: Annotated[str, BeforeValidator(_text), AfterValidator(_kafka_topic)] = _field(
        "FIN_KAFKA_TOPIC", "a Kafka topic name", DEFAULT_KAFKA_TOPIC
    )
    partitions: Partitions = _field("FIN_KAFKA_PARTITIONS", PARTITIONS_ACCEPTS, 3)
    replication_factor: Replicas = _field("FIN_KAFKA_REPLICATION_FACTOR", REPLICAS_ACCEPTS, 1)
    security_protocol: Annotated[KafkaSecurityProtocol, BeforeValidator(_text)] = _field(
        "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", "PLAINTEXT"
    )
    sasl_mechanism: Annotated[KafkaSaslMechanism | None, BeforeValidator(_text)] = _field(
        "KAFKA_SASL_MECHANISM", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
    )
    sasl_username: Text | None = _field("KAFKA_SASL_USERNAME", "a user name")
    sasl_password: Secret | None = _field("KAFKA_SASL_PASSWORD", "a password")
    ssl_cafile: Text | None = _field("KAFKA_SSL_CAFILE", "a CA bundle path")


class SimulatorSettings(_Settings):
    """How the sensor keeps the simulator alive (FIN_SIMULATOR_*); see docs/simulator.md."""

    rate_per_s: Rate = _field("FIN_SIMULATOR_RATE", RATE_ACCEPTS, 1.0)
    shards: Shards = _field("FIN_SIMULATOR_SHARDS", SHARDS_ACCEPTS, 1)
    stale_after_s: Seconds = _field("FIN_SIMULATOR_STALE_AFTER_S", SECONDS_ACCEPTS, 180.0)
    start_grace_s: ZeroOrSeconds = _field(
        "FIN_SIMULATOR_START_GRACE_S", ZERO_OR_SECONDS_ACCEPTS, 60.0
    )
    heartbeat_s: Seconds = _field("FIN_SIMULATOR_HEARTBEAT_S", SECONDS_ACCEPTS, 10.0)
    backoff_base_s: ZeroOrSeconds = _field(
        "FIN_SIMULATOR_BACKOFF_BASE_S", ZERO_OR_SECONDS_ACCEPTS, 15.0
    )
    backoff_cap_s: ZeroOrSeconds = _field(
        "FIN_SIMULATOR_BACKOFF_CAP_S", ZERO_OR_SECONDS_ACCEPTS, 600.0
    )
    healthy_run_s: ZeroOrSeconds = _field(
        "FIN_SIMULATOR_HEALTHY_RUN_S", ZERO_OR_SECONDS_ACCEPTS, 60.0
    )
    run_lifetime_s: ZeroOrSeconds = _field(
        "FIN_SIMULATOR_RUN_LIFETIME_S", ZERO_OR_SECONDS_ACCEPTS, 0.0
    )
    sensor_interval_s: SensorSeconds = _field(
        "FIN_SIMULATOR_SENSOR_INTERVAL_S", SENSOR_SECONDS_ACCEPTS, DEFAULT_SENSOR_INTERVAL_S
    )


class ElasticsearchSettings(_Settings):
    """Where the search flow looks; credentials optional."""

    url: Annotated[str, BeforeValidator(_text), AfterValidator(_elasticsearch_urls)] = _field(
        "ELASTICSEARCH_URL", "comma-separated http(s) URLs", DEFAULT_ELASTICSEARCH_URL
    )
    username: Text | None = _field("ELASTICSEARCH_USER", "a user name")
    password: Secret | None = _field("ELASTICSEARCH_PASSWORD", "a password")
    ca_certs: Text | None = _field("ELASTICSEARCH_CA", "a CA bundle path")


def common(environ: Mapping[str, str] | None = None) -> CommonSettings:
    return _load(CommonSettings, environ)


def source_links(environ: Mapping[str, str] | None = None) -> SourceLinkSettings:
    return _load(SourceLinkSettings, environ)


def alpha_vantage(environ: Mapping[str, str] | None = None) -> AlphaVantageSettings:
    return _load(AlphaVantageSettings, environ)


def alerts(environ: Mapping[str, str] | None = None) -> AlertSettings:
    return _load(AlertSettings, environ)


def kafka(environ: Mapping[str, str] | None = None) -> KafkaSettings:
    return _load(KafkaSettings, environ)


def simulator(environ: Mapping[str, str] | None = None) -> SimulatorSettings:
    return _load(SimulatorSettings, environ)


def elasticsearch(environ: Mapping[str, str] | None = None) -> ElasticsearchSettings:
    return _load(ElasticsearchSettings, environ)


ALL_SETTINGS: tuple[type[_Settings], ...] = (
    CommonSettings,
    SourceLinkSettings,
    AlphaVantageSettings,
    AlertSettings,
    KafkaSettings,
    SimulatorSettings,
    ElasticsearchSettings,
)


def variables() -> dict[str, str]:
    """Every variable read here -> what it accepts (for docs and tests)."""
    return {
        field.validation_alias: field.description or ""
        for model in ALL_SETTINGS
        for field in model.model_fields.values()
    }


def alert_webhook_url() -> str | None:
    """FIN_ALERT_WEBHOOK_URL, validated (it may hold a token: never put it in text)."""
    url = alerts().webhook_url
    return url.get_secret_value() if url is not None else None


def is_set(variable: str) -> bool:
    """Whether `variable` holds a non-blank value: resources then take it as a Dagster
    `EnvVar`, so the UI shows the variable's name, never a secret value."""
    return bool(os.environ.get(variable, "").strip())


def sensor_interval_s() -> int:
    """The simulator sensor's interval for its decorator, read when the definitions load.

    Never raises: a bad FIN_SIMULATOR_* value must not stop the code location (and the batch)
    from loading; the default is used and every tick of the sensor fails naming the variable.
    """
    try:
        return simulator().sensor_interval_s
    except SettingsError:
        return DEFAULT_SENSOR_INTERVAL_S


# --- DAGSTER_HOME and handing values to child processes --------------------------------


def dagster_home() -> Path | None:
    """DAGSTER_HOME when set (Dagster itself reads it too)."""
    value = os.environ.get("DAGSTER_HOME", "").strip()
    return Path(value) if value else None


def default_dagster_home(path: Path) -> Path:
    """DAGSTER_HOME, set to `path` when unset, so the `dagster dev` child process inherits it."""
    return Path(os.environ.setdefault("DAGSTER_HOME", str(path)))


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """`values` set in this process's environment for the block, then restored: how the
    stand-in is handed to definitions and `dagster dev` through the variables a user sets."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
