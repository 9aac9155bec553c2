#!/bin/sh
# Entrypoint of the Dagster image. With ALPHAVANTAGE_API_KEY empty (the .env.example default),
# point the pipeline at the Alpha Vantage stand-in (FIN_STAND_IN_URL, synthetic prices) and say
# so; with a key, leave the configuration alone. Then run the service's command.
set -eu
if [ -z "${ALPHAVANTAGE_API_KEY:-}" ] && [ -n "${FIN_STAND_IN_URL:-}" ]; then
    # Not a secret: the stand-in accepts any non-empty key (fin_assets/cli/batch.py).
    ALPHAVANTAGE_API_KEY=stand-in
    ALPHAVANTAGE_BASE_URL="$FIN_STAND_IN_URL"
    export ALPHAVANTAGE_API_KEY ALPHAVANTAGE_BASE_URL
    echo "ALPHAVANTAGE_API_KEY is not set: using the local Alpha Vantage stand-in at" \
        "$FIN_STAND_IN_URL. Prices are SYNTHETIC." >&2
fi
exec "$@"
