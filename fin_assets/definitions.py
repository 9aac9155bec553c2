"""The code location: each flow contributes its own Definitions, merged here.

Only `defs` is a Definitions object at module scope (Dagster's loader insists on one). What
every asset gets is applied here, in one place: an owner per group, and code references
("View source" in the UI: local files, or links into the Git host when FIN_SOURCE_GIT_URL is
set).
"""

import warnings
from pathlib import Path

import dagster as dg

from fin_assets import settings
from fin_assets.batch import definitions as batch
from fin_assets.resources.settings import settings_from_env
from fin_assets.search import definitions as search
from fin_assets.simulator import definitions as simulator

OWNERS_BY_GROUP = {
    "batch": "team:market-data",
    "near_real_time": "team:trading-stream",
    "search": "team:search",
}


def with_owner(spec: dg.AssetSpec) -> dg.AssetSpec:
    owner = OWNERS_BY_GROUP.get(spec.group_name or "")
    if spec.owners or owner is None:
        return spec
    return spec.replace_attributes(owners=[owner])


def with_code_references(assets: list) -> list:
    """Source files of every asset; links into the repository when its URL is configured."""
    assets = list(dg.with_source_code_references(assets))
    try:
        links = settings.source_links()
    except settings.SettingsError as error:
        # Cosmetic: a typo here must not stop the code location; local references stay.
        warnings.warn(f"{error}; showing local source files instead", stacklevel=2)
        return assets
    if not links.git_url:
        return assets
    return list(
        dg.link_code_references_to_git(
            assets_defs=assets,
            git_url=links.git_url,
            git_branch=links.git_branch,
            file_path_mapping=dg.AnchorBasedFilePathMapping(
                local_file_anchor=Path(__file__),
                file_anchor_path_in_repository="fin_assets/definitions.py",
            ),
        )
    )


def annotated(merged: dg.Definitions) -> dg.Definitions:
    with warnings.catch_warnings():  # code references and spec mapping are marked beta
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return _annotated(merged)


def _annotated(merged: dg.Definitions) -> dg.Definitions:
    return dg.Definitions(
        assets=with_code_references(list(merged.assets or [])),
        asset_checks=merged.asset_checks,
        jobs=merged.jobs,
        schedules=merged.schedules,
        sensors=merged.sensors,
        resources=merged.resources,
        executor=merged.executor,
        loggers=merged.loggers,
        metadata=merged.metadata,
    ).map_asset_specs(func=with_owner)


# Every step here is small; running a run's steps in its own process, one after the other,
# saves the few seconds per step that a fresh Python process with dagster and pandas costs.
defs = annotated(
    dg.Definitions.merge(
        dg.Definitions(
            resources={"settings": settings_from_env()}, executor=dg.in_process_executor
        ),
        batch.defs,
        simulator.defs,
        search.defs,
    )
)
