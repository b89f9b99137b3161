"""`cockpit rehearse`: the whole Day 0 in a fresh lab with the write ledger (logic in cockpit.cli.rehearsal: it drives the controller, which the lab may not import)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from cockpit.cli.rehearsal import SCENARIOS, Outcome, Rehearsal
from cockpit.cli.rehearsal.template import check_template
from cockpit.core.errors import EXIT_FAILED, UsageError
from cockpit.lab.errors import LabError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "rehearse", help="rehearse Day 0 in a fresh lab: every phase, then each scenario"
    )
    p.add_argument("--root", type=Path, default=Path(".cockpit/rehearsal"), help="the rehearsal lab's folder")
    p.add_argument(
        "--plan",
        dest="rehearse_plan",
        type=Path,
        metavar="PLAN",
        help="a plan template to rehearse instead of the lab's (plans/lab.yaml): the lab fills in its "
        "${COCKPIT_LAB_*} placeholders; -p and $COCKPIT_PLAN are not used here",
    )
    p.add_argument(
        "--scenario",
        default="all",
        help=f"one of {', '.join(SCENARIOS)}, several with commas, or all (default)",
    )
    p.add_argument("--fast", action="store_true", help="advance past the soaks (forced, journaled)")
    p.add_argument("--report", type=Path, help="write the report of the whole rehearsal here")
    p.add_argument(
        "--json", type=Path, metavar="FILE", help="also write each scenario's figures here as JSON"
    )
    p.add_argument("--rate", type=float, default=20.0, help="the load's requests per second (default 20)")
    p.set_defaults(func=_rehearse)


def _rehearse(args: argparse.Namespace) -> int:
    names = list(SCENARIOS) if args.scenario == "all" else [n.strip() for n in args.scenario.split(",")]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise UsageError(f"no scenario {unknown[0]!r}: choose from {', '.join(SCENARIOS)} or all")
    template = (
        check_template(args.rehearse_plan, [SCENARIOS[n] for n in names]) if args.rehearse_plan else None
    )
    reh = Rehearsal(
        args.root, fast=args.fast, rate=args.rate, say=lambda t: print(t, flush=True), template=template
    )
    outcomes: list[Outcome] = []
    try:
        reh.start()
        reh.advance_to(None)
        for name in names:
            print(f"scenario {name}: {SCENARIOS[name].what}", flush=True)
            try:
                outcomes.append(reh.run_scenario(SCENARIOS[name]))
            except LabError as exc:  # this scenario could not be measured; the others still are
                outcomes.append(Outcome(name, expect=SCENARIOS[name].expect, problems=[str(exc)]))
        if outcomes:
            outcomes.append(reh.final_check())
        if args.report is not None:
            _report(reh, args.report)
    finally:
        reh.stop()
    _table(outcomes)
    if args.json is not None:
        args.json.write_text(json.dumps([_as_dict(o) for o in outcomes], indent=1), encoding="utf-8")
    return 0 if outcomes and all(o.ok for o in outcomes) else EXIT_FAILED


def _as_dict(o: Outcome) -> dict[str, Any]:
    d = dataclasses.asdict(o)
    led = o.ledger
    d["ledger"] = (
        {
            "acknowledged": led.acknowledged,
            "missing": len(led.missing),
            "kept_in_conflicts": led.kept_in_conflicts,
        }
        if led
        else None
    )
    d["ok"] = o.ok
    return d


def _report(reh: Rehearsal, out: Path) -> None:
    from cockpit.report import write_report

    assert reh.plan is not None
    written = write_report(reh.plan.path(reh.plan.journal.path), out)
    print(f"report: {written.html}")


def _table(outcomes: list[Outcome]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="cockpit rehearse")
    for col in (
        "scenario",
        "expected",
        "fired",
        "fault→trigger (for)",
        "fault→0%",
        "rollback steps / total",
        "window",
        "failed in / out",
        "writes ack / missing (parked)",
        "sync lag after",
        "result",
    ):
        t.add_column(col)
    for o in outcomes:
        led = o.ledger
        t.add_row(
            o.scenario,
            o.expect,
            ", ".join(dict.fromkeys(o.fired)) or "-",
            f"{_s(o.trigger_s)} ({o.trigger_for_s:g}s)" if o.trigger_for_s is not None else "-",
            _s(o.zero_s),
            f"{o.rollback_steps} / {_s(o.rollback_s)}" if o.rollback_s is not None else "-",
            _s(o.window_s),
            f"{o.failed_inside} / {o.failed_outside}",
            f"{led.acknowledged} / {len(led.missing)} ({led.kept_in_conflicts})" if led else "-",
            o.lag_after,
            "ok" if o.ok else "; ".join(o.problems),
        )
    # a pipe or a CI log gets every column whole (rich would fold them into 80)
    console = Console(width=None if sys.stdout.isatty() else 250)
    console.print(t)
    for o in outcomes:
        for fact in o.facts:
            console.print(f"{o.scenario}: {fact}", markup=False, highlight=False)


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:g}s"
