"""Where things are: the repository, and the download cache the service scripts share (outside
the clone, so a fresh clone reuses it)."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("FIN_CACHE_DIR", Path.home() / ".cache" / "fin_assets"))

# Real Alpha Vantage bodies recorded in public repositories, with their sources.txt.
REAL_AV = REPO / "fin_assets_tests" / "data" / "real_av"
