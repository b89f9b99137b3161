"""Blue (SQLite): readable and writable, WAL, the write lock, integrity of a copy (never the live file), room for
backups."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile

from cockpit.control.preflight import Context
from cockpit.core.checks import FAIL, PASS, WARN, Check
from cockpit.drivers.metrics.system import _existing


def checks(ctx: Context) -> list[Check]:
    db = ctx.plan.blue.database
    if db.engine != "sqlite":
        return [Check("blue", "engine", WARN, f"blue is {db.engine}", "preflight checks a SQLite blue")]
    path = ctx.plan.path(db.path)
    if not path.is_file():
        return [Check("blue", "file", FAIL, f"no file at {path}", "fix blue.database.path")]
    if not (os.access(path, os.R_OK | os.W_OK) and os.access(path.parent, os.W_OK)):
        return [Check("blue", "file", FAIL, f"{path} or its folder is not writable", "run as the app's user")]
    out = [Check("blue", "file", PASS, f"{path} readable and writable")]
    conn = sqlite3.connect(str(path), timeout=ctx.timeout, isolation_level=None)
    try:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        out.append(
            Check("blue", "wal", PASS, "journal_mode=wal")
            if mode == "wal"
            else Check(
                "blue",
                "wal",
                WARN,
                f"journal_mode={mode}",
                "PRAGMA journal_mode=WAL while the app is quiet: readers stop blocking the writer "
                "(the file then needs its -wal and -shm beside it)",
            )
        )
        conn.execute(f"PRAGMA busy_timeout = {int(ctx.timeout * 1000)}")
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            out.append(Check("blue", "busy_timeout", PASS, f"write lock taken within {ctx.timeout:g}s"))
        except sqlite3.OperationalError as exc:
            out.append(
                Check("blue", "busy_timeout", FAIL, f"write lock: {exc}", "find the process holding it")
            )
        out.append(_integrity(conn))
    finally:
        conn.close()
    out.append(_room(ctx, path))
    return out


def _integrity(conn: sqlite3.Connection) -> Check:
    with tempfile.TemporaryDirectory(prefix="cockpit-preflight-") as tmp:
        copy = sqlite3.connect(os.path.join(tmp, "copy.db"))
        try:
            conn.backup(copy)
            said = [r[0] for r in copy.execute("PRAGMA integrity_check").fetchall()]
        finally:
            copy.close()
    if said == ["ok"]:
        return Check("blue", "integrity_check", PASS, "ok (on a copy)")
    return Check("blue", "integrity_check", FAIL, "; ".join(said[:3]), "restore from a verified backup")


def _room(ctx: Context, path: os.PathLike[str]) -> Check:
    size = os.path.getsize(path)
    folder = _existing(ctx.plan.path(ctx.plan.backup.folder))
    free = shutil.disk_usage(folder).free
    found = f"file {size / 1e6:.1f} MB, {free / 1e6:.1f} MB free in {folder}"
    if free < 2 * size:
        return Check("blue", "room for backups", FAIL, found, "free disk: a backup needs twice the file")
    return Check("blue", "room for backups", PASS, found)
