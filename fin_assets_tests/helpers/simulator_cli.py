"""The simulator as its command-line and Kafka tests drive it: the environment of a
`fin-assets simulate` run, its summary line parsed, the event ids a topic holds, and pipeline
settings on a small data folder with a price CSV. Shared by the fault, log-file and topic
configuration tests.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from fin_assets.defs.resources.settings import PipelineSettings
from fin_assets_tests.fixtures.kafka import read_topic

SUMMARY = re.compile(
    r"Summary \((?P<ended_by>[^)]*)\): generated=(?P<generated>\d+)"
    r" acknowledged=(?P<acknowledged>\d+) failed=(?P<failed>\d+) dropped=(?P<dropped>\d+)"
    r" unsent=(?P<unsent>\d+) pending=(?P<pending>\d+)"
)


def topic_event_ids(bootstrap: str, topic: str) -> list[str]:
    return [event["event_id"] for _, _, event in read_topic(bootstrap, topic)]


def cli_env(data_dir: Path, bootstrap: str, topic: str) -> dict[str, str]:
    return {
        **os.environ,
        "FIN_DATA_DIR": str(data_dir),
        "FIN_SYMBOLS": "TSLA,IBM",
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "FIN_KAFKA_TOPIC": topic,
    }


def parse_summary(stdout: str) -> dict[str, int | str]:
    match = SUMMARY.search(stdout)
    assert match, stdout
    return {k: (v if k == "ended_by" else int(v)) for k, v in match.groupdict().items()}


def make_settings(tmp_path: Path) -> PipelineSettings:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "Datos_financieros.csv").write_text(
        "fecha,simbolo,apertura,maximo,minimo,cierre,volumen\n"
        "2026-05-04,TSLA,250,255,245,251.5,1000\n"
        "2026-05-05,TSLA,251,262,250,260.0,1000\n"
        "2026-05-05,IBM,180,182,178,181.0,1000\n"
    )
    return PipelineSettings(data_dir=str(data_dir), symbols="TSLA,IBM,AAPL")
