"""`cockpit serve`: the screen, read-only, in a browser (for the rest of the team), through textual-serve.

    cockpit -p PLAN serve [--host 127.0.0.1] [--port 8000] [--token T]

Loopback unless told otherwise; off loopback, a token is required (or `--no-token`, said out loud). The token can
also come from $COCKPIT_SERVE_TOKEN, so it stays out of the process list.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="the screen, read-only, in a browser (no action keys; loopback unless --host says otherwise)",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument(
        "--token",
        default=os.environ.get("COCKPIT_SERVE_TOKEN", ""),
        help="a token the browser must give (?token=T); default $COCKPIT_SERVE_TOKEN",
    )
    p.add_argument(
        "--no-token",
        action="store_true",
        help="serve off loopback without a token (anyone who reaches it sees it)",
    )
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from cockpit.core.plan import load_plan

    if not args.plan:
        print("cockpit: no plan: give -p PLAN or set COCKPIT_PLAN", file=sys.stderr)
        return EXIT_USAGE
    plan = load_plan(args.plan)  # a wrong plan is refused before anything listens
    if not 0 < args.port < 65536:
        print(f"cockpit serve: --port {args.port} is not a port (1-65535)", file=sys.stderr)
        return EXIT_USAGE
    from cockpit.tui.serve import is_loopback, serve

    if not is_loopback(args.host) and not args.token and not args.no_token:
        print(
            f"cockpit serve: {args.host} is not loopback: give --token T (or $COCKPIT_SERVE_TOKEN), "
            "or --no-token to let anyone who reaches it see the screen",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        serve(args.plan, host=args.host, port=args.port, token=args.token, title=f"cockpit · {plan.name}")
    except OSError as exc:
        print(f"cockpit serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
