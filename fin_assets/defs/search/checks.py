"""Reconciliation of the finanzas_batch index with the CSV Logstash reads."""

from __future__ import annotations

import dagster as dg

from fin_assets.defs.resources.elasticsearch import ElasticsearchResource
from fin_assets.defs.resources.settings import PipelineSettings
from fin_assets.lib import config
from fin_assets.lib.search.elasticsearch import ElasticsearchError
from fin_assets.lib.search.reconcile import (
    CsvContractError,
    compare,
    differences_markdown,
    summarise_csv,
)

CHECK_NAME = "finanzas_batch_matches_csv"


@dg.asset_check(
    asset=config.BATCH_INDEX,
    name=CHECK_NAME,
    description=(
        f"Per symbol, {config.BATCH_INDEX} holds as many days as {config.CSV_FILE_NAME}, with "
        "the same last date and the same last close. Fails with a table of the differences. "
        "Logstash indexes within seconds of the daily rewrite; run this check after that."
    ),
)
def finanzas_batch_matches_csv(
    settings: PipelineSettings, elasticsearch: ElasticsearchResource
) -> dg.AssetCheckResult:
    csv_path = settings.csv_path
    if not csv_path.is_file():
        return dg.AssetCheckResult(
            passed=False,
            description=f"{config.CSV_FILE_NAME} not found at {csv_path}: "
            "materialise datos_financieros_csv first.",
            metadata={"csv_path": str(csv_path)},
        )
    try:
        csv_side = summarise_csv(csv_path)
    except (CsvContractError, ValueError) as exc:
        return dg.AssetCheckResult(
            passed=False,
            description=f"Cannot read the CSV: {exc}",
            metadata={"csv_path": str(csv_path)},
        )

    client = elasticsearch.get_client()
    try:
        index_side = client.symbol_summaries(config.BATCH_INDEX)
    except ElasticsearchError as exc:  # unreachable, missing index: the text has no secrets
        return dg.AssetCheckResult(
            passed=False,
            description=f"Cannot read {config.BATCH_INDEX}: {exc}",
            metadata={"elasticsearch": elasticsearch.display_url},
        )
    finally:
        client.close()

    differences = compare(csv_side, index_side)
    metadata: dict[str, object] = {
        "csv_path": str(csv_path),
        "csv_symbols": len(csv_side),
        "indexed_symbols": len(index_side),
        "csv_rows": sum(s.days for s in csv_side.values()),
        "indexed_documents": sum(s.days for s in index_side.values()),
        "mismatched_symbols": len(differences),
    }
    if differences:
        metadata["differences"] = dg.MetadataValue.md(differences_markdown(differences))
        names = ", ".join(f"{d.symbol} ({d.problem})" for d in differences)
        return dg.AssetCheckResult(
            passed=False,
            description=f"{config.BATCH_INDEX} differs from the CSV for: {names}",
            metadata=metadata,
        )
    return dg.AssetCheckResult(passed=True, metadata=metadata)
