# Sourced by run.sh and dev.sh: install, then the environment of a local run (a developer's own
# broker on KAFKA_PORT, default 9092; Dagster's instance in ./.dagster_home). The broker is
# started here and stopped when the sourcing script exits.
scripts/apt_deps.sh
scripts/setup.sh

export FIN_RUN_DIR="${FIN_RUN_DIR:-$PWD/.run}"
export KAFKA_PORT="${KAFKA_PORT:-9092}"
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:${KAFKA_PORT}}"
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"

trap 'scripts/kafka.sh stop || true' EXIT
scripts/kafka.sh start

# start_search_stack: the search leg too, as docker compose runs it: a secured Elasticsearch
# (TLS, the roles and users docker/setup/setup.sh defines, in the file realm) with the project's
# templates, and Logstash on the project's pipelines reading ./data and the local broker. The
# passwords are made here, passed by environment only, and kept (0600) in
# $FIN_RUN_DIR/search-credentials for your own curl; both services stop when the script exits.
start_search_stack() {
    local creds="$FIN_RUN_DIR/search-credentials" user
    mkdir -p "$FIN_RUN_DIR"
    chmod 755 "$FIN_RUN_DIR"  # the node runs as nobody when we are root
    if [ ! -s "$creds" ]; then
        (
            umask 077
            for user in elastic logstash_writer dagster_reader; do
                echo "$user=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(18))')"
            done >"$creds"
        )
    fi
    local elastic_pw writer_pw reader_pw
    elastic_pw="$(sed -n 's/^elastic=//p' "$creds")"
    writer_pw="$(sed -n 's/^logstash_writer=//p' "$creds")"
    reader_pw="$(sed -n 's/^dagster_reader=//p' "$creds")"
    export ES_PORT="${ES_PORT:-9200}" ES_SECURITY=1 ELASTIC_PASSWORD="$elastic_pw"
    export ES_FRONT_PORT="${ES_FRONT_PORT:-$((ES_PORT + 1))}"
    trap 'scripts/logstash.sh stop || true; scripts/elasticsearch.sh stop || true; scripts/kafka.sh stop || true' EXIT
    scripts/elasticsearch.sh start
    printf '%s\n' "$writer_pw" | scripts/elasticsearch.sh useradd logstash_writer logstash_writer
    printf '%s\n' "$reader_pw" | scripts/elasticsearch.sh useradd dagster_reader dagster_reader
    local ca="$FIN_RUN_DIR/elasticsearch-$ES_PORT/config/certs/ca/ca.crt" template name
    for template in logstash/templates/*.json; do
        name="$(basename "$template" .json)"
        curl -fsS -o /dev/null --cacert "$ca" -K <(printf 'user = "elastic:%s"\n' "$elastic_pw") \
            -X PUT -H 'Content-Type: application/json' --data-binary "@$template" \
            "https://127.0.0.1:$ES_PORT/_index_template/$name"
    done
    ELASTICSEARCH_HOSTS="https://127.0.0.1:$ES_FRONT_PORT" ELASTICSEARCH_PASSWORD="$writer_pw" \
        ELASTICSEARCH_CA="$ca" FIN_DATA_DIR="${FIN_DATA_DIR:-$PWD/data}" scripts/logstash.sh start
    # Dagster's observation sensor and reconciliation check read as dagster_reader.
    export ELASTICSEARCH_URL="https://127.0.0.1:$ES_PORT" ELASTICSEARCH_USER=dagster_reader
    export ELASTICSEARCH_PASSWORD="$reader_pw" ELASTICSEARCH_CA="$ca"
    unset ELASTIC_PASSWORD
    echo "search stack: Elasticsearch https://127.0.0.1:$ES_PORT (CA $ca, passwords in $creds)," \
        "Logstash API http://127.0.0.1:${LOGSTASH_API_PORT:-9600}" >&2
}
