"""The `callrate` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from service.config import get_settings
from service.rating import NUMBERING_DIR, load_rater
from service.rating.rejections import Rejected
from service.rating.scalar import Rater

Command = Callable[[argparse.Namespace], int]


def quote_lines(rater: Rater, lines: Iterable[str | bytes], out: TextIO) -> int:
    """Rate each JSON quote request line; print one result (or rejection) per line."""
    count = 0
    for line in lines:
        if not line.strip():
            continue
        result: dict[str, Any]
        try:
            result = rater.rate_raw(orjson.loads(line)).to_dict()
        except orjson.JSONDecodeError:
            result = {
                "rejected": True,
                "field": "record",
                "code": "record.invalid",
                "reason": "line is not valid JSON",
            }
        except Rejected as rejection:
            result = rejection.to_dict()
        out.write(orjson.dumps(result).decode() + "\n")
        count += 1
    return count


def _quote(args: argparse.Namespace) -> int:
    rater = load_rater(args.tariffs)
    source: Iterable[str | bytes] = [args.request] if args.request else sys.stdin.buffer
    quote_lines(rater, source, sys.stdout)
    return 0


def _numbering_build(args: argparse.Namespace) -> int:
    from service.numbering_build import build

    report = build(args.tariffs / NUMBERING_DIR)
    print("\n".join(report.lines()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Every `callrate` subcommand."""
    parser = argparse.ArgumentParser(prog="callrate", description=__doc__)
    parser.add_argument(
        "--tariffs", type=Path, default=None, help="tariff directory (default: bundled)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    quote = commands.add_parser(
        "quote", help="rate quote requests: one JSON argument or NDJSON on stdin"
    )
    quote.add_argument(
        "request", nargs="?", help="one JSON quote request; omit to read NDJSON from stdin"
    )
    quote.set_defaults(handler=_quote)

    numbering = commands.add_parser("numbering", help="numbering-plan tables")
    numbering_commands = numbering.add_subparsers(dest="numbering_command", required=True)
    build = numbering_commands.add_parser(
        "build", help="regenerate tariffs/numbering from phonenumbers"
    )
    build.set_defaults(handler=_numbering_build)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `callrate` console script."""
    args = build_parser().parse_args(argv)
    if args.tariffs is None:
        args.tariffs = get_settings().tariffs_dir
    handler: Command = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
