"""The rehearsal's scenarios: what each one breaks, the trigger it must fire, the split it starts from."""

from __future__ import annotations

from dataclasses import dataclass

DIVERGED_ROWS = 100  # of the 1,000 rows a rehearsal seeds: the integrity score falls to about 90 %, under 99


@dataclass
class Scenario:
    name: str
    trigger: str  # the plan's trigger this scenario must fire
    start_split: str  # the phase it starts from
    what: str


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("error-spike", "error_rate_spike", "ab-test", "50% of green's answers are 500"),
        Scenario(
            "neon-down", "database_connection_failure", "ab-test", "the lab's PostgreSQL really stopped"
        ),
        Scenario("slow", "response_time_degradation", "ab-test", "green answers 6 s late"),
        # last: the rows stay different until the fault is taken back, and the next check sees it
        Scenario(
            "diverging",
            "data_integrity_failure",
            "ab-test",
            f"{DIVERGED_ROWS} proposals changed on green behind the sync's back",
        ),
    )
}
