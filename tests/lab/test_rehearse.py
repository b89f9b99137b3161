"""`cockpit rehearse` end to end in a real lab (private PostgreSQL, nginx, SQLite, services, load), ~30 s."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_error_spike_rehearsal_fires_its_trigger_and_loses_no_write(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "250"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cockpit",
            "rehearse",
            "--root",
            str(tmp_path / "lab"),
            "--fast",
            "--scenario",
            "error-spike",
        ],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
    )
    text = out.stdout + out.stderr
    assert "advanced to complete (100% green)" in text, text
    row = next(line for line in text.splitlines() if "error-spike" in line and "│" in line)
    assert "error_rate_spike" in row, text
    cells = [
        c.strip() for c in row.split("│")
    ]  # '', scenario, fired, trigger, 0 %, rollback, failed, writes, ...
    acked, missing = re.fullmatch(r"(\d+) / (\d+)", cells[7]).groups()  # type: ignore[union-attr]
    assert int(acked) > 0 and int(missing) == 0, row
