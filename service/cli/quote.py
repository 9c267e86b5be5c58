"""`callrate quote`: what calls would cost, one JSON request or NDJSON lines, offline."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TextIO

import orjson

from service.cli.errors import UsageError, check_plan, load_rater_or_refuse
from service.config import get_settings
from service.rating.rejections import Rejected
from service.rating.scalar import Rater, SubscriberProfile

UNREADABLE_LINE = {
    "rejected": True,
    "field": "record",
    "code": "record.invalid",
    "reason": "line is not valid JSON",
}


@dataclass
class QuoteTally:
    """What `quote_lines` answered: every request, those rejected, lines that were not JSON."""

    answered: int = 0
    rejected: int = 0
    unreadable: int = 0


def quote_lines(
    rater: Rater,
    lines: Iterable[str | bytes],
    out: TextIO,
    *,
    subscriber: SubscriberProfile | None = None,
) -> QuoteTally:
    """Rate each JSON quote request line; print one result (or rejection) per line.

    `subscriber`: the profile of a caller without a plan (CALLRATE_DEFAULT_PLAN), as the
    service uses for a caller its registry does not know."""
    tally = QuoteTally()
    for line in lines:
        if not line.strip():
            continue
        result: dict[str, Any]
        try:
            result = rater.rate_raw(orjson.loads(line), subscriber=subscriber).to_dict()
        except orjson.JSONDecodeError:
            result = UNREADABLE_LINE
            tally.unreadable += 1
        except Rejected as rejection:
            result = rejection.to_dict()
            tally.rejected += 1
        out.write(orjson.dumps(result).decode() + "\n")
        tally.answered += 1
    return tally


def run(args: argparse.Namespace) -> int:
    """`callrate quote`: one request, or NDJSON lines on stdin; exit 1 as the help says."""
    if args.request is not None:
        try:
            orjson.loads(args.request)
        except orjson.JSONDecodeError as exc:
            raise UsageError(f"the quote request is not JSON: {exc}") from exc
    rater = load_rater_or_refuse(args.tariffs)
    default_plan = get_settings().default_plan
    check_plan(rater, default_plan, source="CALLRATE_DEFAULT_PLAN")
    subscriber = SubscriberProfile(plan=default_plan) if default_plan else None
    if args.request is not None:
        # one request: a rejection is its answer on stdout, and exit code 1
        tally = quote_lines(rater, [args.request], sys.stdout, subscriber=subscriber)
        return 1 if tally.rejected else 0
    # NDJSON: every line is answered; only a line that could not be read fails the run
    tally = quote_lines(rater, sys.stdin.buffer, sys.stdout, subscriber=subscriber)
    return 1 if tally.unreadable else 0


def add_parser(commands: Any) -> None:
    """Add `quote` to the `callrate` subcommands."""
    quote = commands.add_parser(
        "quote",
        help="rate quote requests: one JSON argument or NDJSON on stdin",
        description="Rate one quote request (SPEC §3.1 fields, no id) and print the rating as "
        "JSON; exit 1 if it is rejected (the rejection is printed). Without REQUEST, read "
        "NDJSON requests on stdin and answer each line; exit 1 only if a line is not JSON. "
        "A request without a plan uses CALLRATE_DEFAULT_PLAN when set.",
    )
    quote.add_argument(
        "request",
        nargs="?",
        metavar="REQUEST",
        help='one JSON quote request, e.g. \'{"caller": "13800138000", "callee": '
        '"02188001234", "start": "2010-03-01T10:00:00+08:00", "duration_s": 125, '
        '"plan": "gotone"}\'; omit to read NDJSON from stdin',
    )
    quote.set_defaults(handler=run)
