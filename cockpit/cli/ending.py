"""`cockpit finalize` and `cockpit abandon`: the two ends of a migration (cockpit.control.ending), for good.

Both refuse without --yes (nothing asks interactively: what is done cannot be undone, so it is said on the command
line, in the shell's history). `abandon --drop-green DBNAME` drops green's copy too, DBNAME typed to confirm.
Run beside a controller, the command is queued to it like every action.
"""

from __future__ import annotations

import argparse
from typing import Any

from cockpit.core.errors import UsageError


def register(subparsers: Any) -> None:
    from cockpit.cli.main import action_parser

    fin = action_parser(
        subparsers,
        "finalize",
        "end the migration on green, after the last phase's soak: integrity, stop the sync, green's keys count "
        "up, capture removed, blue archived, notify, report (for good)",
    )
    fin.add_argument("--reason", default="")
    fin.set_defaults(func=_finalize)
    ab = action_parser(
        subparsers,
        "abandon",
        "end the migration on blue: all traffic on blue and drained, capture removed from both sides, "
        "optionally green's copy dropped (for good)",
    )
    ab.add_argument("--reason", default="")
    ab.add_argument(
        "--drop-green",
        metavar="DBNAME",
        default="",
        help="also drop green's database; type its name to confirm (it must match the plan's green URL)",
    )
    ab.set_defaults(func=_abandon)


def _confirmed(args: argparse.Namespace, what: str) -> None:
    if not args.yes:
        raise UsageError(f"{what} cannot be undone: say so with --yes (nothing was done)")


def _finalize(args: argparse.Namespace) -> int:
    from cockpit.cli.main import perform, print_result, require_plan

    _confirmed(args, "finalize")
    plan = require_plan(args)
    cmd = {"reason": args.reason or "finalize"}
    return print_result(perform(plan, "finalize", cmd, args.wait), args.json)


def _abandon(args: argparse.Namespace) -> int:
    from cockpit.cli.main import perform, print_result, require_plan

    _confirmed(args, "abandon")
    plan = require_plan(args)
    cmd = {"reason": args.reason or "abandon", "drop_green": args.drop_green}
    return print_result(perform(plan, "abandon", cmd, args.wait), args.json)
