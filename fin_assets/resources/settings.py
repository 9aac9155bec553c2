"""Where the pipeline keeps its files and which symbols it follows."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from fin_assets import config


class PipelineSettings(dg.ConfigurableResource):
    """`FIN_DATA_DIR` and `FIN_SYMBOLS`, shared by every flow."""

    data_dir: str = config.DEFAULT_DATA_DIR
    symbols: str = config.DEFAULT_SYMBOLS

    @property
    def symbol_list(self) -> list[str]:
        return config.parse_symbols(self.symbols)

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
