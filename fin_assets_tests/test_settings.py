"""One settings object (fin_assets/lib/settings.py): every variable validated in one place with one
error style, nothing else reading the environment, and a bad value in one flow's settings never
stopping another flow."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from fin_assets.defs.resources.alpha_vantage import AlphaVantageResource, alpha_vantage_from_env
from fin_assets.defs.resources.elasticsearch import elasticsearch_from_env
from fin_assets.defs.resources.kafka import KafkaProducerResource, kafka_from_env
from fin_assets.defs.resources.settings import PipelineSettings, settings_from_env
from fin_assets.defs.simulator.job import transaction_simulator_job
from fin_assets.lib import settings
from fin_assets_tests.helpers.paths import REPO

PACKAGE = REPO / "fin_assets"

# Which loader reads each variable (one pydantic-settings model per concern).
LOADERS = {
    "FIN_SYMBOLS": settings.common,
    "FIN_SOURCE_GIT_URL": settings.source_links,
    "ALPHAVANTAGE_BASE_URL": settings.alpha_vantage,
    "ALPHAVANTAGE_REQUESTS_PER_MINUTE": settings.alpha_vantage,
    "FIN_ALERT_WEBHOOK_URL": settings.alerts,
    "FIN_KAFKA_TOPIC": settings.kafka,
    "FIN_KAFKA_PARTITIONS": settings.kafka,
    "FIN_KAFKA_REPLICATION_FACTOR": settings.kafka,
    "KAFKA_SECURITY_PROTOCOL": settings.kafka,
    "KAFKA_BOOTSTRAP_SERVERS": settings.kafka,
    "KAFKA_SASL_MECHANISM": settings.kafka,
    "ELASTICSEARCH_URL": settings.elasticsearch,
    **{
        name: settings.simulator
        for name in settings.variables()
        if name.startswith("FIN_SIMULATOR_")
    },
}

# Classes of bad values, each with an example; which class applies depends on the kind.
NOT_ASCII = "١"  # Arabic-Indic one: Python's int() and float() read it as 1
INFINITE = "inf"
OVERFLOW = "1e309"  # parses to inf
NAN = "nan"
UNDERFLOW = "1e-300"  # "positive", but no rate or interval means that
NEGATIVE = "-1"
ZERO = "0"
WORDS = "fast"
FRACTION = "2.5"
GROUPED = "1_000"  # Python and pydantic read it as 1000

RATE_OR_INTERVAL = [NOT_ASCII, INFINITE, OVERFLOW, NAN, UNDERFLOW, NEGATIVE, ZERO, WORDS, GROUPED]
ZERO_OR_INTERVAL = [NOT_ASCII, INFINITE, OVERFLOW, NAN, UNDERFLOW, NEGATIVE, WORDS, GROUPED]
WHOLE = [NOT_ASCII, INFINITE, OVERFLOW, NAN, UNDERFLOW, NEGATIVE, ZERO, WORDS, FRACTION, GROUPED]
URL = ["ftp://example.com/x", "example.com/hook", "https://"]

BAD_VALUES = {
    "FIN_SIMULATOR_RATE": RATE_OR_INTERVAL,
    "FIN_SIMULATOR_STALE_AFTER_S": RATE_OR_INTERVAL,
    "FIN_SIMULATOR_HEARTBEAT_S": RATE_OR_INTERVAL,
    "FIN_SIMULATOR_START_GRACE_S": ZERO_OR_INTERVAL,
    "FIN_SIMULATOR_BACKOFF_BASE_S": ZERO_OR_INTERVAL,
    "FIN_SIMULATOR_BACKOFF_CAP_S": ZERO_OR_INTERVAL,
    "FIN_SIMULATOR_HEALTHY_RUN_S": ZERO_OR_INTERVAL,
    "FIN_SIMULATOR_RUN_LIFETIME_S": ZERO_OR_INTERVAL,
    "FIN_SIMULATOR_SHARDS": WHOLE,
    "FIN_SIMULATOR_SENSOR_INTERVAL_S": WHOLE,
    "FIN_KAFKA_PARTITIONS": WHOLE,
    "FIN_KAFKA_REPLICATION_FACTOR": WHOLE,
    "ALPHAVANTAGE_REQUESTS_PER_MINUTE": RATE_OR_INTERVAL,
    "ALPHAVANTAGE_BASE_URL": URL,
    "FIN_SOURCE_GIT_URL": URL,
    "FIN_ALERT_WEBHOOK_URL": URL,
    "ELASTICSEARCH_URL": [*URL, "https://es01:9200,es02:9200"],
    "FIN_SYMBOLS": ["TSLA,../x", "TSLA,١", "A" * 300],
    "FIN_KAFKA_TOPIC": ["a topic", "..", "t" * 250, "tópico"],
    "KAFKA_SECURITY_PROTOCOL": ["SASL_SSLX", "sasl_ssl", "TLS"],
    "KAFKA_BOOTSTRAP_SERVERS": ["kafka:99999", "kafka:x", "a b:9092", "kafka:9092,"],
    "KAFKA_SASL_MECHANISM": ["SCRAM-SHA-1", "GSSAPI", "plain"],
}

CASES = [(variable, value) for variable, values in BAD_VALUES.items() for value in values]


def test_every_validated_variable_has_bad_values_here():
    """A variable added to settings.py with a range gets its bad values in this table."""
    ranged = {v for v, accepts in settings.variables().items() if "ASCII digits" in accepts}
    assert ranged <= BAD_VALUES.keys()
    assert set(LOADERS) == BAD_VALUES.keys()


@pytest.mark.parametrize(("variable", "value"), CASES)
def test_a_bad_value_is_refused_naming_the_variable_and_the_range(variable, value):
    with pytest.raises(settings.SettingsError) as refused:
        LOADERS[variable]({variable: value})
    message = str(refused.value)
    assert refused.value.variables == (variable,)
    assert message.startswith(variable) and "is refused" in message
    assert f"expected {settings.variables()[variable]}" in message
    if variable in settings.SECRET_VARIABLES:
        assert value not in message  # such values may hold a token
    else:
        assert repr(value[: settings.SHOWN_CHARACTERS]) in message
    assert len(message) < 1000
    assert "pydantic" not in message and "validation error" not in message


@pytest.mark.parametrize(
    ("variable", "text", "value"),
    [
        ("FIN_SIMULATOR_RATE", " 2.5 ", 2.5),
        ("FIN_SIMULATOR_RATE", "1e3", 1000.0),
        ("FIN_SIMULATOR_RATE", "", 1.0),  # blank: the default
        ("FIN_SIMULATOR_RATE", "   ", 1.0),
        ("FIN_SIMULATOR_BACKOFF_BASE_S", "0", 0.0),
        ("FIN_SIMULATOR_SHARDS", "3", 3),
        ("FIN_SIMULATOR_SENSOR_INTERVAL_S", "1", 1),
        ("FIN_KAFKA_REPLICATION_FACTOR", "3", 3),
        ("ALPHAVANTAGE_REQUESTS_PER_MINUTE", "75", 75.0),
    ],
)
def test_good_values_are_read(variable, text, value):
    loaded = LOADERS[variable]({variable: text})
    field = next(
        name
        for name, info in type(loaded).model_fields.items()
        if info.validation_alias == variable
    )
    assert getattr(loaded, field) == value


def test_secrets_never_reach_the_error_text():
    token = "xoxb-TOKEN-1234567890"
    environ = {
        "FIN_ALERT_WEBHOOK_URL": f"hooks.example.com/services/{token}",
        "ELASTICSEARCH_URL": f"https://elastic:{token}@es01:9200,ftp://es02",
    }
    for loader in (settings.alerts, settings.elasticsearch):
        with pytest.raises(settings.SettingsError) as refused:
            loader(environ)
        assert token not in str(refused.value) and token not in repr(refused.value)
    loaded = settings.alerts({"FIN_ALERT_WEBHOOK_URL": f"https://hooks.example.com/{token}"})
    assert token not in repr(loaded) and token not in str(loaded)


def test_settings_are_read_when_asked_not_frozen_at_import(monkeypatch):
    monkeypatch.setenv("FIN_SIMULATOR_RATE", "7")
    assert settings.simulator().rate_per_s == 7.0
    monkeypatch.setenv("FIN_SIMULATOR_RATE", "nan")
    with pytest.raises(settings.SettingsError, match="FIN_SIMULATOR_RATE='nan'"):
        settings.simulator()


# --- nothing else reads the environment --------------------------------------------------

ENV_FUNCTIONS = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def environment_reads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in ENV_FUNCTIONS:
            found.append(f"{path.name}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module in ("os", "posix"):
            names = {alias.name for alias in node.names} & ENV_FUNCTIONS
            found += [f"{path.name}:{node.lineno}: from {node.module} import {n}" for n in names]
        elif isinstance(node, ast.Attribute) and node.attr == "get_value":
            found.append(f"{path.name}:{node.lineno}: EnvVar.get_value")  # reads os.environ
    return found


def test_only_the_settings_module_reads_the_environment():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert PACKAGE / "lib/settings.py" in modules and len(modules) > 40
    offenders = [
        hit
        for module in modules
        if module != PACKAGE / "lib/settings.py"
        for hit in environment_reads(module)
    ]
    assert offenders == []
    assert environment_reads(PACKAGE / "lib/settings.py")  # the check does see reads


# --- secrets stay EnvVars in the UI ---------------------------------------------------------


def test_secrets_are_env_vars_and_other_settings_validated_values(monkeypatch):
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "KEY123")
    monkeypatch.setenv("ALPHAVANTAGE_REQUESTS_PER_MINUTE", "75")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "kafka-pw")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "producer")
    monkeypatch.setenv("FIN_KAFKA_PARTITIONS", "6")
    monkeypatch.setenv("ELASTICSEARCH_PASSWORD", "es-pw")
    alpha_vantage = alpha_vantage_from_env()
    kafka = kafka_from_env()
    elasticsearch = elasticsearch_from_env()
    assert isinstance(alpha_vantage, AlphaVantageResource)
    assert isinstance(alpha_vantage.api_key, dg.EnvVar)
    assert alpha_vantage.api_key == "ALPHAVANTAGE_API_KEY"
    assert alpha_vantage.requests_per_minute == 75.0
    assert isinstance(kafka, KafkaProducerResource) and kafka.partitions == 6
    assert isinstance(kafka.sasl_password, dg.EnvVar)
    assert kafka.sasl_password == "KAFKA_SASL_PASSWORD"
    assert isinstance(kafka.sasl_username, dg.EnvVar)
    assert isinstance(elasticsearch.password, dg.EnvVar)
    assert elasticsearch.password == "ELASTICSEARCH_PASSWORD"


# --- a bad value in one flow never stops another -------------------------------------------


def test_bad_flow_settings_give_resources_that_fail_naming_the_variable(monkeypatch):
    monkeypatch.setenv("ALPHAVANTAGE_REQUESTS_PER_MINUTE", "inf")
    monkeypatch.setenv("FIN_KAFKA_PARTITIONS", NOT_ASCII)
    monkeypatch.setenv("ELASTICSEARCH_URL", "ftp://es")
    for key, resource, variable in (
        ("alpha_vantage", alpha_vantage_from_env(), "ALPHAVANTAGE_REQUESTS_PER_MINUTE"),
        ("kafka", kafka_from_env(), "FIN_KAFKA_PARTITIONS"),
        ("elasticsearch", elasticsearch_from_env(), "ELASTICSEARCH_URL"),
    ):
        assert isinstance(resource, dg.ResourceDefinition)
        assert variable in resource.description
        with pytest.raises(dg.DagsterResourceFunctionError) as failed:
            dg.build_resources({"resource": resource}).__enter__()
        assert str(failed.value.__cause__).startswith(f"resource {key!r} cannot start: {variable}")


def failure_texts(result: dg.ExecuteInProcessResult) -> str:
    texts = []
    for event in result.all_events:
        data = event.event_specific_data
        error = getattr(data, "error", None)
        while error is not None:
            texts.append(error.message)
            error = error.cause
        failure = getattr(data, "user_failure_data", None)
        if failure is not None and failure.description:
            texts.append(failure.description)
    return "\n".join(texts)


def simulator_run(tmp_path: Path) -> dg.ExecuteInProcessResult:
    resources = {"settings": settings_from_env(), "kafka": kafka_from_env()}
    with dg.DagsterInstance.ephemeral() as instance:
        return transaction_simulator_job.execute_in_process(
            instance=instance,
            resources=resources,
            raise_on_error=False,
            run_config={"ops": {"simulate_transactions": {"config": {"max_duration_s": 1}}}},
        )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FIN_SIMULATOR_RATE", NAN),
        ("FIN_SIMULATOR_RATE", INFINITE),
        ("FIN_SIMULATOR_RATE", UNDERFLOW),
        ("FIN_SIMULATOR_STALE_AFTER_S", NAN),
        ("FIN_SIMULATOR_SHARDS", NOT_ASCII),
        ("FIN_KAFKA_PARTITIONS", NOT_ASCII),
    ],
)
def test_a_launched_simulator_run_fails_naming_the_variable(tmp_path, monkeypatch, variable, value):
    monkeypatch.setenv("FIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")  # never reached
    monkeypatch.setenv(variable, value)
    result = simulator_run(tmp_path)
    assert not result.success
    texts = failure_texts(result)
    assert f"{variable}={value!r} is refused" in texts
    assert "ValidationError" not in texts and "validation error" not in texts


def fin_assets_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALPHAVANTAGE_", "FIN_", "KAFKA_", "ELASTICSEARCH_"))
    }
    environment.pop("DAGSTER_HOME", None)
    environment.update(FIN_DATA_DIR=str(tmp_path / "data"), **variables)
    return environment


# Loads the code location as Dagster does (a fresh interpreter; `defs` is built when loaded),
# then evaluates the simulator sensor once, as the daemon would: once per broken variable, each
# set alone, in one interpreter (one start-up instead of one per case).
LOAD_AND_TICK = """
import json, os, sys
import dagster as dg
from fin_assets.definitions import build_definitions
from fin_assets.defs.resources.settings import PipelineSettings

outcomes = {}
for variable, value in json.loads(sys.argv[1]).items():
    os.environ[variable] = value
    defs = build_definitions()
    outcome = {"jobs": sorted(job.name for job in defs.jobs)}
    sensor = defs.resolve_sensor_def("transaction_simulator_sensor")
    outcome["interval"] = sensor.minimum_interval_seconds
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"settings": PipelineSettings(symbols="TSLA")}
        )
        try:
            sensor(context)
            outcome["tick"] = "ok"
        except Exception as exc:
            outcome["tick"] = f"{type(exc).__name__}: {exc}"
    del os.environ[variable]
    outcomes[variable] = outcome
print(json.dumps(outcomes))
"""

SIMULATOR_VARIABLES = {
    "FIN_SIMULATOR_RATE": NAN,
    "FIN_SIMULATOR_SHARDS": NOT_ASCII,
    "FIN_SIMULATOR_STALE_AFTER_S": NAN,
    "FIN_SIMULATOR_START_GRACE_S": INFINITE,
    "FIN_SIMULATOR_HEARTBEAT_S": OVERFLOW,
    "FIN_SIMULATOR_BACKOFF_BASE_S": NAN,
    "FIN_SIMULATOR_BACKOFF_CAP_S": OVERFLOW,
    "FIN_SIMULATOR_HEALTHY_RUN_S": INFINITE,
    "FIN_SIMULATOR_RUN_LIFETIME_S": NAN,
    "FIN_SIMULATOR_SENSOR_INTERVAL_S": INFINITE,
    "FIN_KAFKA_PARTITIONS": NOT_ASCII,
}


@pytest.fixture(scope="module")
def broken_simulator_outcomes(tmp_path_factory) -> dict:
    tmp_path = tmp_path_factory.mktemp("broken_simulator")
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_TICK, json.dumps(SIMULATOR_VARIABLES)],
        env=fin_assets_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# One worker for all of them: the module fixture loads the location once, in one interpreter.
@pytest.mark.xdist_group("broken_simulator_location")
@pytest.mark.parametrize(("variable", "value"), SIMULATOR_VARIABLES.items())
def test_the_location_loads_with_a_broken_simulator_variable_and_the_tick_names_it(
    broken_simulator_outcomes, variable, value
):
    outcome = broken_simulator_outcomes[variable]
    assert "daily_batch_job" in outcome["jobs"]
    assert outcome["interval"] == settings.DEFAULT_SENSOR_INTERVAL_S
    assert outcome["tick"].startswith("SettingsError: transaction_simulator_sensor: ")
    assert f"{variable}={value!r} is refused" in outcome["tick"]


def run_batch_cli(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fin_assets.cli", "batch"],
        env=fin_assets_env(tmp_path, FIN_SYMBOLS="TSLA", **variables),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )


def test_the_batch_materialises_while_every_other_flow_setting_is_broken(tmp_path):
    """`fin-assets batch` on the local stand-in, with every simulator, Kafka and Elasticsearch
    variable unusable at once."""
    broken = {
        **SIMULATOR_VARIABLES,
        "FIN_KAFKA_REPLICATION_FACTOR": "0",
        "FIN_KAFKA_TOPIC": "a topic",
        "ELASTICSEARCH_URL": "ftp://es",
        "FIN_SOURCE_GIT_URL": "not a url",  # cosmetic: local source links instead
    }
    done = run_batch_cli(tmp_path, **broken)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "batch: OK" in done.stdout
    csv = pd.read_csv(tmp_path / "data" / "Datos_financieros.csv")
    assert set(csv["simbolo"]) == {"TSLA"} and len(csv) == 100


@pytest.mark.parametrize(
    ("variable", "value"),
    [("ALPHAVANTAGE_REQUESTS_PER_MINUTE", NOT_ASCII), ("ALPHAVANTAGE_BASE_URL", "ftp://x")],
)
def test_the_batch_cli_refuses_its_own_bad_setting_by_name(tmp_path, variable, value):
    done = run_batch_cli(tmp_path, **{variable: value})
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"batch: {variable}={value!r} is refused" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "Datos_financieros.csv").exists()


def test_pipeline_settings_resource_takes_the_validated_values(monkeypatch, tmp_path):
    monkeypatch.setenv("FIN_SYMBOLS", " tsla, ibm ")
    monkeypatch.setenv("FIN_DATA_DIR", str(tmp_path))
    resource = settings_from_env()
    assert isinstance(resource, PipelineSettings)
    assert resource.symbol_list == ["TSLA", "IBM"] and resource.data_dir == str(tmp_path)
    monkeypatch.setenv("FIN_SYMBOLS", "TSLA,../x")
    with pytest.raises(settings.SettingsError, match=r"FIN_SYMBOLS='TSLA,\.\./x' is refused"):
        settings_from_env()


def test_a_bad_webhook_url_fails_the_alert_tick_naming_it_not_its_token(
    batch, stand_in, monkeypatch
):
    from dagster._core.events import DagsterEventType

    from fin_assets.defs.batch.alerts import build_failure_sensor

    stand_in.queue("IBM", "daily_quota")
    result = batch.run()
    assert not result.success
    (failure,) = batch.instance.all_logs(result.run_id, of_type=DagsterEventType.RUN_FAILURE)
    monkeypatch.setenv("FIN_ALERT_WEBHOOK_URL", "hooks.example.com/services/T0KEN-42")
    sensor = build_failure_sensor()
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=failure.dagster_event,
        dagster_instance=batch.instance,
        dagster_run=batch.instance.get_run_by_id(result.run_id),
    ).for_run_failure()
    with pytest.raises(settings.SettingsError) as refused:
        sensor(context)
    assert str(refused.value).startswith("FIN_ALERT_WEBHOOK_URL (value not shown")
    assert "T0KEN-42" not in str(refused.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("FIN_KAFKA_PARTITIONS", NOT_ASCII), ("KAFKA_BOOTSTRAP_SERVERS", "kafka:99999")],
)
def test_simulate_refuses_a_bad_kafka_setting_by_name_before_connecting(tmp_path, variable, value):
    done = subprocess.run(
        [sys.executable, "-m", "fin_assets.cli", "simulate", "--duration", "30"],
        env=fin_assets_env(tmp_path, **{variable: value}),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{variable}={value!r} is refused" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "logs_transacciones.log").exists()
