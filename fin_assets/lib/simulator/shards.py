"""Which symbols each simulator shard owns: disjoint sets, so each symbol has one producer
and its events keep their order on the topic."""

from __future__ import annotations

from collections.abc import Iterable


class ShardError(ValueError):
    """A shard index or count that does not fit the symbols; the message says which."""


def assign_shards(symbols: Iterable[str], shard_count: int) -> list[list[str]]:
    """`shard_count` disjoint, non-empty symbol lists covering every symbol once.

    Round-robin over the sorted, de-duplicated symbols: the same symbols and count always give
    the same assignment, whatever order FIN_SYMBOLS lists them in, and shards differ in size by
    at most one symbol.
    """
    unique = sorted({s.strip().upper() for s in symbols if s.strip()})
    if shard_count < 1:
        raise ShardError(f"shard count must be >= 1, got {shard_count}")
    if shard_count > len(unique):
        raise ShardError(
            f"{shard_count} shards for {len(unique)} symbol(s) ({','.join(unique) or 'none'}):"
            " every shard needs at least one symbol; lower FIN_SIMULATOR_SHARDS or add symbols"
        )
    return [unique[index::shard_count] for index in range(shard_count)]


def shard_symbols(symbols: Iterable[str], shard_index: int, shard_count: int) -> list[str]:
    """The symbols of shard `shard_index` (0-based) out of `shard_count`."""
    if not 0 <= shard_index < shard_count:
        raise ShardError(f"shard {shard_index} does not exist: shards are 0..{shard_count - 1}")
    return assign_shards(symbols, shard_count)[shard_index]


def parse_shard_tags(shard: str | None, count: str | None, default_count: int) -> tuple[int, int]:
    """(index, count) from a run's shard tags; a missing index means 0, a missing count the
    configured one. Raises ShardError naming the bad tag."""
    try:
        index = int(shard) if shard not in (None, "") else 0
    except ValueError:
        raise ShardError(f"run tag fin_assets/shard={shard!r} is not an integer") from None
    try:
        total = int(count) if count not in (None, "") else default_count
    except ValueError:
        raise ShardError(f"run tag fin_assets/shards={count!r} is not an integer") from None
    if not 0 <= index < total:
        raise ShardError(
            f"run tag fin_assets/shard={index} is outside 0..{total - 1} ({total} shard(s))"
        )
    return index, total
