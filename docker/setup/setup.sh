#!/usr/bin/env bash
# One-shot (setup service): waits for Elasticsearch, installs the index templates from
# logstash/templates, sets the kibana_system password, creates the roles (docker/setup/roles:
# logstash_writer writes finanzas_batch and transacciones_nrt, dagster_reader reads them) and
# their users, then waits for Kibana and imports the dashboard. Idempotent: every step is a
# PUT/overwrite, so `docker compose up` may run it again. Passwords come from the environment
# and reach curl through a config on its own file descriptor, never on a command line.
set -euo pipefail

es="${ELASTICSEARCH_URL:-https://elasticsearch:9200}"
kibana="${KIBANA_URL:-http://kibana:5601}"
ca="${CA_CERT:-/usr/share/elasticsearch/config/certs/ca/ca.crt}"
templates=/setup/templates
roles=/setup/roles
dashboard=/setup/kibana/dashboard.ndjson

# curl as elastic. The credentials travel in a config read from a pipe (-K /dev/fd/N): out of
# `ps` and logs, and curl's stdin stays free for the request bodies (--data-binary @-).
as_elastic() {
    curl -sS --fail-with-body --cacert "$ca" \
        -K <(printf 'user = "elastic:%s"\n' "$ELASTIC_PASSWORD") "$@"
}

# step NAME CURL_ARGS...: one request; on failure names the step and shows the answer (which
# holds no password) instead of stopping silently.
step() {
    local name="$1" answer
    shift
    echo "$name"
    if ! answer="$(as_elastic "$@")"; then
        echo "setup.sh: $name failed: ${answer:-no answer}" >&2
        return 1
    fi
}

# Every folder must hold definitions: an unmounted one would otherwise send "*.json".
for folder in "$templates" "$roles"; do
    compgen -G "$folder/*.json" >/dev/null || {
        echo "setup.sh: no *.json in $folder (is it mounted? see docker-compose.yml)" >&2
        exit 1
    }
done

echo "waiting for Elasticsearch at $es"
for _ in $(seq 1 120); do
    if as_elastic "$es/_cluster/health" 2>/dev/null | grep -Eq '"status":"(green|yellow)"'; then
        break
    fi
    sleep 5
done
step "cluster health" "$es/_cluster/health"

for path in "$templates"/*.json; do
    name="$(basename "$path" .json)"
    step "index template $name" -X PUT "$es/_index_template/$name" \
        -H 'Content-Type: application/json' --data-binary "@$path"
done

json_password() { printf '{"password":"%s"}' "$1"; }

json_password "$KIBANA_SYSTEM_PASSWORD" | step "kibana_system password" \
    -X POST "$es/_security/user/kibana_system/_password" \
    -H 'Content-Type: application/json' --data-binary @-

for path in "$roles"/*.json; do
    name="$(basename "$path" .json)"
    step "role $name" -X PUT "$es/_security/role/$name" \
        -H 'Content-Type: application/json' --data-binary "@$path"
done

printf '{"password":"%s","roles":["logstash_writer"],"full_name":"Logstash pipeline LOGSTASH_UNIFICADO_FIN_TRANS"}' \
    "$LOGSTASH_WRITER_PASSWORD" | step "user logstash_writer" \
    -X PUT "$es/_security/user/logstash_writer" -H 'Content-Type: application/json' --data-binary @-

printf '{"password":"%s","roles":["dagster_reader"],"full_name":"Dagster observation sensor and checks"}' \
    "$DAGSTER_ES_PASSWORD" | step "user dagster_reader" \
    -X PUT "$es/_security/user/dagster_reader" -H 'Content-Type: application/json' --data-binary @-

echo "waiting for Kibana at $kibana"
for _ in $(seq 1 120); do
    if as_elastic "$kibana/api/status" 2>/dev/null | grep -q '"level":"available"'; then
        break
    fi
    sleep 5
done

echo "importing $dashboard"
result="$(as_elastic -X POST "$kibana/api/saved_objects/_import?overwrite=true" \
    -H 'kbn-xsrf: true' --form "file=@$dashboard")" || {
    echo "setup.sh: Kibana import failed: ${result:-no answer}" >&2
    exit 1
}
echo "$result" | grep -q '"success":true' || { echo "import failed: $result" >&2; exit 1; }

# Batch rows sit at the trading day's midnight in New York (logstash pipeline): shown in the
# browser's own zone, a row would appear on the previous evening west of New York.
printf '{"changes":{"dateFormat:tz":"America/New_York"}}' | step "Kibana time zone" \
    -X POST "$kibana/api/kibana/settings" -H 'kbn-xsrf: true' \
    -H 'Content-Type: application/json' --data-binary @-
echo "setup done"
