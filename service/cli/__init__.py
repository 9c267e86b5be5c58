"""The `callrate` command line: one module per command group, assembled here.

`quote`, `rate`, `ingest`, `bench`, `rerate`, `tariffs`, `numbering`, `serve` (with
`db upgrade`), `keys` and `loadtest` each add their parser (`add_parser`) and hold their
handler; `errors` holds the checks that turn a user's mistake into one line on stderr and exit
code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from service.cli import (
    bench,
    ingest,
    keys,
    loadtest,
    numbering,
    quote,
    rate,
    rerate,
    serve,
    tariffs,
)
from service.cli.errors import USAGE_EXIT, UsageError
from service.config import get_settings

Command = Callable[[argparse.Namespace], int]
# in --help order
COMMAND_GROUPS = (quote, numbering, rate, ingest, bench, rerate, tariffs, serve, keys, loadtest)


class HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help unless it has no default or names one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS)
        if shown and "default" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`callrate rate: error: ...`, exit 2) and defaults shown.

    Subcommand parsers are made with this class too (argparse uses the parent's type)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_EXIT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Every `callrate` subcommand."""
    parser = Parser(
        prog="callrate",
        description="Rate telephony calls to the fen: quote, rate files, serve the HTTP API.",
        epilog="Settings come from CALLRATE_* environment variables (see README.md).",
    )
    parser.add_argument(
        "--tariffs",
        type=Path,
        default=None,
        metavar="DIR",
        help="tariff directory: *.toml versions and numbering/ tables "
        "(default: CALLRATE_TARIFFS_DIR, else the bundled tariffs/)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for group in COMMAND_GROUPS:
        group.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `callrate` console script."""
    from pydantic import ValidationError

    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()  # read once: every later get_settings() is this one
    except ValidationError as exc:  # a CALLRATE_* variable that does not parse
        problem = exc.errors()[0]
        name = "CALLRATE_" + "_".join(str(part) for part in problem["loc"]).upper()
        print(f"{_prog(args)}: {name}: {problem['msg']}", file=sys.stderr)
        return USAGE_EXIT
    if args.tariffs is None:
        args.tariffs = settings.tariffs_dir
    handler: Command = args.handler
    try:
        return handler(args)
    except UsageError as exc:
        print(f"{_prog(args)}: {exc}", file=sys.stderr)
        return USAGE_EXIT
    except KeyboardInterrupt:
        print(f"{_prog(args)}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped early (`callrate quote < cdrs | head`)
        # Python would report the failed flush of stdout at exit: point stdout elsewhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE


def _prog(args: argparse.Namespace) -> str:
    """`callrate keys revoke`: the command words that were given."""
    words = [value for name, value in vars(args).items() if name.endswith("command") and value]
    return " ".join(["callrate", *words])
