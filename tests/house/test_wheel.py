"""A wheel that works: built from this checkout, installed into a fresh virtualenv, it carries themes/ and plans/
and, from a folder far from any checkout, opens the lab plan's screen headless with its stylesheet applied.

The fresh virtualenv gets the wheel itself with --no-deps; its dependencies come from this checkout's
virtualenv through a .pth line (a site directory added that way has its own .pth files ignored, so this
checkout's editable install cannot leak in). Building uses pip's isolated build (setuptools from the registry,
then from pip's cache).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LEFT_OUT = (".git", ".venv", ".cockpit", "build", "*.egg-info", "__pycache__", ".*_cache", "tests")

SCREEN = """
import asyncio, sys
from pathlib import Path

import cockpit
from cockpit.control.view import build_state
from cockpit.core import resources
from cockpit.core.phases import Machine
from cockpit.core.plan import load_plan
from cockpit.tui.app import CockpitApp

assert "site-packages" in cockpit.__file__, cockpit.__file__  # the wheel, not a checkout
plan = load_plan(resources.plan_template("lab.yaml"), env={})
state = build_state(plan, Machine(), read_only=True, message="from the wheel")


async def main() -> None:
    app = CockpitApp(plan, read_only=True, state_source=lambda: state)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert Path(app.css_path[0]).is_file(), app.css_path
        # themes/cockpit.tcss sizes the status line to one row and caps the result panel at two
        assert app.query_one("#status").size.height == 1
        assert app.query_one("#result").styles.max_height.value == 2
        print("screen up:", app.title, "styles from", app.css_path[0])


asyncio.run(main())
"""


def test_the_wheel_ships_themes_and_plans_and_opens_the_lab_screen(tmp_path: Path) -> None:
    source = tmp_path / "source"  # setuptools builds in the source folder (build/, *.egg-info): not in ours
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*LEFT_OUT))
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = dist.glob("cockpit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "cockpit/themes/cockpit.tcss" in names and "cockpit/plans/lab.yaml" in names
    assert "cockpit/themes/dark.toml" in names and "cockpit/themes/light.toml" in names
    assert "cockpit/cli/main.py" in names and "cockpit/drivers/sync/runner.py" in names

    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=False)
    python = fresh / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "checkout_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COCKPIT_PLAN")}
    out = subprocess.run(
        [str(python), "-c", SCREEN], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "screen up: cockpit · lab styles from" in out.stdout and str(site) in out.stdout
    assert not list(elsewhere.iterdir())  # nothing written where it ran
