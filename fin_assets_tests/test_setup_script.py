"""The docker stack's one-shot `certs` and `setup` services, run for real at their container paths.

No Docker engine here, so each service gets what its container would: a private mount and
network namespace (`unshare -m -n`, as root), a root file system that is the host's seen
through an overlay (writes stay in a tmpfs), the files compose mounts bound where compose mounts
them, host names `elasticsearch` / `kibana` on the private loopback, and the compose service's
own environment. Everything is read from docker/docker-compose.yml with PyYAML.

`certs` runs docker/setup/certs.sh with the integration-test distribution of Elasticsearch
standing in for the image's /usr/share/elasticsearch. `setup` runs docker/setup/setup.sh
against a recording server that answers like Elasticsearch (HTTPS, with certs.sh's certificate)
and Kibana, and records every request; the template bodies it received are then installed on a
real Elasticsearch with security and TLS on.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from fin_assets_tests.fixtures.elasticsearch import (
    ROLES_DIR,
    SCRIPT,
    TEMPLATES_DIR,
    SecuredElasticsearch,
)
from fin_assets_tests.helpers.paths import REPO
from fin_assets_tests.helpers.prerequisites import missing

DOCKER = REPO / "docker"
COMPOSE = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
# The ES image has a JDK inside; the integration-test zip uses the host's.
JAVA_HOME = Path(shutil.which("java") or "/usr/bin/java").resolve().parents[1]
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWORD_VARIABLES = (
    "ELASTIC_PASSWORD",
    "KIBANA_SYSTEM_PASSWORD",
    "LOGSTASH_WRITER_PASSWORD",
    "DAGSTER_ES_PASSWORD",
)

# `stack`: each service runs in a container namespace of its own (root, unshare).
pytestmark = pytest.mark.stack


@pytest.fixture(autouse=True)
def _root_unshare_and_ip() -> None:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        missing("container paths need root, unshare and ip (CI runs as root)")


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?message}`; a missing required
    variable fails as compose would."""

    def substitute(match: re.Match) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        if variables.get(name):
            return variables[name]
        if operator == ":?":
            raise KeyError(f"{name}: {argument}")
        return argument or ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", substitute, value)


def service_environment(service: str, variables: dict[str, str]) -> dict[str, str]:
    environment = COMPOSE["services"][service].get("environment") or {}
    return {name: interpolate(str(value), variables) for name, value in environment.items()}


def service_mounts(service: str, named_volumes: dict[str, Path]) -> list[tuple[Path, str, bool]]:
    """(host source, container target, read-only) for each of the service's volumes."""
    mounts = []
    for volume in COMPOSE["services"][service].get("volumes", []):
        source, target, *mode = volume.split(":")
        host = named_volumes[source] if source in named_volumes else (DOCKER / source).resolve()
        mounts.append((host, target, mode == ["ro"]))
    return mounts


@dataclass
class ContainerRun:
    returncode: int
    stdout: str
    stderr: str


def run_as_container(
    service: str,
    workdir: Path,
    mounts: list[tuple[Path, str, bool]],
    environment: dict[str, str],
    hosts: list[str] = (),
    before: str = "",
    timeout: float = 240,
) -> ContainerRun:
    """The service's compose `command` in a private mount + network namespace, with `mounts`
    bound at their container paths over an overlay of the host's root. `before` runs in the
    namespace, outside the container root (a server for the service to talk to); its
    background jobs are killed after the command."""
    command = " ".join(shlex.quote(part) for part in COMPOSE["services"][service]["command"])
    root, layer = workdir / "root", workdir / "layer"
    root.mkdir()
    layer.mkdir()
    lines = [
        "set -euo pipefail",
        "ip link set lo up",
        f"mount -t tmpfs tmpfs {layer}",
        f"mkdir {layer}/upper {layer}/work",
        "mount -t overlay overlay"
        f" -o lowerdir=/,upperdir={layer}/upper,workdir={layer}/work {root}",
        f"mount --rbind /dev {root}/dev",
        f"mount -t proc proc {root}/proc",
    ]
    if hosts:
        # A hosts file of its own, bound over the container's (as Docker does).
        hosts_file = workdir / "hosts"
        hosts_file.write_text(f"127.0.0.1 localhost {' '.join(hosts)}\n")
        lines.append(f"mount --bind {hosts_file} {root}/etc/hosts")
    for source, target, read_only in mounts:
        inside = f"{root}{target}"
        # A source inside the container root exists only once the overlay is mounted.
        seen_from_host = Path(str(source).removeprefix(str(root)) or "/")
        if seen_from_host.is_dir():
            lines.append(f"mkdir -p {inside}")
        else:
            lines.append(f"mkdir -p {Path(inside).parent} && touch {inside}")
        lines.append(f"mount --bind {source} {inside}")
        if read_only:
            lines.append(f"mount -o remount,bind,ro {inside}")
    lines += [
        before,
        "set +e",
        f"chroot {root} {command}",  # chroot(1) starts the command in the new /
        "rc=$?",
        "jobs -p | xargs -r kill",
        "wait",
        "exit $rc",
    ]
    script = "\n".join(lines) + "\n"
    # The container's environment is the service's (plus what an image sets: PATH, HOME); the
    # passwords travel in it, never in an argv.
    process = subprocess.Popen(
        ["unshare", "-m", "-n", "bash", "-c", script],
        env={"PATH": CONTAINER_PATH, "HOME": "/root", **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=REPO,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    return ContainerRun(process.returncode, stdout, stderr)


@dataclass
class SetupRun:
    certs: ContainerRun
    setup: ContainerRun
    certs_dir: Path
    requests: list[dict]
    passwords: dict[str, str]


def _records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def setup_run(tmp_path_factory) -> SetupRun:
    """certs.sh, then setup.sh against the recording server: once for the module."""
    es_home = Path(
        subprocess.run(
            [str(SCRIPT), "home"], capture_output=True, text=True, check=True, timeout=300
        ).stdout.strip()
    )
    base = tmp_path_factory.mktemp("compose-services")
    certs_volume = base / "certs-volume"
    certs_volume.mkdir()
    passwords = {name: secrets.token_urlsafe(18) for name in PASSWORD_VARIABLES}

    # certs: the image's /usr/share/elasticsearch is the distribution (seen through the overlay,
    # so the certs volume's mount point is made in the tmpfs, not in the cache).
    (base / "certs").mkdir()
    certs_mounts = [(Path(f"{base}/certs/root{es_home}"), "/usr/share/elasticsearch", False)]
    certs_mounts += service_mounts("certs", {"certs": certs_volume})
    certs = run_as_container(
        "certs",
        base / "certs",
        certs_mounts,
        {**service_environment("certs", passwords), "ES_JAVA_HOME": str(JAVA_HOME)},
    )
    assert certs.returncode == 0, certs.stderr

    environment = service_environment("setup", passwords)
    es_url, kibana_url = (
        urlsplit(environment["ELASTICSEARCH_URL"]),
        urlsplit(environment["KIBANA_URL"]),
    )
    record, ready = base / "requests.jsonl", base / "server-ready"
    server = [
        sys.executable,
        "-m",
        "fin_assets_tests.helpers.elastic_recording_server",
        "--es-port",
        str(es_url.port),
        "--es-cert",
        str(certs_volume / "elasticsearch" / "elasticsearch.crt"),
        "--es-key",
        str(certs_volume / "elasticsearch" / "elasticsearch.key"),
        "--kibana-port",
        str(kibana_url.port),
        "--record",
        str(record),
        "--ready",
        str(ready),
        "--secrets-env",
        ",".join(PASSWORD_VARIABLES),
    ]
    before = (
        f"{shlex.join(server)} &\n"
        # Poll (bounded) until both ports listen.
        f"for _ in $(seq 1 300); do [ -f {ready} ] && break; sleep 0.1; done\n"
        f"[ -f {ready} ] || {{ echo 'recording server did not start' >&2; exit 1; }}"
    )
    (base / "setup").mkdir()
    setup = run_as_container(
        "setup",
        base / "setup",
        service_mounts("setup", {"certs": certs_volume}),
        environment,
        hosts=[es_url.hostname, kibana_url.hostname],
        before=before,
    )
    return SetupRun(certs, setup, certs_volume, _records(record), passwords)


def _find(run: SetupRun, method: str, path: str) -> dict:
    matches = [r for r in run.requests if r["method"] == method and r["path"] == path]
    assert matches, f"setup.sh never sent {method} {path}; it sent " + ", ".join(
        f"{r['method']} {r['path']}" for r in run.requests
    )
    return matches[-1]


def test_certs_script_makes_a_ca_and_a_certificate_for_elasticsearch(setup_run: SetupRun):
    certs = setup_run.certs_dir
    assert "certificates created" in setup_run.certs.stdout
    for name in ("ca/ca.crt", "ca/ca.key", "elasticsearch/elasticsearch.crt"):
        assert (certs / name).is_file(), name
    # Elasticsearch runs as uid 1000, group 0, in its image.
    key = certs / "elasticsearch" / "elasticsearch.key"
    assert (key.stat().st_uid, key.stat().st_gid, key.stat().st_mode & 0o777) == (1000, 0, 0o640)
    # The certificate is signed by that CA for the compose host name (setup.sh's curl also
    # verified it against the CA, as https://elasticsearch:9200, in the next tests).
    crt, ca = certs / "elasticsearch" / "elasticsearch.crt", certs / "ca" / "ca.crt"
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca), str(crt)], capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    names = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(crt)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:elasticsearch" in names


def test_setup_script_completes_and_every_body_arrives(setup_run: SetupRun):
    """Defect: `printf | curl -K -` gave curl's stdin to the credentials, so every piped body
    (kibana_system password, users) arrived empty and Elasticsearch's 400 stopped the script."""
    assert setup_run.setup.returncode == 0, setup_run.setup.stderr
    assert "setup done" in setup_run.setup.stdout
    es_requests = [r for r in setup_run.requests if not r["path"].startswith("/api/")]
    assert es_requests and {r["user"] for r in setup_run.requests} == {"elastic"}
    for request in setup_run.requests:
        if request["method"] in ("PUT", "POST"):
            assert request["body"], f"{request['method']} {request['path']} arrived without body"
            assert request["status"] < 300, request

    for template in sorted(TEMPLATES_DIR.glob("*.json")):
        sent = _find(setup_run, "PUT", f"/_index_template/{template.stem}")
        assert json.loads(sent["body"]) == json.loads(template.read_text())

    password = _find(setup_run, "POST", "/_security/user/kibana_system/_password")
    assert json.loads(password["body"]) == {
        "password": setup_run.passwords["KIBANA_SYSTEM_PASSWORD"]
    }

    for role in sorted(ROLES_DIR.glob("*.json")):
        sent = _find(setup_run, "PUT", f"/_security/role/{role.stem}")
        assert json.loads(sent["body"]) == json.loads(role.read_text())

    for user, variable in (
        ("logstash_writer", "LOGSTASH_WRITER_PASSWORD"),
        ("dagster_reader", "DAGSTER_ES_PASSWORD"),
    ):
        body = json.loads(_find(setup_run, "PUT", f"/_security/user/{user}")["body"])
        assert body["password"] == setup_run.passwords[variable]
        # Each user gets the role of its own name: the file-realm users of the secured
        # test node (fixtures/elasticsearch.py's FILE_REALM_USERS) are made the same way.
        assert body["roles"] == [user] and (ROLES_DIR / f"{user}.json").is_file()

    imported = _find(setup_run, "POST", "/api/saved_objects/_import?overwrite=true")
    dashboard = (DOCKER / "kibana" / "dashboard.ndjson").read_text()
    first_object = dashboard.splitlines()[0]
    assert first_object in imported["body"] and "multipart/form-data" in imported["content_type"]

    # The batch rows' one time (New York midnight) is shown as the trading day in Kibana.
    settings = json.loads(_find(setup_run, "POST", "/api/kibana/settings")["body"])
    assert settings == {"changes": {"dateFormat:tz": "America/New_York"}}


def test_setup_script_keeps_passwords_off_command_lines_and_output(setup_run: SetupRun):
    leaks = [leak for r in setup_run.requests for leak in r["argv_leaks"]]
    assert setup_run.requests and leaks == []
    # Each request's scan read command lines, the client's (curl, waiting for the answer)
    # among them: a scan of nothing would pass too.
    assert all(r["argv_checked"] > 0 for r in setup_run.requests), setup_run.requests
    assert all("curl" in r["argv_programs"] for r in setup_run.requests), [
        r["argv_programs"] for r in setup_run.requests
    ]
    output = setup_run.setup.stdout + setup_run.setup.stderr
    assert output and setup_run.passwords
    for password in setup_run.passwords.values():
        assert password not in output


def test_templates_setup_sends_install_on_a_secured_elasticsearch(
    setup_run: SetupRun, secured_elasticsearch: SecuredElasticsearch
):
    """The bodies setup.sh sent, as it sent them, against a real node with security and TLS."""
    client = secured_elasticsearch.client("elastic")
    try:
        for template in sorted(TEMPLATES_DIR.glob("*.json")):
            sent = _find(setup_run, "PUT", f"/_index_template/{template.stem}")
            client.request("PUT", f"_index_template/{template.stem}", data=sent["body"])
            stored = client.request("GET", f"_index_template/{template.stem}").json()
            (entry,) = stored["index_templates"]
            expected = json.loads(template.read_text())
            assert entry["index_template"]["index_patterns"] == expected["index_patterns"]
            mappings = entry["index_template"]["template"]["mappings"]
            assert (
                mappings["properties"].keys()
                == expected["template"]["mappings"]["properties"].keys()
            )
    finally:
        client.close()
