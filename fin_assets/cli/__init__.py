"""`fin-assets`: the project's command line.

- `fin-assets batch`: materialise the batch assets (and their checks) through Dagster.
- `fin-assets simulate`: the transaction simulator outside Dagster.
- `fin-assets simulator-job`: the simulator job through Dagster for a bounded time.
- `fin-assets stand-in`: serve the local Alpha Vantage stand-in.
- `fin-assets dev`: `dg dev`, plus what `dg dev` cannot do: the stand-in when no API key is
  set, the instance's dagster.yaml (the `alpha_vantage` pool), and a stop (SIGTERM, Ctrl-C)
  that stops everything it started, simulator runs included.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fin-assets", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    from fin_assets.cli import batch as batch_cli
    from fin_assets.cli import simulator as simulator_cli

    batch_cli.add_commands(commands)
    simulator_cli.add_commands(commands)

    dev = commands.add_parser(
        "dev", help="dg dev (the UI, schedules, sensors), on the stand-in when no key is set"
    )
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", default="3000")
    dev.set_defaults(handler=run_dev)
    return parser


def run_dev(args: argparse.Namespace) -> int:
    from fin_assets.cli.batch import alpha_vantage_source
    from fin_assets.cli.dev import run_dagster_dev
    from fin_assets.cli.instance import ensure_instance_config
    from fin_assets.lib.settings import default_dagster_home

    ensure_instance_config(default_dagster_home(Path(".dagster_home").resolve()))
    # `dg dev` finds the project through pyproject.toml's [tool.dg] in the working directory.
    dg = Path(sys.executable).with_name("dg")
    if not dg.exists():
        print(
            f"fin-assets dev: {dg} is missing; install the dev tools: scripts/setup.sh",
            file=sys.stderr,
        )
        return 2
    command = [str(dg), "dev", "--host", args.host, "--port", str(args.port)]
    # The stand-in (when used) lives in this process, so it serves for as long as the UI runs.
    with alpha_vantage_source():
        return run_dagster_dev(command, log=lambda line: print(line, file=sys.stderr, flush=True))


def main(argv: list[str] | None = None) -> int:
    # Dagster 1.13 warns about its own internal use of a beta sensor parameter (`owners`) when
    # it resolves jobs; nothing a user of this CLI can act on.
    warnings.filterwarnings("ignore", message=".*`owners`.*", category=Warning)
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
