"""The Dagster side of fin_assets/lib/settings.py: the shared `settings` resource, secrets as
`EnvVar`s, and resources that fail naming the variable when their flow's settings are bad."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from fin_assets.lib import config, settings, symbols


class PipelineSettings(dg.ConfigurableResource):
    """`FIN_DATA_DIR` and `FIN_SYMBOLS`, shared by every flow."""

    data_dir: str = config.DEFAULT_DATA_DIR
    symbols: str = config.DEFAULT_SYMBOLS

    @property
    def symbol_list(self) -> list[str]:
        return symbols.parse_symbols(self.symbols)  # each one validated

    @property
    def data_path(self) -> Path:
        path = Path(self.data_dir).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def csv_path(self) -> Path:
        return self.data_path / config.CSV_FILE_NAME

    @property
    def extraction_log_path(self) -> Path:
        return self.data_path / config.EXTRACTION_LOG_FILE_NAME

    @property
    def transactions_log_path(self) -> Path:
        return self.data_path / config.TRANSACTIONS_LOG_FILE_NAME

    @property
    def raw_dir(self) -> Path:
        return self.data_path / config.RAW_DIR_NAME

    @property
    def history_dir(self) -> Path:
        return self.data_path / config.HISTORY_DIR_NAME


def settings_from_env() -> PipelineSettings:
    """FIN_DATA_DIR and FIN_SYMBOLS, validated. Both flows need them, so a bad value stops the
    code location from loading with a message naming the variable (SettingsError)."""
    common = settings.common()
    return PipelineSettings(data_dir=common.data_dir, symbols=",".join(common.symbols))


def configured_symbols() -> list[str]:
    """FIN_SYMBOLS, validated: a symbol that could not be a ticker (`../x`, 300 characters)
    raises SettingsError naming the variable and the symbol."""
    return settings.common().symbols


def env_var_or(variable: str, value: Any) -> Any:
    """`EnvVar(variable)` when the variable is set, else `value` (the default).

    For secrets and credentials: the UI then shows the variable's name, never the value. Other
    settings are passed as the values settings.py validated.
    """
    return dg.EnvVar(variable) if settings.is_set(variable) else value


def secret_env_var(variable: str, value: Any) -> dg.EnvVar | None:
    """`EnvVar(variable)` when the secret is set (validated as `value`), else None."""
    return dg.EnvVar(variable) if value is not None else None


class UnusableSettings(Exception):
    """A resource whose flow's settings are bad; the message names the variables."""


def unusable_resource(key: str, error: settings.SettingsError) -> dg.ResourceDefinition:
    """Stands in for resource `key` when its settings are bad: the code location (and every
    other flow) still loads, and what uses `key` (a run, a sensor tick) fails with `error`,
    which names the variable and what it accepts (never a secret value)."""

    def fail(_context: dg.InitResourceContext) -> None:
        raise UnusableSettings(f"resource {key!r} cannot start: {error}")

    return dg.ResourceDefinition(resource_fn=fail, description=f"UNUSABLE SETTINGS: {error}")
