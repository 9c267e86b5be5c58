"""`callrate numbering build`: regenerate the numbering-plan tables the tariffs carry."""

from __future__ import annotations

import argparse
from typing import Any

from service.rating import NUMBERING_DIR


def run(args: argparse.Namespace) -> int:
    """`callrate numbering build`: write the tables and print what the build found."""
    from service.tools.numbering_build import build

    report = build(args.tariffs / NUMBERING_DIR)
    print("\n".join(report.lines()))
    return 0


def add_parser(commands: Any) -> None:
    """Add `numbering build` to the `callrate` subcommands."""
    numbering = commands.add_parser("numbering", help="numbering-plan tables")
    numbering_commands = numbering.add_subparsers(
        dest="numbering_command", required=True, metavar="COMMAND"
    )
    build = numbering_commands.add_parser(
        "build", help="regenerate TARIFFS/numbering/*.tsv from the installed phonenumbers"
    )
    build.set_defaults(handler=run)
