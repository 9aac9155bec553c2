"""One partition per symbol of `FIN_SYMBOLS`.

Static, not dynamic: the symbol list is configuration (an environment variable read when the
code location loads), so the partition set is derived from it and follows it on every reload;
nothing outside the code has to add or delete partitions, and a symbol removed from
FIN_SYMBOLS leaves the partition bar with it (its files stay on disk).
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)


def symbol_partitions(symbols: Sequence[str]) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(list(symbols))


def range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags for one run over the partitions first..last (a single-run backfill's tags)."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}
