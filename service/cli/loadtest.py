"""`callrate loadtest`: ingestion throughput or quote latency against a local server."""

from __future__ import annotations

import argparse
from typing import Any


def run(args: argparse.Namespace) -> int:
    """`callrate loadtest`: the load generator against a running server."""
    from service.tools import loadtest

    return loadtest.run(args)


def add_parser(commands: Any) -> None:
    """Add `loadtest` to the `callrate` subcommands."""
    from service.tools.loadtest import add_arguments

    loadtest = commands.add_parser(
        "loadtest", help="measure ingestion throughput or quote latency against a local server"
    )
    add_arguments(loadtest)
    loadtest.set_defaults(handler=run)
