"""Where the pipeline keeps its files and which symbols it follows."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from fin_assets import config, symbols


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
    return PipelineSettings(
        data_dir=config.env_or_default("FIN_DATA_DIR", config.DEFAULT_DATA_DIR),
        symbols=config.env_or_default("FIN_SYMBOLS", config.DEFAULT_SYMBOLS),
    )


def configured_symbols() -> list[str]:
    """FIN_SYMBOLS, validated: a symbol that could not be a ticker (`../x`, 300 characters)
    stops the code location from loading with a message naming it."""
    try:
        return symbols.parse_symbols(os.environ.get("FIN_SYMBOLS") or config.DEFAULT_SYMBOLS)
    except symbols.InvalidSymbolError as error:
        raise InvalidSymbolSetting(error.problems) from None


class InvalidSymbolSetting(symbols.InvalidSymbolError):
    """An invalid symbol in FIN_SYMBOLS; the message says where it came from."""

    def __str__(self) -> str:
        return f"FIN_SYMBOLS: {super().__str__()}"
