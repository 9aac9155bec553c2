"""`fin-assets`: the project's command line.

- `fin-assets batch`: materialise the batch assets (and their checks) through Dagster.
- `fin-assets simulate`: the transaction simulator outside Dagster.
- `fin-assets simulator-job`: the simulator job through Dagster for a bounded time.
- `fin-assets stand-in`: serve the local Alpha Vantage stand-in.
- `fin-assets dev`: `dagster dev`, with the stand-in when no API key is set.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fin-assets", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    from fin_assets.batch import cli as batch_cli
    from fin_assets.simulator import cli as simulator_cli

    batch_cli.add_commands(commands)
    simulator_cli.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
