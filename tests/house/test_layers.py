"""The layers hold at run time too: the core, the controller, the drivers and the lab load without Textual."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEADLESS = [
    "cockpit.core.plan",
    "cockpit.core.journal",
    "cockpit.core.phases",
    "cockpit.core.rules",
    "cockpit.core.state",
    "cockpit.control.controller",
    "cockpit.control.session",
    "cockpit.control.factory",
    "cockpit.drivers.sync.runner",
    "cockpit.drivers.sync.copy",
    "cockpit.drivers.traffic.nginx",
    "cockpit.drivers.metrics.access_log",
    "cockpit.drivers.integrity",
    "cockpit.drivers.backup",
    "cockpit.drivers.notify",
    "cockpit.lab.lab",
    "cockpit.report",
    "cockpit.cli.main",
]


def _modules_after_import(modules: list[str]) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_headless_layers_never_load_textual() -> None:
    loaded = _modules_after_import(HEADLESS)
    assert "cockpit.control.controller" in loaded  # the import really happened
    leaks = sorted(m for m in loaded if m == "textual" or m.startswith("textual."))
    assert not leaks, f"textual loaded by a headless layer: {leaks[:5]}"


@pytest.mark.parametrize("module", ["cockpit.tui.app"])
def test_the_screen_does_load_textual(module: str) -> None:
    """The check above can fail: importing the screen does load Textual."""
    assert "textual" in _modules_after_import([module])
