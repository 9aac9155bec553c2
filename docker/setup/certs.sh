#!/usr/bin/env bash
# One-shot (certs service): a CA and an HTTPS certificate for the elasticsearch service, made
# once with elasticsearch-certutil and kept in the certs volume. Idempotent.
# The defaults are the container's paths; scripts/elasticsearch.sh runs this same script for its
# secured local node with ES_HOME (the unpacked distribution), CERTS_DIR and CERTS_OWNER.
set -euo pipefail
cd "${ES_HOME:-/usr/share/elasticsearch}"
certs="${CERTS_DIR:-config/certs}"
owner="${CERTS_OWNER:-1000:0}"
mkdir -p "$certs"
if [ -f "$certs/elasticsearch/elasticsearch.crt" ]; then
    echo "certificates already exist"
    exit 0
fi
bin/elasticsearch-certutil ca --silent --pem --out "$certs/ca.zip"
unzip -o -q "$certs/ca.zip" -d "$certs"
cat >"$certs/instances.yml" <<YAML
instances:
  - name: elasticsearch
    dns: [elasticsearch, localhost]
    ip: [127.0.0.1]
YAML
bin/elasticsearch-certutil cert --silent --pem --in "$certs/instances.yml" --out "$certs/certs.zip" \
    --ca-cert "$certs/ca/ca.crt" --ca-key "$certs/ca/ca.key"
unzip -o -q "$certs/certs.zip" -d "$certs"
rm -f "$certs/ca.zip" "$certs/certs.zip"
# Elasticsearch runs as uid 1000 (group 0); the other containers only read the CA certificate.
chown -R "$owner" "$certs"
find "$certs" -type d -exec chmod 755 {} +
find "$certs" -type f -exec chmod 644 {} +
chmod 640 "$certs/ca/ca.key" "$certs/elasticsearch/elasticsearch.key"
echo "certificates created"
