"""Subcommands of the simulator flow (placeholder until the simulator lands)."""

import argparse


def add_commands(commands: argparse._SubParsersAction) -> None:
    pass
