"""`cockpit rehearse`'s machinery: the day (`day.Rehearsal`), its scenarios and what it measures (in the CLI layer:
it drives the controller, which the lab may not import)."""

from cockpit.cli.rehearsal.day import Rehearsal
from cockpit.cli.rehearsal.measure import Outcome
from cockpit.cli.rehearsal.scenarios import SCENARIOS, Scenario

__all__ = ["SCENARIOS", "Outcome", "Rehearsal", "Scenario"]
