"""The replay screen driven by Textual's Pilot over a journal written by the real journal writer."""

from __future__ import annotations

import time
from pathlib import Path

from cockpit.core.journal import Journal
from cockpit.tui.replay import ReplayApp


async def test_replay_keys(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    t0 = time.time() - 3600
    with Journal(path) as j:
        for s in range(0, 3600, 10):
            j.samples({"error_rate_green": float(s)}, ts=t0 + s)
        j.event("alarm.raised", {"metric": "error_rate_green", "level": "critical", "message": "errors high"})
    app = ReplayApp(path, speed=1.0, at=t0)
    async with app.run_test() as pilot:
        deadline = time.monotonic() + 30
        while app.view is None:
            assert time.monotonic() < deadline
            await pilot.pause(0.05)
        await pilot.press("space")
        assert app.paused
        frozen = app.now
        await pilot.pause(0.3)
        assert app.now == frozen
        await pilot.press("plus")
        assert app.speed == 2.0
        await pilot.press("minus", "minus")
        assert app.speed == 0.5
        await pilot.press("n")
        assert app.view is not None and app.view.events_so_far == 1
        assert [a["metric"] for a in app.view.alarms] == ["error_rate_green"]
        assert app.view.metrics["error_rate_green"] == 3590.0
        await pilot.press("space")
        assert not app.paused
