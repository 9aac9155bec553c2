#!/usr/bin/env bash
# System packages the tests need: a JDK and Maven (Kafka and Elasticsearch run from Maven
# Central jars) and Debian's Chromium for the browser tests. Installs only what is missing.
set -euo pipefail
missing=()
command -v java >/dev/null || missing+=(default-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)  # the Dagster stack tests (scripts/postgres.sh)
# The tests that run the stack's own scripts at their container paths (unshare -m -n, ip link),
# make certificates and send the setup script's requests.
command -v ip >/dev/null || missing+=(iproute2)
command -v unshare >/dev/null || missing+=(util-linux)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v unzip >/dev/null || missing+=(unzip)
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing system packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
