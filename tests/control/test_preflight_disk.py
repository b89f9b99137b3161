"""Little free disk for backups: the backup folder on a real small tmpfs (mounted here; root only), against a blue
file that needs more than it has, then a tmpfs big enough."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.control.preflight_support import check, make_plan, run_json

BLUE_BYTES = 1_500_000  # a backup needs twice the file: 3 MB


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        where = tmp_path / f"disk-{size}"
        where.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", str(where)], check=True)


def _plan(tmp_path: Path, pg_url: str, folder: Path) -> Path:
    plan = make_plan(tmp_path, pg_url, f"backup: {{folder: '{folder}'}}\n")
    conn = sqlite3.connect(tmp_path / "blue.db")
    conn.execute("INSERT INTO t (v) VALUES (?)", ("x" * BLUE_BYTES,))
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert (tmp_path / "blue.db").stat().st_size >= BLUE_BYTES
    return plan


def test_a_small_disk_for_backups_fails(
    tmp_path: Path, pg_url: str, tmpfs: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = run_json(_plan(tmp_path, pg_url, tmpfs("2m")), capsys)
    assert code == 1
    room = check(doc, "blue", "room for backups")
    assert room["status"] == "fail" and "twice the file" in room["do"], room


def test_a_big_enough_disk_for_backups_passes(
    tmp_path: Path, pg_url: str, tmpfs: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _code, doc = run_json(_plan(tmp_path, pg_url, tmpfs("8m")), capsys)
    room = check(doc, "blue", "room for backups")
    assert room["status"] == "pass" and "disk-8m" in room["found"], room
