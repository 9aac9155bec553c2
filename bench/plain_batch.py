"""The baseline of the batch benchmark: the same work as `daily_batch_job`, the way the original
scripts did it, with requests and pandas and no Dagster.

For each symbol: GET TIME_SERIES_DAILY, keep the raw JSON, turn the series into a typed frame,
upsert it into the symbol's history CSV (fresh rows win for the same day); then write
Datos_financieros.csv (fecha,simbolo,apertura,maximo,minimo,cierre,volumen, sorted by simbolo
then fecha) from every history. Plain writes (no temp file + fsync + rename), no checks, no
run records: what a straightforward script does.

    python bench/plain_batch.py --url http://127.0.0.1:8765/query --symbols TSLA,IBM \
        --data-dir /tmp/plain

Prints one JSON line with its phases' times.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import requests  # noqa: E402
from _child_stats import peak_rss_mib  # noqa: E402

T_IMPORTED = time.perf_counter()

COLUMNS = ["fecha", "simbolo", "apertura", "maximo", "minimo", "cierre", "volumen"]
FIELDS = {
    "1. open": "apertura",
    "2. high": "maximo",
    "3. low": "minimo",
    "4. close": "cierre",
    "5. volume": "volumen",
}
DTYPES = {
    "simbolo": "str",
    "apertura": "float64",
    "maximo": "float64",
    "minimo": "float64",
    "cierre": "float64",
    "volumen": "int64",
}


def fetch(session: requests.Session, url: str, key: str, symbol: str, size: str) -> str:
    params = {
        "function": "TIME_SERIES_DAILY",
        "symbol": symbol,
        "outputsize": size,
        "datatype": "json",
        "apikey": key,
    }
    response = session.get(url, params=params, timeout=20)
    response.raise_for_status()
    return response.text


def clean(symbol: str, payload: dict) -> pd.DataFrame:
    series = payload.get("Time Series (Daily)")
    if not series:
        raise RuntimeError(f"{symbol}: no data ({list(payload)[:1]})")
    frame = pd.DataFrame.from_dict(series, orient="index").rename(columns=FIELDS)
    frame.insert(0, "fecha", pd.to_datetime(frame.index, format="%Y-%m-%d"))
    frame.insert(1, "simbolo", symbol)
    return frame.astype(DTYPES)[COLUMNS].sort_values("fecha", ignore_index=True)


def read_history(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=DTYPES)
    frame["fecha"] = pd.to_datetime(frame["fecha"], format="%Y-%m-%d")
    return frame


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--symbols", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--api-key", default="bench")
    parser.add_argument("--full", action="store_true", help="outputsize=full")
    args = parser.parse_args()

    data = Path(args.data_dir)
    (data / "history").mkdir(parents=True, exist_ok=True)
    session = requests.Session()
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    t_fetch = t_clean = 0.0
    for symbol in symbols:
        started = time.perf_counter()
        body = fetch(session, args.url, args.api_key, symbol, "full" if args.full else "compact")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        raw = data / "raw" / symbol / f"{symbol}_{stamp}.json"
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(body)
        fetched = time.perf_counter()
        fresh = clean(symbol, json.loads(body))
        history_path = data / "history" / f"{symbol}.csv"
        if history_path.exists():
            fresh = (
                pd.concat([read_history(history_path), fresh], ignore_index=True)
                .drop_duplicates(subset=["fecha"], keep="last")
                .sort_values("fecha", ignore_index=True)
            )
        fresh.to_csv(history_path, index=False, date_format="%Y-%m-%d")
        t_fetch += fetched - started
        t_clean += time.perf_counter() - fetched

    started = time.perf_counter()
    frames = [read_history(data / "history" / f"{s}.csv") for s in symbols]
    combined = pd.concat(frames, ignore_index=True).sort_values(
        ["simbolo", "fecha"], ignore_index=True
    )
    combined.to_csv(
        data / "Datos_financieros.csv", index=False, lineterminator="\n", date_format="%Y-%m-%d"
    )
    t_end = time.perf_counter()
    print(
        json.dumps(
            {
                "success": True,
                "csv_rows": len(combined),
                "import_s": T_IMPORTED - T0,
                "fetch_s": t_fetch,
                "clean_upsert_s": t_clean,
                "csv_s": t_end - started,
                "run_s": t_end - T_IMPORTED,
                "in_process_s": t_end - T0,
                "peak_rss_mib": peak_rss_mib(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
