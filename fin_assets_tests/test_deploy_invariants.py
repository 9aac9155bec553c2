"""Every YAML under deploy/ parses, and the files agree with each other and with the code:
topic partitions >= simulator shards and >= Logstash consumers, replication factor 3 and
min.insync.replicas 2, three master-eligible Elasticsearch nodes, the topic / index names of
fin_assets/lib/config.py, the index templates and roles of logstash/ and docker/setup/, and the
concurrency limits of fin_assets/cli/instance.py. Each check is also run on a broken copy."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from fin_assets.cli import instance
from fin_assets.defs.resources.kafka import topic_config_problems
from fin_assets.lib import config
from fin_assets_tests.helpers.paths import REPO

DEPLOY = REPO / "deploy"
HELM_VALUES = DEPLOY / "helm" / "dagster" / "values.yaml"


def load_manifests() -> dict[str, list[dict]]:
    """Kubernetes objects of deploy/ by kind (every YAML file must parse)."""
    by_kind: dict[str, list[dict]] = {}
    for path in sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]):
        if path == HELM_VALUES:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            assert "kind" in doc, f"{path}: a document without kind"
            by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


def kafka_input_consumer_threads(pipeline_text: str) -> int:
    """consumer_threads of the pipeline's kafka input (the plugin default when not set)."""
    block = re.search(r"\bkafka\s*\{(.*?)\n  \}", pipeline_text, re.S)
    assert block, "the pipeline has no kafka input"
    set_here = re.search(r"consumer_threads\s*=>\s*(\d+)", block.group(1))
    if set_here:
        return int(set_here.group(1))
    options = json.loads((REPO / "logstash" / "plugin_options.json").read_text())
    return int(options["plugins"]["input/kafka"]["options"]["consumer_threads"]["default"])


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def camel_keys(value):
    """Instance-config keys (snake_case) as the chart spells them (camelCase)."""
    if isinstance(value, dict):
        return {_camel(k): camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel_keys(v) for v in value]
    return value


def _one(manifests: dict, kind: str) -> dict:
    (item,) = manifests[kind]
    return item


def _config_map_data(manifests: dict, name: str) -> dict:
    return next(c for c in manifests["ConfigMap"] if c["metadata"]["name"] == name)["data"]


def kafka_problems(manifests: dict, values: dict, pipeline_text: str) -> list[str]:
    problems = []
    kafka = _one(manifests, "Kafka")
    cluster = kafka["metadata"]["name"]
    if "zookeeper" in kafka["spec"]:
        problems.append("Kafka: ZooKeeper configured, KRaft expected")

    def of_cluster(kind: str) -> list[dict]:
        return [
            item
            for item in manifests[kind]
            if item["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        ]

    pools = of_cluster("KafkaNodePool")
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
    if brokers < 3:
        problems.append(f"Kafka: {brokers} brokers, need 3")
    if controllers < 3 or controllers % 2 == 0:
        problems.append(f"Kafka: {controllers} KRaft controllers, need an odd number >= 3")
    broker_config = kafka["spec"]["kafka"]["config"]
    if broker_config.get("default.replication.factor") != 3:
        problems.append("Kafka: default.replication.factor must be 3")
    if broker_config.get("min.insync.replicas") != 2:
        problems.append("Kafka: min.insync.replicas must be 2")

    env = values["dagster-user-deployments"]["deployments"][0]["env"]
    topics = of_cluster("KafkaTopic")
    by_name = {t["spec"].get("topicName", t["metadata"]["name"]): t for t in topics}
    topic = by_name.get(config.DEFAULT_KAFKA_TOPIC)
    if topic is None:
        return [*problems, f"KafkaTopic: no topic {config.DEFAULT_KAFKA_TOPIC} (config.py)"]
    if env["FIN_KAFKA_TOPIC"] != config.DEFAULT_KAFKA_TOPIC:
        problems.append(f"Helm values: FIN_KAFKA_TOPIC is not {config.DEFAULT_KAFKA_TOPIC}")
    spec = topic["spec"]
    if spec["replicas"] != 3:
        problems.append(f"KafkaTopic: replicas {spec['replicas']}, must be 3")
    if spec.get("config", {}).get("min.insync.replicas", 2) != 2:
        problems.append("KafkaTopic: min.insync.replicas must be 2")
    # The simulator refuses a topic that would delete the stream (resources/kafka.py).
    topic_config = {name: str(value) for name, value in spec.get("config", {}).items()}
    problems.extend(
        f"KafkaTopic: {problem}"
        for problem in topic_config_problems(config.DEFAULT_KAFKA_TOPIC, topic_config)
    )
    shards = int(env["FIN_SIMULATOR_SHARDS"])
    if spec["partitions"] < shards:
        problems.append(f"KafkaTopic: {spec['partitions']} partitions < {shards} simulator shards")
    logstash = _one(manifests, "Logstash")
    consumers = logstash["spec"]["count"] * kafka_input_consumer_threads(pipeline_text)
    if spec["partitions"] < consumers:
        problems.append(
            f"KafkaTopic: {spec['partitions']} partitions < {consumers} Logstash consumers"
        )
    if int(env["FIN_KAFKA_PARTITIONS"]) != spec["partitions"]:
        problems.append("Helm values: FIN_KAFKA_PARTITIONS differs from the KafkaTopic")

    users = {u["metadata"]["name"]: u for u in manifests["KafkaUser"]}
    producer = users.get(env["KAFKA_SASL_USERNAME"])
    if producer is None:
        problems.append(f"KafkaUser: no user {env['KAFKA_SASL_USERNAME']} (KAFKA_SASL_USERNAME)")
    else:
        if producer["spec"]["authentication"]["type"] != "scram-sha-512":
            problems.append("KafkaUser: the simulator's user must be scram-sha-512")
        writes = [
            acl
            for acl in producer["spec"]["authorization"]["acls"]
            if acl["resource"].get("name") == config.DEFAULT_KAFKA_TOPIC
            and "Write" in acl["operations"]
        ]
        if not writes:
            problems.append("KafkaUser: the simulator's user cannot write the topic")
        described = [
            acl
            for acl in producer["spec"]["authorization"]["acls"]
            if acl["resource"].get("name") == config.DEFAULT_KAFKA_TOPIC
            and "DescribeConfigs" in acl["operations"]
        ]
        if not described:  # the simulator checks the topic's configuration before producing
            problems.append("KafkaUser: the simulator's user cannot DescribeConfigs the topic")
    security = (env["KAFKA_SECURITY_PROTOCOL"], env["KAFKA_SASL_MECHANISM"])
    if security != ("SASL_SSL", "SCRAM-SHA-512"):
        problems.append("Helm values: Kafka security must be SASL_SSL / SCRAM-SHA-512")
    bootstrap = f"{cluster}-kafka-bootstrap."
    for where, servers in (
        ("Helm values", env["KAFKA_BOOTSTRAP_SERVERS"]),
        ("Logstash", _env(logstash)["KAFKA_BOOTSTRAP_SERVERS"]),
    ):
        if not servers.startswith(bootstrap):
            problems.append(f"{where}: KAFKA_BOOTSTRAP_SERVERS is not the {cluster} bootstrap")
    if _env(logstash)["FIN_KAFKA_TOPIC"] != config.DEFAULT_KAFKA_TOPIC:
        problems.append("Logstash: FIN_KAFKA_TOPIC differs from fin_assets/lib/config.py")
    return problems


def _env(logstash: dict) -> dict[str, str]:
    (container,) = logstash["spec"]["podTemplate"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def _repo_template(name: str) -> dict:
    return json.loads((REPO / "logstash" / "templates" / f"{name}.json").read_text())


def elasticsearch_problems(manifests: dict, values: dict) -> list[str]:
    problems = []
    cluster = _one(manifests, "Elasticsearch")
    masters = sum(
        node_set["count"]
        for node_set in cluster["spec"]["nodeSets"]
        if "master" in node_set.get("config", {}).get("node.roles", ["master"])
    )
    if masters != 3:
        problems.append(f"Elasticsearch: {masters} master-eligible nodes, need 3")
    http = f"https://{cluster['metadata']['name']}-es-http."
    env = values["dagster-user-deployments"]["deployments"][0]["env"]
    for where, url in (
        ("Helm values ELASTICSEARCH_URL", env["ELASTICSEARCH_URL"]),
        ("Logstash ELASTICSEARCH_HOSTS", _env(_one(manifests, "Logstash"))["ELASTICSEARCH_HOSTS"]),
    ):
        if not url.startswith(http):
            problems.append(f"{where} is not the {cluster['metadata']['name']} service")

    data = _config_map_data(manifests, "fin-search-setup")
    batch = json.loads(data["template_finanzas_batch.json"])
    nrt = json.loads(data["template_transacciones_nrt.json"])
    ilm = json.loads(data["ilm_transacciones_nrt.json"])
    bootstrap = json.loads(data["bootstrap_transacciones_nrt.json"])
    if batch["index_patterns"] != [config.BATCH_INDEX]:
        problems.append(f"template finanzas_batch: index_patterns not [{config.BATCH_INDEX}]")
    if nrt["index_patterns"] != [f"{config.TRANSACTIONS_INDEX}-*"]:
        problems.append("template transacciones_nrt: not the rollover indices")
    for name, body in (("finanzas_batch", batch), ("transacciones_nrt", nrt)):
        if body["template"].get("mappings") != _repo_template(name)["template"]["mappings"]:
            problems.append(f"template {name}: mappings differ from logstash/templates/{name}.json")
        if body["template"]["settings"].get("number_of_replicas", 0) < 1:
            problems.append(f"template {name}: no replica on a 3-node cluster")
    settings = nrt["template"]["settings"]
    if settings.get("index.lifecycle.rollover_alias") != config.TRANSACTIONS_INDEX:
        problems.append("template transacciones_nrt: rollover alias is not the index name")
    if "rollover" not in ilm["policy"]["phases"]["hot"]["actions"]:
        problems.append("ILM transacciones_nrt: no rollover")
    if bootstrap["aliases"] != {config.TRANSACTIONS_INDEX: {"is_write_index": True}}:
        problems.append("bootstrap index: not the write alias transacciones_nrt")

    roles_secret = next(
        s for s in manifests["Secret"] if s["metadata"]["name"] == "fin-search-roles"
    )
    roles = yaml.safe_load(roles_secret["stringData"]["roles.yml"])
    for name in ("logstash_writer", "dagster_reader"):
        repo_role = json.loads((REPO / "docker" / "setup" / "roles" / f"{name}.json").read_text())
        role = roles.get(f"fin_{name}")
        if role is None or role["cluster"] != repo_role["cluster"]:
            problems.append(f"role fin_{name}: differs from docker/setup/roles/{name}.json")
            continue
        for ours, theirs in zip(role["indices"], repo_role["indices"], strict=True):
            if ours["privileges"] != theirs["privileges"] or not set(theirs["names"]) <= set(
                ours["names"]
            ):
                problems.append(f"role fin_{name}: differs from docker/setup/roles/{name}.json")
    return problems


def dagster_problems(values: dict) -> list[str]:
    """The chart's concurrency block and run queue say what fin_assets/cli/instance.py says."""
    problems = []
    local = yaml.safe_load(instance.INSTANCE_CONFIG)
    docker = yaml.safe_load((REPO / "docker" / "dagster" / "dagster.yaml").read_text())
    chart = values["concurrency"]
    if not chart.get("enabled"):
        problems.append("Helm values: concurrency block disabled")
    if chart["pools"] != camel_keys(local["concurrency"]["pools"]):
        problems.append("Helm values: concurrency.pools differ from fin_assets/cli/instance.py")
    limits = camel_keys(local["concurrency"]["runs"]["tag_concurrency_limits"])
    if chart["runs"]["tagConcurrencyLimits"] != limits:
        problems.append(
            "Helm values: tag concurrency limits differ from fin_assets/cli/instance.py"
        )
    docker_runs = docker["concurrency"]["runs"]
    if chart["runs"].get("maxConcurrentRuns") != docker_runs["max_concurrent_runs"]:
        problems.append("Helm values: maxConcurrentRuns differs from docker/dagster/dagster.yaml")
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    if coordinator.get("type") != "QueuedRunCoordinator" or not coordinator.get("enabled"):
        problems.append("Helm values: the run queue (QueuedRunCoordinator) is off")
    queued = coordinator.get("config", {}).get("queuedRunCoordinator", {})
    if queued.get("maxConcurrentRuns") is not None or queued.get("tagConcurrencyLimits"):
        problems.append("Helm values: run limits set twice (Dagster refuses both at once)")
    if values["dagsterDaemon"]["runMonitoring"].get("maxResumeRunAttempts") != 0:
        problems.append("Helm values: run monitoring would resume the simulator")
    if values["runLauncher"]["type"] != "K8sRunLauncher":
        problems.append("Helm values: not the K8sRunLauncher")
    return problems


def logstash_problems(manifests: dict) -> list[str]:
    problems = []
    logstash = _one(manifests, "Logstash")
    pod = logstash["spec"]["podTemplate"]["spec"]
    config_volumes = {v["name"] for v in pod["volumes"] if "configMap" in v}
    (container,) = pod["containers"]
    pipeline_dirs = {
        m["mountPath"] for m in container["volumeMounts"] if m["name"] in config_volumes
    }
    repo_pipelines = yaml.safe_load((REPO / "logstash" / "config" / "pipelines.yml").read_text())
    ours = {p["pipeline.id"]: p for p in logstash["spec"]["pipelines"]}
    for theirs in repo_pipelines:
        mine = ours.get(theirs["pipeline.id"])
        if mine is None:
            problems.append(f"Logstash: pipeline {theirs['pipeline.id']} missing")
            continue
        if Path(mine["path.config"]).name != Path(theirs["path.config"]).name:
            problems.append(f"Logstash: pipeline {theirs['pipeline.id']} runs another file")
        if str(Path(mine["path.config"]).parent) not in pipeline_dirs:
            problems.append(f"Logstash: pipeline {theirs['pipeline.id']} is not on a mounted dir")
        if mine.get("queue.type") != "persisted":
            problems.append(f"Logstash: pipeline {theirs['pipeline.id']} without persistent queue")
    return problems


# Strimzi listener (tls, authentication.type) -> the client's security.protocol and SASL mechanism.
_LISTENER_SECURITY = {
    (True, "scram-sha-512"): ("SASL_SSL", "SCRAM-SHA-512"),
    (False, "scram-sha-512"): ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
    (True, None): ("SSL", None),
    (False, None): ("PLAINTEXT", None),
}
_SECRET_ENV = ("KAFKA_SASL_PASSWORD", "KAFKA_SSL_TRUSTSTORE_PASSWORD")


def logstash_kafka_security_problems(manifests: dict, pipeline_text: str) -> list[str]:
    """Logstash's env gives the kafka input the protocol and mechanism the Strimzi listener it
    connects to requires, as a KafkaUser that may read the topic; secrets from Secrets."""
    problems = []
    logstash = _one(manifests, "Logstash")
    (container,) = logstash["spec"]["podTemplate"]["spec"]["containers"]
    entries = {e["name"]: e for e in container["env"]}
    env = _env(logstash)
    kafka_input = pipeline_text[pipeline_text.index("kafka {") :]
    for option in ("security_protocol", "sasl_mechanism", "ssl_truststore_location"):
        variable = f"KAFKA_{option.upper()}"
        if not re.search(rf'{option} => "\$\{{{variable}[:}}]', kafka_input):
            problems.append(f"pipeline: the kafka input's {option} does not read {variable}")
    port = int(env["KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])
    listeners = [
        li for li in _one(manifests, "Kafka")["spec"]["kafka"]["listeners"] if li["port"] == port
    ]
    if not listeners:
        return [*problems, f"Logstash: no Kafka listener on port {port}"]
    (listener,) = listeners
    auth = (listener.get("authentication") or {}).get("type")
    wanted = _LISTENER_SECURITY.get((bool(listener.get("tls")), auth))
    if wanted is None:
        return [*problems, f"Logstash: listener {listener['name']} needs {auth}: not supported"]
    protocol, mechanism = wanted
    got = env.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    if got != protocol:
        problems.append(
            f"Logstash: KAFKA_SECURITY_PROTOCOL {got}, listener {listener['name']} needs {protocol}"
        )
    if mechanism and env.get("KAFKA_SASL_MECHANISM") != mechanism:
        problems.append(
            f"Logstash: KAFKA_SASL_MECHANISM {env.get('KAFKA_SASL_MECHANISM')}, "
            f"listener {listener['name']} needs {mechanism}"
        )
    if mechanism:
        users = {u["metadata"]["name"]: u for u in manifests["KafkaUser"]}
        user = users.get(env.get("KAFKA_SASL_USERNAME"))
        if user is None or user["spec"]["authentication"]["type"] != auth:
            problems.append(f"Logstash: KAFKA_SASL_USERNAME is no {auth} KafkaUser")
        else:
            reads = {
                (acl["resource"]["type"], acl["resource"].get("name"))
                for acl in user["spec"]["authorization"]["acls"]
                if "Read" in acl["operations"]
            }
            group = (
                env.get("LOGSTASH_KAFKA_GROUP_ID")
                or re.search(r'group_id => "\$\{LOGSTASH_KAFKA_GROUP_ID:([^}]*)\}"', kafka_input)[1]
            )
            for resource in (("topic", env["FIN_KAFKA_TOPIC"]), ("group", group)):
                if resource not in reads:
                    problems.append(f"KafkaUser {user['metadata']['name']}: cannot read {resource}")
    for name in _SECRET_ENV:
        entry = entries.get(name)
        if entry is not None and "secretKeyRef" not in entry.get("valueFrom", {}):
            problems.append(f"Logstash: {name} must come from a Secret (secretKeyRef)")
    if protocol in ("SSL", "SASL_SSL"):
        location = env.get("KAFKA_SSL_TRUSTSTORE_LOCATION") or ""
        secret_volumes = {
            v["name"] for v in logstash["spec"]["podTemplate"]["spec"]["volumes"] if "secret" in v
        }
        mounted = [m["mountPath"] for m in container["volumeMounts"] if m["name"] in secret_volumes]
        if not any(location.startswith(path.rstrip("/") + "/") for path in mounted):
            problems.append("Logstash: KAFKA_SSL_TRUSTSTORE_LOCATION is on no mounted Secret")
    return problems


def claim_of(volume: dict) -> str:
    return volume["persistentVolumeClaim"]["claimName"]


def volume_problems(manifests: dict, values: dict) -> list[str]:
    """The data volume the run pods write and Logstash reads is one ReadWriteMany claim."""
    claims = {c["metadata"]["name"]: c for c in manifests.get("PersistentVolumeClaim", [])}
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    logstash = _one(manifests, "Logstash")["spec"]["podTemplate"]["spec"]
    sources = (("Helm values", deployment["volumes"]), ("Logstash", logstash["volumes"]))
    used = {
        where: {claim_of(v) for v in vols if "persistentVolumeClaim" in v}
        for where, vols in sources
    }
    problems = []
    if used["Helm values"] != used["Logstash"]:
        problems.append("Logstash does not mount the batch's data volume")
    for name in used["Helm values"]:
        claim = claims.get(name)
        if claim is None:
            problems.append(f"PersistentVolumeClaim {name}: not in deploy/")
        elif claim["spec"]["accessModes"] != ["ReadWriteMany"]:
            problems.append(f"PersistentVolumeClaim {name}: not ReadWriteMany")
    return problems


def all_problems(manifests: dict, values: dict, pipeline_text: str) -> list[str]:
    return [
        *volume_problems(manifests, values),
        *kafka_problems(manifests, values, pipeline_text),
        *elasticsearch_problems(manifests, values),
        *dagster_problems(values),
        *logstash_problems(manifests),
        *logstash_kafka_security_problems(manifests, pipeline_text),
    ]


@pytest.fixture(scope="module")
def current() -> tuple[dict, dict, str]:
    pipeline = (REPO / "logstash" / "pipeline" / "LOGSTASH_UNIFICADO_FIN_TRANS.conf").read_text()
    return load_manifests(), yaml.safe_load(HELM_VALUES.read_text()), pipeline


def test_every_file_parses_and_the_expected_objects_exist(current):
    manifests, _, _ = current
    for kind in ("Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Elasticsearch", "Logstash"):
        assert manifests.get(kind), f"no {kind} in deploy/"


def test_deploy_files_agree(current):
    assert all_problems(*current) == []


def test_consumer_threads_read_from_the_pipeline():
    assert kafka_input_consumer_threads('input {\n  kafka {\n    topics => ["t"]\n  }\n}') == 1
    text = "input {\n  kafka {\n    consumer_threads => 4\n  }\n}"
    assert kafka_input_consumer_threads(text) == 4


def _kind(manifests, kind, name=None):
    items = manifests[kind]
    return items[0] if name is None else next(i for i in items if i["metadata"]["name"] == name)


def _logstash_env(manifests, name) -> dict:
    (container,) = manifests["Logstash"][0]["spec"]["podTemplate"]["spec"]["containers"]
    return next(e for e in container["env"] if e["name"] == name)


def _set_env(values, name, value):
    values["dagster-user-deployments"]["deployments"][0]["env"][name] = value


BREAKS: dict[str, tuple[Callable, str]] = {
    "fewer partitions than shards": (
        lambda m, v, p: _kind(m, "KafkaTopic")["spec"].update(partitions=2),
        "2 partitions < 3 simulator shards",
    ),
    "more shards than partitions": (
        lambda m, v, p: _set_env(v, "FIN_SIMULATOR_SHARDS", "8"),
        "6 partitions < 8 simulator shards",
    ),
    "more Logstash consumers than partitions": (
        lambda m, v, p: _kind(m, "Logstash")["spec"].update(count=7),
        "6 partitions < 7 Logstash consumers",
    ),
    "consumer threads raised in the pipeline": (
        lambda m, v, p: None,
        "6 partitions < 8 Logstash consumers",
    ),
    "replication factor 2": (
        lambda m, v, p: _kind(m, "Kafka")["spec"]["kafka"]["config"].update(
            {"default.replication.factor": 2}
        ),
        "default.replication.factor must be 3",
    ),
    "min.insync.replicas 1": (
        lambda m, v, p: _kind(m, "Kafka")["spec"]["kafka"]["config"].update(
            {"min.insync.replicas": 1}
        ),
        "min.insync.replicas must be 2",
    ),
    "compacted topic": (
        lambda m, v, p: _kind(m, "KafkaTopic")["spec"]["config"].update(
            {"cleanup.policy": "compact"}
        ),
        "topic transacciones_financieras: cleanup.policy=compact",
    ),
    "topic retention of a minute": (
        lambda m, v, p: _kind(m, "KafkaTopic")["spec"]["config"].update({"retention.ms": 60000}),
        "topic transacciones_financieras: retention.ms=60000",
    ),
    "simulator without DescribeConfigs": (
        lambda m, v, p: [
            acl["operations"].remove("DescribeConfigs")
            for user in m["KafkaUser"]
            if user["metadata"]["name"] == "fin-assets-simulator"
            for acl in user["spec"]["authorization"]["acls"]
            if "DescribeConfigs" in acl["operations"]
        ],
        "cannot DescribeConfigs the topic",
    ),
    "topic renamed": (
        lambda m, v, p: _kind(m, "KafkaTopic")["spec"].update(topicName="transacciones"),
        "no topic transacciones_financieras",
    ),
    "two Elasticsearch masters": (
        lambda m, v, p: _kind(m, "Elasticsearch")["spec"]["nodeSets"][0].update(count=2),
        "2 master-eligible nodes, need 3",
    ),
    "template mapping drift": (
        lambda m, v, p: _config_map_data(m, "fin-search-setup").__setitem__(
            "template_finanzas_batch.json",
            json.dumps({"index_patterns": ["finanzas_batch"], "template": {"settings": {}}}),
        ),
        "mappings differ from logstash/templates/finanzas_batch.json",
    ),
    "pool limit differs from the instance": (
        lambda m, v, p: v["concurrency"]["pools"].update(defaultLimit=2),
        "concurrency.pools differ",
    ),
    "data volume not shared": (
        lambda m, v, p: m["PersistentVolumeClaim"][0]["spec"].update(accessModes=["ReadWriteOnce"]),
        "fin-assets-data: not ReadWriteMany",
    ),
    "pipeline path outside the mounted files": (
        lambda m, v, p: m["Logstash"][0]["spec"]["pipelines"][0].update(
            {"path.config": "/usr/share/logstash/pipeline/LOGSTASH_UNIFICADO_FIN_TRANS.conf"}
        ),
        "fin_unificado is not on a mounted dir",
    ),
    "Logstash on PLAINTEXT against the tls listener": (
        lambda m, v, p: _logstash_env(m, "KAFKA_SECURITY_PROTOCOL").update(value="PLAINTEXT"),
        "KAFKA_SECURITY_PROTOCOL PLAINTEXT, listener tls needs SASL_SSL",
    ),
    "Logstash with another SASL mechanism": (
        lambda m, v, p: _logstash_env(m, "KAFKA_SASL_MECHANISM").update(value="SCRAM-SHA-256"),
        "KAFKA_SASL_MECHANISM SCRAM-SHA-256, listener tls needs SCRAM-SHA-512",
    ),
    "Logstash as the simulator's user": (
        lambda m, v, p: _logstash_env(m, "KAFKA_SASL_USERNAME").update(
            value="fin-assets-simulator"
        ),
        "KafkaUser fin-assets-simulator: cannot read ('topic', 'transacciones_financieras')",
    ),
    "Logstash's SCRAM password as a literal": (
        lambda m, v, p: _logstash_env(m, "KAFKA_SASL_PASSWORD").update(
            value="literal", valueFrom={}
        ),
        "KAFKA_SASL_PASSWORD must come from a Secret",
    ),
    "Logstash truststore outside its Secret mount": (
        lambda m, v, p: _logstash_env(m, "KAFKA_SSL_TRUSTSTORE_LOCATION").update(
            value="/tmp/ca.p12"
        ),
        "KAFKA_SSL_TRUSTSTORE_LOCATION is on no mounted Secret",
    ),
    "kafka input without security options": (
        lambda m, v, p: None,
        "the kafka input's security_protocol does not read KAFKA_SECURITY_PROTOCOL",
    ),
    "resume turned on": (
        lambda m, v, p: v["dagsterDaemon"]["runMonitoring"].update(maxResumeRunAttempts=3),
        "would resume the simulator",
    ),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_broken_copies_are_refused(current, name):
    manifests, values, pipeline = copy.deepcopy(current)
    if name == "consumer threads raised in the pipeline":
        pipeline = pipeline.replace("kafka {", "kafka {\n    consumer_threads => 4", 1)
    elif name == "kafka input without security options":
        pipeline = re.sub(r"\n\s*security_protocol => [^\n]*", "", pipeline, count=1)
    else:
        BREAKS[name][0](manifests, values, pipeline)
    problems = all_problems(manifests, values, pipeline)
    assert any(BREAKS[name][1] in problem for problem in problems), problems


def test_setup_job_keeps_the_password_off_argv(current, tmp_path):
    """The Elasticsearch setup Job's script parses, and gives curl the elastic password as a
    config on its own descriptor (never -u on the command line, which ps shows)."""
    import subprocess

    manifests, _, _ = current
    script = _config_map_data(manifests, "fin-search-setup")["setup.sh"]
    path = tmp_path / "setup.sh"
    path.write_text(script)
    subprocess.run(["bash", "-n", str(path)], check=True)
    assert "-K <(printf" in script
    assert not re.search(r"(^|\s)(-u|--user)\s", script)
    job = _kind(manifests, "Job", "fin-search-setup")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    password = next(e for e in container["env"] if e["name"] == "ELASTIC_PASSWORD")
    assert "secretKeyRef" in password["valueFrom"]
