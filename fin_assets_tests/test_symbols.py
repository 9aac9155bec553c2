"""Symbols are validated before they reach a URL or a path, and every bad one is named."""

import pytest

from fin_assets.lib import config
from fin_assets.lib.symbols import InvalidSymbolError, parse_symbols, validate_symbol


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("TSLA", "TSLA"),
        (" tsla ", "TSLA"),
        ("RELIANCE.BSE", "RELIANCE.BSE"),
        ("brk.b", "BRK.B"),
        ("BRK-B", "BRK-B"),
        ("600104.SHH", "600104.SHH"),
        ("A" * 20, "A" * 20),
    ],
)
def test_valid_symbols_are_normalised(raw, expected):
    assert validate_symbol(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("../../X", "only letters"),
        ("a/b", "only letters"),
        ("..", "only letters"),
        (".BSE", "only letters"),
        ("TSLA.", "only letters"),
        ("NOPE$", "only letters"),
        ("TSL\u0391", "only letters"),  # a Greek capital alpha, not an A
        ("TS LA", "whitespace"),
        ("TS\tLA", "whitespace"),
        ("", "empty"),
        ("   ", "empty"),
        ("A" * 21, "longer than 20"),
        ("X" * 300, "longer than 20"),
    ],
)
def test_invalid_symbols_are_refused_naming_the_text(raw, reason):
    with pytest.raises(InvalidSymbolError) as failure:
        validate_symbol(raw)
    message = str(failure.value)
    assert reason in message
    assert isinstance(failure.value, ValueError)
    assert repr(raw[:40]) in message  # the offending text, as typed (cut to 40 characters)
    assert len(message) < 200  # a 300-character symbol is shown cut


def test_parse_symbols_strips_deduplicates_and_keeps_order():
    assert parse_symbols(" tsla, IBM,,tsla , reliance.bse ") == ["TSLA", "IBM", "RELIANCE.BSE"]
    assert parse_symbols("") == []


def test_parse_symbols_reports_every_invalid_entry_at_once():
    with pytest.raises(InvalidSymbolError) as failure:
        parse_symbols("TSLA,../../X, a/b ,IBM," + "Z" * 300)
    error = failure.value
    assert error.symbols == ["../../X", "a/b", "Z" * 300]
    message = str(error)
    assert "'../../X'" in message and "'a/b'" in message and "(300 characters)" in message
    assert "TSLA" not in message and "IBM" not in message


def test_config_parse_symbols_delegates():
    assert config.parse_symbols("tsla,ibm") == ["TSLA", "IBM"]
    with pytest.raises(InvalidSymbolError, match="'a/b'"):
        config.parse_symbols("TSLA,a/b")
