"""The files under FIN_DATA_DIR as the assets' storage: strict reading that names file and line,
symbols that can never become paths outside the data folder."""

import datetime as dt

import pandas as pd
import pytest

from fin_assets.lib.alpha_vantage.stand_in import daily_series_body
from fin_assets.lib.batch import prices, storage
from fin_assets.lib.symbols import InvalidSymbolError


@pytest.fixture
def good_text() -> str:
    frame = prices.series_to_frame("TSLA", daily_series_body("TSLA", dt.date(2026, 10, 5), 5))
    return prices.to_csv_text(frame)


def lines(text: str) -> list[str]:
    return text.splitlines()


def replace_line(text: str, number: int, new: str) -> str:
    rows = lines(text)
    rows[number - 1] = new
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize(
    ("corrupt", "line", "reason"),
    [
        (lambda t: t[: len(t) - 25], 6, "empty"),  # truncated mid-row
        (lambda t: t.replace(",", ";"), 1, "';' separators"),  # saved by a spreadsheet
        (lambda t: replace_line(t, 3, "07/10/2026" + lines(t)[2][10:]), 3, "YYYY-MM-DD"),
        (lambda t: replace_line(t, 4, lines(t)[3].replace("TSLA,", "TSLA,abc", 1)), 4, "number"),
        (lambda t: replace_line(t, 2, "1677-09-21" + lines(t)[1][10:]), 2, "implausible"),
        (lambda t: replace_line(t, 5, lines(t)[4].rsplit(",", 3)[0] + ",1e308,1,1"), 5, "impl"),
        (lambda t: replace_line(t, 3, lines(t)[1]), 3, "duplicated day"),
        (lambda t: replace_line(t, 2, lines(t)[1].replace("TSLA", "IBM")), 2, "not TSLA"),
    ],
    ids=["truncated", "semicolons", "us-date", "text", "1677", "1e308", "duplicate", "symbol"],
)
def test_a_corrupt_history_names_file_line_and_cause(tmp_path, good_text, corrupt, line, reason):
    path = tmp_path / "TSLA.csv"
    path.write_text(corrupt(good_text))
    with pytest.raises(storage.StoredFileError) as raised:
        storage.read_price_file(path, "TSLA")
    assert raised.value.path == path
    assert raised.value.line == line
    assert str(raised.value).startswith(f"{path} line {line}: ")
    assert reason in str(raised.value)


def test_extra_fields_and_bad_bytes_name_the_file(tmp_path, good_text):
    path = tmp_path / "TSLA.csv"
    path.write_text(replace_line(good_text, 3, lines(good_text)[2] + ",x"))
    with pytest.raises(storage.StoredFileError, match=f"^{path}: not a 7-column CSV: .*line 3"):
        storage.read_price_file(path, "TSLA")
    path.write_bytes(good_text.encode() + b"\xff\xfe\n")
    with pytest.raises(storage.StoredFileError, match="line 7: not UTF-8"):
        storage.read_price_file(path, "TSLA")


def test_bom_and_crlf_from_a_spreadsheet_are_harmless(tmp_path, good_text):
    path = tmp_path / "TSLA.csv"
    path.write_bytes(b"\xef\xbb\xbf" + good_text.replace("\n", "\r\n").encode())
    expected = storage.parse_price_csv(good_text, path, "TSLA")
    pd.testing.assert_frame_equal(storage.read_price_file(path, "TSLA"), expected)
    assert len(expected) == 5


@pytest.mark.parametrize("symbol", ["../../X", "a/b", "X" * 300, "..", ""])
def test_symbols_that_are_not_tickers_never_become_paths(tmp_path, symbol):
    with pytest.raises(InvalidSymbolError):
        storage.HistoryStore(tmp_path / "history").path(symbol)
    with pytest.raises(InvalidSymbolError):
        storage.RawStore(tmp_path / "raw").latest(symbol)
    assert list(tmp_path.iterdir()) == []


def test_history_store_round_trip(tmp_path, good_text):
    store = storage.HistoryStore(tmp_path)
    frame = storage.parse_price_csv(good_text, tmp_path / "x", "TSLA")
    assert store.load("TSLA") is None
    assert store.save("TSLA", frame)
    assert not store.save("TSLA", frame)  # identical content: not rewritten
    pd.testing.assert_frame_equal(store.load("tsla"), frame)
