"""Themes: dark, light and high contrast from themes/, switched at run time and remembered between runs."""

from __future__ import annotations

import json
from pathlib import Path

from cockpit.tui import themes
from tests.tui.conftest import until
from tests.tui.test_snapshots import _app, _shown, snap_plan  # noqa: F401 - the fixture


def test_the_three_themes_load_from_the_themes_folder() -> None:
    found = themes.load_themes()
    assert list(found) == list(themes.ORDER)
    assert [label for label, _ in found.values()] == ["dark", "light", "high contrast"]
    assert found["cockpit-light"][1].dark is False


async def test_t_switches_the_theme_and_the_next_run_remembers_it(snap_plan, private_settings: Path) -> None:  # noqa: F811
    app = _app(snap_plan)
    async with app.run_test(size=(120, 40)) as pilot:
        await _shown(pilot)
        assert app.theme == "cockpit-dark"
        await pilot.press("t")
        await until(pilot, lambda: app.theme == "cockpit-light", what="the light theme")
        await pilot.press("t")
        await until(pilot, lambda: app.theme == "cockpit-high-contrast", what="high contrast")
        assert app.has_class("-theme-cockpit-high-contrast")
    saved = private_settings / "cockpit" / "settings.json"
    assert json.loads(saved.read_text()) == {"theme": "cockpit-high-contrast"}

    again = _app(snap_plan)
    async with again.run_test(size=(120, 40)) as pilot:
        await _shown(pilot)
        assert again.theme == "cockpit-high-contrast"
        again.theme = "textual-light"  # the palette's own themes are remembered too
        await pilot.pause()
    assert json.loads(saved.read_text()) == {"theme": "textual-light"}


def test_an_unreadable_settings_file_gives_the_defaults(private_settings: Path) -> None:
    path = private_settings / "cockpit" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    assert themes.Settings.load().theme == themes.DEFAULT
