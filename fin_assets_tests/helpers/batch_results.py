"""What a batch run leaves that several batch tests read: the partition bar the UI shows for an
asset (from the instance) and a failed step's named failure."""

from __future__ import annotations

import dagster as dg

from fin_assets.defs.batch.partitions import symbol_partitions


def partition_bar(batch, asset: str) -> dict:
    """What the UI's partition bar shows for `asset`, read from the instance."""
    return batch.instance.get_status_by_partition(
        dg.AssetKey(asset), batch.symbol_list, symbol_partitions(batch.symbol_list)
    )


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure)
    return failure.step_failure_data.user_failure_data.description
