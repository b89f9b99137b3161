"""Blue's backup on real SQLite files, real gzip and the real filesystem: take, verify, list, prune, restore."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cockpit.drivers.backup import (
    DB_FILE,
    MANIFEST_FILE,
    BackupError,
    Manifest,
    list_backups,
    prune_backups,
    restore_backup,
    take_backup,
    verify_backup,
)
from tests.conftest import wait_for
from tests.sync.test_corpus import CORPUS, FILES, MISSING

REPO = Path(__file__).resolve().parents[1]
CORPUS_FILES = FILES
ODD = '"odd ""name"" table"'


def make_db(path: Path, orders: int = 200, wal: bool = True, pad: int = 50) -> Path:
    """A small shop: orders with three lines each (an invariant a torn copy would break) and an oddly named table."""
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute(f"PRAGMA journal_mode = {'WAL' if wal else 'DELETE'}")
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, pad TEXT)")
        conn.execute(
            "CREATE TABLE lines (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id),"
            " qty INTEGER)"
        )
        conn.execute("CREATE INDEX lines_order ON lines(order_id)")
        conn.execute(f"CREATE TABLE {ODD} (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID")
        conn.execute("BEGIN")
        for _ in range(orders):
            add_order(conn, pad)
        conn.executemany(f"INSERT INTO {ODD} VALUES (?, ?)", [(f"k{i}", bytes([i])) for i in range(7)])
        conn.execute("COMMIT")
    conn.close()
    return path


def add_order(conn: sqlite3.Connection, pad: int = 50) -> None:
    cur = conn.execute("INSERT INTO orders (customer, pad) VALUES ('ana', ?)", ("x" * pad,))
    conn.executemany(
        "INSERT INTO lines (order_id, qty) VALUES (?, ?)", [(cur.lastrowid, q) for q in (1, 2, 3)]
    )


def all_rows(path: Path) -> dict[str, list[tuple]]:
    """Schema and every row of every table, in a stable order (bytes for text: the corpus has bad UTF-8)."""
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        conn.text_factory = bytes
        schema = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()
        rows: dict[str, list[tuple]] = {"<schema>": schema}
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            quoted = '"' + name.decode().replace('"', '""') + '"'
            rows[name.decode()] = sorted(conn.execute(f"SELECT * FROM {quoted}").fetchall(), key=repr)
        return rows
    finally:
        conn.close()


def counts(path: Path) -> dict[str, int]:
    return {name: len(rows) for name, rows in all_rows(path).items() if name != "<schema>"}


def tree(folder: Path) -> dict[str, tuple[int, float, str]]:
    """Every file under `folder` with size, mtime and SHA-256: to prove a check changed nothing."""
    return {
        str(p.relative_to(folder)): (
            p.stat().st_size,
            p.stat().st_mtime,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return make_db(tmp_path / "blue.db")


# ------------------------------------------------------------------------------------------------ take + verify


@pytest.mark.skipif(not CORPUS_FILES, reason=MISSING)
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_file_backed_up_verified_and_restored_exactly(tmp_path: Path, name: str) -> None:
    source = CORPUS / name
    manifest = take_backup(source, tmp_path / "backups", label=name)
    assert manifest.ok and manifest.integrity == ["ok"]
    assert manifest.tables == counts(source)
    assert manifest.source_size == source.stat().st_size
    report = verify_backup(manifest.path)
    assert report.ok, report.summary()
    assert report.tables_checked == len(manifest.tables)
    restored = restore_backup(manifest.path, tmp_path / "restored.db")
    assert all_rows(restored) == all_rows(source)


def test_manifest_describes_what_was_saved(shop: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: lab\n")
    manifest = take_backup(
        shop, tmp_path / "backups", label="pre 5%", extra_files=[plan, tmp_path / "gone.conf"]
    )
    folder = Path(manifest.path)
    assert folder.parent == tmp_path / "backups" and folder.name.endswith("Z-pre-5")
    on_disk = json.loads((folder / MANIFEST_FILE).read_text())
    assert Manifest.from_dict(on_disk, path=manifest.path) == manifest
    assert on_disk["tables"] == {"lines": 600, 'odd "name" table': 7, "orders": 200}
    assert on_disk["journal_mode"] == "wal" and on_disk["sqlite_version"] == sqlite3.sqlite_version
    assert on_disk["page_count"] * on_disk["page_size"] == on_disk["db_size"]
    with gzip.open(folder / DB_FILE) as gz:
        raw = gz.read()
    assert hashlib.sha256(raw).hexdigest() == on_disk["db_sha256"] and len(raw) == on_disk["db_size"]
    stored = {f["name"]: f for f in on_disk["files"]}
    for name, entry in stored.items():
        data = (folder / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"])
    assert (folder / "extra" / "plan.yaml").read_text() == "name: lab\n"
    assert [(e["status"], e["stored"]) for e in on_disk["extra_files"]] == [
        ("copied", "extra/plan.yaml"),
        ("missing", None),
    ]
    assert "3 tables, 807 rows, integrity ok, extra files 1/2" in manifest.summary()
    json.dumps(manifest.as_dict())


def test_rows_still_in_the_wal_are_in_the_backup(tmp_path: Path) -> None:
    db = make_db(tmp_path / "blue.db", orders=10)
    app = sqlite3.connect(db, isolation_level=None)
    try:
        app.execute("PRAGMA wal_autocheckpoint = 0")
        for _ in range(50):
            add_order(app)
        assert Path(f"{db}-wal").stat().st_size > 0
        manifest = take_backup(db, tmp_path / "backups")
    finally:
        app.close()
    assert manifest.tables["orders"] == 60 and manifest.tables["lines"] == 180
    assert manifest.source_wal_size > 0


def test_writer_keeps_writing_during_the_backup_and_the_copy_is_one_snapshot(tmp_path: Path) -> None:
    db = make_db(tmp_path / "blue.db", orders=4000, pad=1000)  # ~4 MB: 16 steps of 64 pages
    written = {"orders": 0}
    latencies: list[float] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        conn = sqlite3.connect(db, isolation_level=None, timeout=5)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            while not stop.is_set():
                start = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                add_order(conn)
                conn.execute("COMMIT")
                latencies.append(time.perf_counter() - start)
                written["orders"] += 1
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            conn.close()

    seen_at_step: list[int] = []

    def progress(step: str, done: int, total: int) -> None:
        if step == "copy" and done < total:  # let the app commit between every two steps of the copy
            before = written["orders"]
            wait_for(lambda: written["orders"] > before or errors, timeout=5, what="the writer to commit")
            seen_at_step.append(written["orders"])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_for(lambda: written["orders"] > 0 or errors, what="the writer to start")
        manifest = take_backup(db, tmp_path / "backups", progress=progress, step_pages=64)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert len(seen_at_step) >= 10 and seen_at_step[-1] > seen_at_step[0]  # the app did write during the copy
    assert manifest.copy_restarts == 0 and manifest.ok
    restored = restore_backup(manifest.path, tmp_path / "restored.db")
    conn = sqlite3.connect(restored)
    n_orders, max_id = conn.execute("SELECT count(*), max(id) FROM orders").fetchone()
    n_lines, orphans = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE order_id NOT IN (SELECT id FROM orders)) FROM lines"
    ).fetchone()
    conn.close()
    assert 4000 < n_orders < 4000 + written["orders"] and max_id == n_orders  # one instant, not a blend
    assert n_lines == 3 * n_orders and orphans == 0
    assert manifest.tables["orders"] == n_orders and manifest.tables["lines"] == n_lines
    assert verify_backup(manifest.path).ok
    assert max(latencies) < 1.0, f"the app's writes were blocked for {max(latencies):.3f} s"


def test_rollback_journal_source_that_keeps_changing_is_refused(tmp_path: Path) -> None:
    db = make_db(tmp_path / "blue.db", orders=2000, wal=False, pad=1000)
    app = sqlite3.connect(db, isolation_level=None)

    def progress(step: str, done: int, total: int) -> None:
        if step == "copy" and done < total:
            add_order(app)  # a commit between two steps: SQLite restarts the copy

    try:
        with pytest.raises(BackupError, match="kept changing during the copy .*put it in WAL mode"):
            take_backup(db, tmp_path / "backups", progress=progress, step_pages=64, max_restarts=3)
    finally:
        app.close()
    assert not (tmp_path / "backups").exists()


def test_quiet_rollback_journal_source_is_copied(tmp_path: Path) -> None:
    db = make_db(tmp_path / "blue.db", wal=False)
    manifest = take_backup(db, tmp_path / "backups", step_pages=2)
    assert manifest.journal_mode == "delete" and manifest.copy_restarts == 0
    assert verify_backup(manifest.path).ok


# ------------------------------------------------------------------------------------------------ tampering


def test_flipped_byte_in_the_gzip_fails_verify_and_restore(shop: Path, tmp_path: Path) -> None:
    folder = Path(take_backup(shop, tmp_path / "backups").path)
    gz = folder / DB_FILE
    data = bytearray(gz.read_bytes())
    data[len(data) // 2] ^= 0x01
    gz.write_bytes(bytes(data))
    before = tree(folder)
    report = verify_backup(folder)
    assert tree(folder) == before  # verify changed nothing
    assert not report.ok
    problems = {(p.file, p.what) for p in report.problems}
    assert (DB_FILE, "sha256") in problems
    assert "FAILED" in report.summary() and "blue.db.gz: sha256 expected" in report.summary()
    with pytest.raises(BackupError, match="blue.db.gz: sha256 expected"):
        restore_backup(folder, tmp_path / "restored.db")
    assert not (tmp_path / "restored.db").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_edited_row_count_in_the_manifest_fails_verify(shop: Path, tmp_path: Path) -> None:
    folder = Path(take_backup(shop, tmp_path / "backups").path)
    data = json.loads((folder / MANIFEST_FILE).read_text())
    data["tables"]["orders"] = 999
    (folder / MANIFEST_FILE).write_text(json.dumps(data))
    report = verify_backup(folder)
    assert not report.ok
    assert [p.text() for p in report.problems] == ['table "orders": rows expected 999, found 200']


def test_missing_tampered_and_unexpected_files_are_named(shop: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: lab\n")
    folder = Path(take_backup(shop, tmp_path / "backups", extra_files=[plan]).path)
    (folder / "extra" / "plan.yaml").write_text("name: evil\n")
    (folder / "notes.txt").write_text("hi")
    report = verify_backup(folder)
    texts = [p.text() for p in report.problems]
    assert any(t.startswith("extra/plan.yaml: sha256 expected") for t in texts), texts
    assert "notes.txt: file expected not in the manifest, found an unexpected file" in texts
    (folder / DB_FILE).unlink()
    texts = [p.text() for p in verify_backup(folder).problems]
    assert any(t.startswith(f"{DB_FILE}: file expected") and t.endswith("found missing") for t in texts), (
        texts
    )


def test_truncated_gzip_is_reported_not_raised(shop: Path, tmp_path: Path) -> None:
    folder = Path(take_backup(shop, tmp_path / "backups").path)
    gz = folder / DB_FILE
    gz.write_bytes(gz.read_bytes()[:-100])
    report = verify_backup(folder)
    assert {p.what for p in report.problems} >= {"size", "sha256", "gzip content"}


# ------------------------------------------------------------------------------------------------ files and modes


def test_modes_are_private_whatever_the_umask(shop: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("x")
    old = os.umask(0)
    try:
        manifest = take_backup(shop, tmp_path / "backups", extra_files=[plan])
        restored = restore_backup(manifest.path, tmp_path / "restored.db")
    finally:
        os.umask(old)
    folder = Path(manifest.path)
    assert (tmp_path / "backups").stat().st_mode & 0o777 == 0o700
    for path in [folder, folder / "extra"]:
        assert path.stat().st_mode & 0o777 == 0o700, path
    files = [folder / DB_FILE, folder / MANIFEST_FILE, folder / "extra" / "plan.yaml", restored]
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert sorted(p.name for p in folder.iterdir()) == [DB_FILE, "extra", MANIFEST_FILE]
    assert verify_backup(folder).warnings == []
    os.chmod(folder / DB_FILE, 0o644)
    report = verify_backup(folder)
    assert report.ok and report.warnings == [f"{DB_FILE}: mode 0644, expected 0600 (readable by others)"]


# ------------------------------------------------------------------------------------------------ bad input


def test_missing_source_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match=r"blue\.db does not exist"):
        take_backup(tmp_path / "blue.db", tmp_path / "a" / "backups")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content, message", [(b"", "an empty file"), (b"id,name\n1,ana\n" * 10, "not a SQLite")]
)
def test_not_a_sqlite_file_creates_nothing(tmp_path: Path, content: bytes, message: str) -> None:
    source = tmp_path / "blue.db"
    source.write_bytes(content)
    with pytest.raises(BackupError, match=message):
        take_backup(source, tmp_path / "backups")
    assert [p.name for p in tmp_path.iterdir()] == ["blue.db"]


def test_corrupt_database_behind_a_good_header_creates_nothing(tmp_path: Path) -> None:
    source = tmp_path / "blue.db"
    source.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    with pytest.raises(BackupError, match="cannot copy the SQLite database"):
        take_backup(source, tmp_path / "backups")
    assert [p.name for p in tmp_path.iterdir()] == ["blue.db"]


def test_folder_that_cannot_be_a_folder_is_refused(shop: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(BackupError, match="exists and is not a directory"):
        take_backup(shop, blocker)
    with pytest.raises(BackupError, match="cannot create the backup folder"):
        take_backup(shop, blocker / "backups")
    assert blocker.read_text() == "not a folder"
    with pytest.raises(BackupError, match="keep must be at least 1"):
        take_backup(shop, tmp_path / "backups", keep=0)
    with pytest.raises(BackupError, match="no usable character"):
        take_backup(shop, tmp_path / "backups", label="%%%")
    assert not (tmp_path / "backups").exists()


FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    from cockpit.drivers.backup import BackupError, take_backup
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[4]), int(sys.argv[4])))
    try:
        take_backup(sys.argv[1], sys.argv[2], extra_files=[sys.argv[3]])
    except BackupError as exc:
        print("BackupError:", exc)
        sys.exit(3)
""")


@pytest.mark.parametrize("limit, message", [(64 * 1024, "is the disk full?"), (4 << 20, "no space left in")])
def test_full_disk_leaves_nothing_behind(tmp_path: Path, limit: int, message: str) -> None:
    db = make_db(tmp_path / "blue.db", orders=2000, pad=200)  # ~1 MB, beyond the 64 KB limit
    big = tmp_path / "access.log"
    big.write_bytes(os.urandom(5 << 20))  # beyond the 4 MB limit: fails in the extra files, the last step
    folder = tmp_path / "backups"
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(db), str(folder), str(big), str(limit)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert message in proc.stdout
    assert not folder.exists()


# ------------------------------------------------------------------------------------------------ crashes


@pytest.mark.parametrize("at", ["copy", "check", "compress", "files"])
def test_crash_mid_backup_leaves_nothing(shop: Path, tmp_path: Path, at: str) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    earlier = take_backup(shop, folder)

    class Boom(Exception):
        pass

    def progress(step: str, done: int, total: int) -> None:
        if step == at:
            raise Boom(at)

    with pytest.raises(Boom):
        take_backup(shop, folder, progress=progress, extra_files=[shop])
    assert [m.name for m in list_backups(folder)] == [earlier.name]
    assert [p.name for p in folder.iterdir()] == [earlier.name]


KILLED = textwrap.dedent("""
    import pathlib, sys, time
    from cockpit.drivers.backup import take_backup

    def progress(step, done, total):
        if step == "compress" and done:
            pathlib.Path(sys.argv[3]).write_text("in")
            time.sleep(60)  # hang here until the test kills us

    take_backup(sys.argv[1], sys.argv[2], progress=progress)
""")


def test_killed_backup_never_looks_complete_and_is_cleaned_next_time(tmp_path: Path) -> None:
    db = make_db(tmp_path / "blue.db", orders=3000, pad=500)
    folder, marker = tmp_path / "backups", tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(db), str(folder), str(marker)], cwd=REPO)
    try:
        wait_for(
            lambda: marker.exists() or proc.poll() is not None, timeout=30, what="the backup to compress"
        )
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert list_backups(folder) == []
    leftovers = [p.name for p in folder.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".partial-")
    manifest = take_backup(db, folder)
    assert [p.name for p in folder.iterdir()] == [manifest.name]


# ------------------------------------------------------------------------------------------------ list and keep


def test_keep_prunes_only_the_oldest_cockpit_backups(shop: Path, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    names = [take_backup(shop, folder, label=f"b{i}").name for i in range(3)]
    (folder / "notes").mkdir()
    (folder / "notes" / "x.txt").write_text("mine")
    (folder / "stray.txt").write_text("mine")
    (folder / "other").mkdir()
    (folder / "other" / MANIFEST_FILE).write_text(json.dumps({"format": "someone-else/1"}))
    (folder / ".hidden").mkdir()
    newest = take_backup(shop, folder, label="b3", keep=2)
    assert [m.name for m in list_backups(folder)] == [newest.name, names[2]]
    assert sorted(Path(p).name for p in newest.pruned) == sorted(names[:2])
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [".hidden", "notes", "other", "stray.txt", newest.name, names[2]]
    )
    assert (folder / "notes" / "x.txt").read_text() == "mine"
    assert prune_backups(folder, 1, protect=[folder / names[2]]) == []  # the protected one stays
    assert [p.name for p in prune_backups(folder, 1)] == [names[2]]


def test_list_backups_newest_first_ignoring_partial_and_foreign(shop: Path, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    assert list_backups(folder) == []
    first = take_backup(shop, folder, label="one")
    second = take_backup(shop, folder, label="one")
    (folder / ".partial-1-0000abcd-elsewhere").mkdir()
    (folder / "empty").mkdir()
    listed = list_backups(folder)
    assert [m.name for m in listed] == [second.name, first.name] and first.name != second.name
    assert listed[0].path == second.path and listed[0].summary().startswith(f"backup {second.name}: ")


# ------------------------------------------------------------------------------------------------ restore


def test_restore_equals_the_source_and_refuses_to_overwrite(shop: Path, tmp_path: Path) -> None:
    manifest = take_backup(shop, tmp_path / "backups")
    target = tmp_path / "restored.db"
    assert restore_backup(manifest.path, target) == target
    assert all_rows(target) == all_rows(shop)
    before = target.read_bytes()
    with pytest.raises(BackupError, match="refusing to overwrite .*restored.db"):
        restore_backup(manifest.path, target)
    assert target.read_bytes() == before
    other = tmp_path / "other.db"
    Path(f"{other}-wal").write_bytes(b"stale")
    with pytest.raises(BackupError, match=r"refusing to overwrite .*other.db-wal"):
        restore_backup(manifest.path, other)
    assert not other.exists()
    with pytest.raises(BackupError, match="not a directory"):
        restore_backup(manifest.path, tmp_path / "nowhere" / "x.db")


def test_not_a_backup_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="is not a cockpit backup"):
        verify_backup(tmp_path)
    with pytest.raises(BackupError, match="is not a cockpit backup"):
        restore_backup(tmp_path, tmp_path / "x.db")
    (tmp_path / MANIFEST_FILE).write_text("{ not json")
    report = verify_backup(tmp_path)
    assert not report.ok and report.problems[0].file == MANIFEST_FILE
