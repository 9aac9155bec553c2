"""Ticker symbols as Alpha Vantage spells them, checked before they reach a URL or a path.

A symbol becomes a folder (`raw/<SYMBOL>/`) and a file name (`history/<SYMBOL>.csv`), so every
symbol from the environment, the CLI, the launchpad or a partition key goes through
`validate_symbol` first: `../../X`, `a/b` or a 300-character string never reach the file system.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

MAX_SYMBOL_LENGTH = 20
# ASCII letters and digits, with '.' (exchange suffix, share class: RELIANCE.BSE, BRK.B) and '-'
# (BRK-B) inside only: a leading or trailing dot could make '.' or '..' out of a path segment.
_SYMBOL = re.compile(r"[A-Z0-9](?:[A-Z0-9.\-]*[A-Z0-9])?", re.ASCII)
_SHOWN_CHARS = 40


class InvalidSymbolError(ValueError):
    """One or more symbols are not Alpha Vantage symbols; the message names each offending text."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems  # (raw text, reason)
        self.symbols = [raw for raw, _ in problems]
        listed = "; ".join(f"{_shown(raw)}: {reason}" for raw, reason in problems)
        noun = "symbol" if len(problems) == 1 else "symbols"
        super().__init__(f"invalid {noun}: {listed}")


def _shown(raw: str) -> str:
    """`repr` of the text, cut to ~40 characters so a pasted paragraph stays readable."""
    if len(raw) > _SHOWN_CHARS:
        return repr(raw[:_SHOWN_CHARS]) + f"… ({len(raw)} characters)"
    return repr(raw)


def symbol_problem(raw: str) -> str | None:
    """Why `raw` is not a valid symbol, or None when it is one."""
    text = raw.strip()
    if not text:
        return "empty"
    if len(text) > MAX_SYMBOL_LENGTH:
        return f"longer than {MAX_SYMBOL_LENGTH} characters"
    if any(ch.isspace() for ch in text):
        return "contains whitespace"
    if not _SYMBOL.fullmatch(text.upper()):
        return (
            "only letters A-Z, digits, '.' and '-' are allowed, "
            "starting and ending with a letter or digit"
        )
    return None


def validate_symbol(raw: str) -> str:
    """`" tsla "` -> `"TSLA"`; raises `InvalidSymbolError` naming the text when it is no symbol."""
    if not isinstance(raw, str):
        raise InvalidSymbolError([(repr(raw), "not a string")])
    problem = symbol_problem(raw)
    if problem:
        raise InvalidSymbolError([(raw, problem)])
    return raw.strip().upper()


def parse_symbols(text: str) -> list[str]:
    """`" tsla, IBM,,tsla "` -> `["TSLA", "IBM"]`: upper case, blanks skipped, first occurrence
    kept; every invalid entry is reported in one `InvalidSymbolError`."""
    seen: dict[str, None] = {}
    problems: list[tuple[str, str]] = []
    for part in text.split(","):
        if not part.strip():
            continue
        problem = symbol_problem(part)
        if problem:
            problems.append((part.strip(), problem))
        else:
            seen.setdefault(part.strip().upper(), None)
    if problems:
        raise InvalidSymbolError(problems)
    return list(seen)


class UnconfiguredSymbolError(ValueError):
    """A symbol asked for that FIN_SYMBOLS does not list, so it has no partition."""


def contiguous_ranges(configured: Sequence[str], requested: Iterable[str]) -> list[list[str]]:
    """`requested` as runs of neighbouring partitions, in the configured order: each run of a
    static partition set covers a key range. Refuses a symbol that is not configured."""
    wanted = set(requested)
    unknown = sorted(wanted - set(configured))
    if unknown:
        raise UnconfiguredSymbolError(
            f"not in FIN_SYMBOLS ({','.join(configured)}): {', '.join(unknown)}. "
            "Add it to FIN_SYMBOLS to give it a partition, then run it."
        )
    ranges: list[list[str]] = []
    previous_taken = False
    for symbol in configured:
        taken = symbol in wanted
        if taken and previous_taken:
            ranges[-1].append(symbol)
        elif taken:
            ranges.append([symbol])
        previous_taken = taken
    return ranges
