"""The code location: every flow's definitions under fin_assets/defs/, loaded as one, with what
every asset gets applied here, in one place: an owner per group, and code references ("View
source" in the UI: local files, or links into the Git host when FIN_SOURCE_GIT_URL is set).

`defs` is what Dagster loads (`dg dev`, `dagster dev`, the code server with
`-m fin_assets.definitions`); commands call `build_definitions()` once their environment is final.
"""

import warnings
from pathlib import Path

import dagster as dg
from dagster_shared.record import replace

import fin_assets.defs
from fin_assets.lib import settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent

OWNERS_BY_GROUP = {
    "batch": "team:market-data",
    "near_real_time": "team:trading-stream",
    "search": "team:search",
}


def load_flows() -> dg.Definitions:
    """Every definitions.py under fin_assets/defs/, merged.

    This is `dg.load_from_defs_folder`'s loader given the defs module itself: that function finds
    the folder through pyproject.toml's [tool.dg], which an installed wheel (the docker image)
    does not carry.
    """
    tree = dg.ComponentTree.from_module(defs_module=fin_assets.defs, project_root=PROJECT_ROOT)
    with warnings.catch_warnings():  # the loader's own module scan is marked preview
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return tree.build_defs()


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


def apply_policies(flows: dg.Definitions) -> dg.Definitions:
    with warnings.catch_warnings():  # code references and spec mapping are marked beta
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        # A copy with other assets, as Definitions' own map_* methods make it.
        referenced = replace(flows, assets=with_code_references(list(flows.assets or [])))
        return referenced.map_asset_specs(func=with_owner)


def build_definitions() -> dg.Definitions:
    # Every step here is small; running a run's steps in its own process, one after the other,
    # saves the few seconds per step that a fresh Python process with dagster and pandas costs.
    return apply_policies(
        dg.Definitions.merge(load_flows(), dg.Definitions(executor=dg.in_process_executor))
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
