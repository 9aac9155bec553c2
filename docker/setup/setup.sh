#!/usr/bin/env bash
# One-shot (setup service): waits for Elasticsearch, installs the index templates from
# logstash/templates, sets the kibana_system password, creates the Logstash writer and the
# Dagster reader, then waits for Kibana and imports the dashboard. Idempotent: every step is a
# PUT/overwrite, so `docker compose up` may run it again. Passwords come from the environment
# and are passed to curl through a config on stdin, never on the command line.
set -euo pipefail

es="${ELASTICSEARCH_URL:-https://elasticsearch:9200}"
kibana="${KIBANA_URL:-http://kibana:5601}"
ca="${CA_CERT:-/usr/share/elasticsearch/config/certs/ca/ca.crt}"
templates=/setup/templates
dashboard=/setup/kibana/dashboard.ndjson

# curl as elastic; the credentials travel on stdin (-K -), out of `ps` and logs.
as_elastic() {
    printf 'user = "elastic:%s"\n' "$ELASTIC_PASSWORD" | curl -sS --fail-with-body --cacert "$ca" -K - "$@"
}

echo "waiting for Elasticsearch at $es"
for _ in $(seq 1 120); do
    if as_elastic "$es/_cluster/health" 2>/dev/null | grep -Eq '"status":"(green|yellow)"'; then
        break
    fi
    sleep 5
done
as_elastic "$es/_cluster/health" >/dev/null

for path in "$templates"/*.json; do
    name="$(basename "$path" .json)"
    echo "index template $name"
    as_elastic -X PUT "$es/_index_template/$name" -H 'Content-Type: application/json' \
        --data-binary "@$path" >/dev/null
done

json_password() { printf '{"password":"%s"}' "$1"; }

echo "kibana_system password"
json_password "$KIBANA_SYSTEM_PASSWORD" | as_elastic -X POST "$es/_security/user/kibana_system/_password" \
    -H 'Content-Type: application/json' --data-binary @- >/dev/null

echo "role and user logstash_writer"
as_elastic -X PUT "$es/_security/role/logstash_writer" -H 'Content-Type: application/json' \
    --data-binary @- >/dev/null <<'JSON'
{
  "cluster": ["monitor", "manage_index_templates"],
  "indices": [
    {"names": ["finanzas_batch", "transacciones_nrt"],
     "privileges": ["create_index", "create_doc", "index", "write", "view_index_metadata"]}
  ]
}
JSON
printf '{"password":"%s","roles":["logstash_writer"],"full_name":"Logstash pipeline LOGSTASH_UNIFICADO_FIN_TRANS"}' \
    "$LOGSTASH_WRITER_PASSWORD" | as_elastic -X PUT "$es/_security/user/logstash_writer" \
    -H 'Content-Type: application/json' --data-binary @- >/dev/null

echo "role and user dagster_reader"
as_elastic -X PUT "$es/_security/role/dagster_reader" -H 'Content-Type: application/json' \
    --data-binary @- >/dev/null <<'JSON'
{
  "cluster": ["monitor"],
  "indices": [
    {"names": ["finanzas_batch", "transacciones_nrt"], "privileges": ["read", "view_index_metadata"]}
  ]
}
JSON
printf '{"password":"%s","roles":["dagster_reader"],"full_name":"Dagster observation sensor and checks"}' \
    "$DAGSTER_ES_PASSWORD" | as_elastic -X PUT "$es/_security/user/dagster_reader" \
    -H 'Content-Type: application/json' --data-binary @- >/dev/null

echo "waiting for Kibana at $kibana"
for _ in $(seq 1 120); do
    if as_elastic "$kibana/api/status" 2>/dev/null | grep -q '"level":"available"'; then
        break
    fi
    sleep 5
done

echo "importing $dashboard"
result="$(as_elastic -X POST "$kibana/api/saved_objects/_import?overwrite=true" \
    -H 'kbn-xsrf: true' --form "file=@$dashboard")"
echo "$result" | grep -q '"success":true' || { echo "import failed: $result" >&2; exit 1; }
echo "setup done"
