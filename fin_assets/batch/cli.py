"""Subcommands of the batch flow (placeholder until the batch lands)."""

import argparse


def add_commands(commands: argparse._SubParsersAction) -> None:
    pass
