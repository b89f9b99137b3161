"""`cockpit rehearse --plan PLAN`: the plan template to rehearse, checked before the lab starts.

A rehearsal runs in the lab, so the plan must describe the lab's world (SQLite blue and PostgreSQL green run by
the `processes` driver behind nginx) through the lab's ${COCKPIT_LAB_*} placeholders, which `lab up` fills in
with real ports and paths; its phases, thresholds, triggers and rollback are what is rehearsed. It must name the
trigger each chosen scenario has to fire.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cockpit.cli.rehearsal.scenarios import Scenario
from cockpit.core.errors import UsageError
from cockpit.core.plan import load_plan

PLACEHOLDERS = ("COCKPIT_LAB_SQLITE", "COCKPIT_LAB_GREEN_URL", "COCKPIT_LAB_NGINX", "COCKPIT_LAB_JOURNAL")


def check_template(path: Path, scenarios: Iterable[Scenario]) -> Path:
    """The template's path, or UsageError saying what is wrong (a plan that does not load: PlanError, exit 2)."""
    if not path.is_file():
        raise UsageError(f"{path}: no such plan file")
    plan = load_plan(path)  # file:line:column for what does not parse or validate
    text = path.read_text(encoding="utf-8")
    problems = [f"it never uses ${{{name}}}" for name in PLACEHOLDERS if "${" + name not in text]
    if plan.blue.database.engine != "sqlite" or plan.green.database.engine != "postgresql":
        problems.append("blue must be on sqlite and green on postgresql, as in the lab")
    if plan.traffic.driver != "nginx":
        problems.append(f"traffic.driver is {plan.traffic.driver!r}; the lab's front door is nginx")
    for side in (plan.blue, plan.green):
        if side.services.driver != "processes":
            problems.append(
                f"services.driver is {side.services.driver!r}; the lab runs its services as processes"
            )
    if not plan.phases:
        problems.append("it has no phases")
    triggers = {t.name for t in plan.rollback.triggers}
    for sc in scenarios:
        if sc.trigger and sc.trigger not in triggers:
            problems.append(f"scenario {sc.name} must fire the trigger {sc.trigger}, which the plan lacks")
    if problems:
        raise UsageError(
            f"{path} cannot be rehearsed in the lab: "
            + "; ".join(problems)
            + " (start from plans/lab.yaml, `cockpit lab up` fills in its ${COCKPIT_LAB_*})"
        )
    return path.resolve()
