"""deploy/helm/dagster/values.yaml against the Dagster chart's values schema (1.13.27 models,
deploy/helm/dagster/PROVENANCE.md).

Helm validates the merge of the chart's defaults and the user's file; the chart's 1.13.27
defaults are not here, so the file is checked as an overlay: `required` is stripped from the
schema (keys we leave to the chart's defaults are not missing), and every key we set must be
declared by the schema with a valid type / enum. Objects the schema leaves open to unknown keys
(pydantic's default `extra="ignore"`, the top level's `extra="allow"`) are still held to their
declared properties by `undeclared_keys`; free-form maps (env, labels, runMonitoring) are not.
"""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
import yaml

from fin_assets_tests.helpers.paths import REPO

HELM_DIR = REPO / "deploy" / "helm" / "dagster"
VALUES = HELM_DIR / "values.yaml"
SCHEMA = HELM_DIR / "values.schema.json"


def without_required(schema):
    """The schema with every `required` keyword removed (property names are left alone)."""
    if isinstance(schema, list):
        return [without_required(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "required" and isinstance(value, list):
            continue
        if key in ("properties", "$defs", "definitions", "patternProperties"):
            out[key] = {name: without_required(sub) for name, sub in value.items()}
        else:
            out[key] = without_required(value)
    return out


def resolve(root: dict, schema: dict) -> dict:
    """Follow a local `$ref` (JSON pointer into the same document)."""
    while isinstance(schema, dict) and "$ref" in schema and schema["$ref"].startswith("#/"):
        target = root
        for token in schema["$ref"][2:].split("/"):
            target = target[token.replace("~1", "/").replace("~0", "~")]
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **rest} if rest else target
    return schema


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean"}


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if value is None:
        return "null"
    return _JSON_TYPES[type(value)]


def _candidates(root: dict, schema: dict, value) -> list[dict]:
    """The schema alternatives (anyOf/oneOf/allOf, $ref) that apply to a value of its type."""
    schema = resolve(root, schema)
    found = [schema]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            found = [alt for sub in schema[key] for alt in _candidates(root, sub, value)]
            found.append({k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")})
    for sub in schema.get("allOf", []):
        found.extend(_candidates(root, sub, value))
    kind = _json_type(value)

    def fits(s: dict) -> bool:
        declared = s.get("type")
        if declared is None:
            return True
        declared = declared if isinstance(declared, list) else [declared]
        return kind in declared or (kind == "integer" and "number" in declared)

    return [s for s in found if fits(s)]


def undeclared_keys(root: dict, schema: dict, value, path: str = "") -> list[str]:
    """Paths of keys in `value` that no applicable schema alternative declares."""
    problems: list[str] = []
    candidates = _candidates(root, schema, value)
    if isinstance(value, dict):
        for key, item in value.items():
            children = []
            is_map = False
            for cand in candidates:
                props = cand.get("properties") or {}
                if key in props:
                    children.append(props[key])
                elif not props and cand.get("additionalProperties") not in (None, False):
                    is_map = True
                    extra = cand["additionalProperties"]
                    if isinstance(extra, dict):
                        children.append(extra)
                elif not props and cand.get("type") == "object":
                    is_map = is_map or "additionalProperties" not in cand
            where = f"{path}.{key}" if path else key
            if not children and not is_map:
                problems.append(where)
            for child in children:
                problems.extend(undeclared_keys(root, child, item, where))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            for cand in candidates:
                if isinstance(cand.get("items"), dict):
                    problems.extend(undeclared_keys(root, cand["items"], item, f"{path}[{index}]"))
    return sorted(set(problems))


def overlay_problems(values: dict, schema: dict) -> list[str]:
    """Everything wrong with `values` as an overlay: schema errors, then undeclared keys."""
    overlay = without_required(schema)
    validator = jsonschema.Draft202012Validator(overlay)
    errors = [
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(values)
    ]
    undeclared = undeclared_keys(schema, schema, values)
    return errors + [f"{key}: not a key of the chart" for key in undeclared]


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA.read_text())


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def test_schema_is_a_valid_draft_2020_12_schema(schema):
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "kubernetes" in schema["$defs"], "Kubernetes definitions are embedded, no remote refs"
    assert "https://" not in json.dumps([v for k, v in schema.items() if k != "$defs"])


def test_values_are_a_valid_overlay(values, schema):
    assert overlay_problems(values, schema) == []


def _broken(values: dict, path: str, new) -> dict:
    broken = copy.deepcopy(values)
    *parents, last = path.split(".")
    node = broken
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = new
    return broken


@pytest.mark.parametrize(
    ("path", "new", "expected"),
    [
        # A wrong enum value: the chart only knows K8sRunLauncher, CeleryK8sRunLauncher, Custom.
        ("runLauncher.type", "K8sLauncher", "runLauncher.type: 'K8sLauncher' is not one of"),
        # A wrong type.
        ("dagster-user-deployments.deployments.0.port", "3030", "is not of type 'integer'"),
        ("concurrency.pools.defaultLimit", "one", "'one' is not valid under any of the given"),
        # Unknown keys, under additionalProperties: false ...
        ("dagsterDaemon.runMonitor", {"enabled": True}, "dagsterDaemon: Additional properties"),
        ("concurrency.runs.maxConcurentRuns", 4, "concurrency.runs: Additional properties"),
        # ... and where the schema would let them through (pydantic's extra="ignore" / "allow").
        (
            "dagster-user-deployments.deployments.0.dagsterApiGrpcArg",
            ["--module-name", "x"],
            "deployments[0].dagsterApiGrpcArg: not a key of the chart",
        ),
        ("runLaunchr", {"type": "K8sRunLauncher"}, "runLaunchr: not a key of the chart"),
    ],
)
def test_broken_copies_are_refused(values, schema, path, new, expected):
    problems = overlay_problems(_broken(values, path, new), schema)
    assert any(expected in problem for problem in problems), problems


def test_secrets_are_references_not_values(values):
    """API key and passwords come from Kubernetes Secrets (envSecrets), never from the file."""
    secret_names = {"ALPHAVANTAGE_API_KEY", "KAFKA_SASL_PASSWORD", "ELASTICSEARCH_PASSWORD"}
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert secret_names.isdisjoint(deployment["env"])
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    secrets = {s["name"] for s in deployment["envSecrets"]}
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert secrets == {s["name"] for s in launcher["envSecrets"]}
    text = VALUES.read_text().lower()
    for word in ("password:", "apikey", "api_key:"):
        assert word not in text


def test_schema_is_the_generated_one_recorded_in_provenance():
    """A hand edit of the generated schema shows up: PROVENANCE.md records its sha256."""
    import hashlib
    import re

    provenance = (HELM_DIR / "PROVENANCE.md").read_text()
    (recorded,) = re.findall(r"sha256 of the committed file: `([0-9a-f]{64})`", provenance)
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == recorded
