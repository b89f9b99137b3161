"""The replay clock rebuilds the view at time t from a journal written by the real journal writer."""

from __future__ import annotations

import time
from pathlib import Path

from cockpit.control.replay import ReplayClock
from cockpit.core.journal import Journal


def test_view_at_time_t(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    t0 = time.time()
    with Journal(path) as j:
        j.samples({"error_rate_green": 0.01}, ts=t0 - 100)
        j.samples({"error_rate_green": 0.09}, ts=t0 - 50)
        j.event("alarm.raised", {"metric": "error_rate_green", "level": "critical"})
    raised = time.time()
    with Journal(path) as j:
        j.event("alarm.cleared", {"metric": "error_rate_green", "level": "critical"})
    clock = ReplayClock.load(path)
    assert clock.start == t0 - 100
    assert clock.at(t0 - 99).metrics == {"error_rate_green": 0.01}
    assert clock.at(t0 - 10).metrics == {"error_rate_green": 0.09}
    assert clock.at(t0 - 200).metrics == {}
    assert [a["metric"] for a in clock.at(raised).alarms] == ["error_rate_green"]
    assert clock.at(clock.end).alarms == ()
    assert clock.at(clock.end).events_so_far == 2
    assert clock.next_event_after(t0 - 10) is not None
    assert clock.next_event_after(clock.end) is None
