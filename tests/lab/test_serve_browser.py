"""`cockpit serve` on a running lab, opened by headless Chromium: the page shows the phases panel and the split,
read-only, without action keys; with a token, a page without it gets nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cockpit.control.session import ControllerThread
from cockpit.core.plan import load_plan
from cockpit.lab.lab import LabOptions, down, status, up
from tests.conftest import wait_for
from tests.tui.browser import Browser, chromium

pytestmark = pytest.mark.skipif(
    chromium() is None, reason="chromium is not installed (scripts/setup installs it)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def served(tmp_path: Path, pg_url: str) -> Iterator[tuple[str, str]]:
    """A lab with its controller running, and `cockpit serve` on it with a token: (url, token)."""
    root = tmp_path / "lab"
    thread = None
    server = None
    try:
        up(LabOptions(root=root, rate=5, users=20, rows=300, pg_url=pg_url, quiet=True))
        plan_path = status(root)["plan"]
        thread = ControllerThread(load_plan(plan_path), run_sync=False)
        thread.start()
        port, token = free_port(), "s3cret-token"
        server = subprocess.Popen(
            [sys.executable, "-m", "cockpit", "-p", plan_path, "serve", "--port", str(port)],
            env={**os.environ, "COCKPIT_SERVE_TOKEN": token, "XDG_CONFIG_HOME": str(tmp_path / "config")},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        wait_for(
            lambda: listening(port) or server.poll() is not None, timeout=30, what="cockpit serve to listen"
        )
        assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
        yield f"http://127.0.0.1:{port}", token
    finally:
        if server is not None:
            server.terminate()
            server.wait(20)
        if thread is not None:
            thread.stop()
        down(root, quiet=True)


def test_the_browser_sees_the_phases_and_the_split_read_only(served, tmp_path: Path) -> None:
    url, token = served
    assert httpx.get(url + "/", timeout=10).status_code == 401  # no token, no page
    assert httpx.get(url + "/ws", timeout=10).status_code == 401  # nor its websocket
    with Browser(tmp_path) as browser:
        browser.open(f"{url}/?token={token}")
        shown = browser.wait_for_text(
            "Phases", "Traffic split", "configured", "observed", "read-only", "Quit", timeout=90
        )
    assert "ready" in shown and "validation 5%" in shown  # the lab plan's phases
    footer = [line for line in shown.splitlines() if "Quit" in line]
    assert footer and "Rollback" not in footer[-1] and "Advance" not in footer[-1]  # no action keys at all
