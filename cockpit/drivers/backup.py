"""Blue's backup: an online copy of the live SQLite database, gzip, a manifest with SHA-256, verify, restore.

Taken before the migration moves users, so that whatever happens to blue there is a copy that is known to be good.

How the copy stays online: SQLite's backup API (`Connection.backup`) copies the database in steps of
`step_pages` pages. In WAL mode the source connection first opens a read transaction and keeps it for the whole
copy, so every step reads the same snapshot: the app's writers are never blocked (WAL readers do not block
writers) and the copy never restarts, however busy the app is. The price is that checkpoints cannot pass the
snapshot, so the WAL grows by what the app writes during the copy. In rollback-journal mode a held read lock
would block every writer, so the lock is taken per step only; a write between steps makes SQLite restart the
copy, and after `max_restarts` restarts the backup stops with a clear error (put blue in WAL mode, or retry).

Layout of one backup, `folder/<UTC timestamp>[-label]/` (0700, files 0600):
    blue.db.gz      the copy, gzip (`gunzip -k blue.db.gz` gives a plain SQLite file)
    extra/<name>    copies of extra files (nginx include, plan, ...)
    manifest.json   what was saved, sizes, SHA-256, page size and count, rows per table, integrity_check
The backup is built in `folder/.partial-<pid>-<random>-<host>/` and renamed into place only when complete and
fsynced, so a crash never leaves a backup that looks complete; partial folders of dead processes are removed by
the next backup. Row counts and the integrity check are read from the copy, not the live file, so they describe
exactly what was saved.

Progress: `progress(step, done, total)` is called in the calling thread; raising from it aborts the backup (the
exception propagates, nothing is left behind). Steps and units:
    "copy"      bytes of the database copied (pages x page size)
    "check"     tables counted in the copy (0 of n while `PRAGMA integrity_check` runs)
    "compress"  bytes of the copy compressed
    "files"     extra files copied
    "hash"      bytes hashed (verify)
    "restore"   compressed bytes read (verify, restore)

All functions block; the controller runs them in a worker thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import gzip
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from cockpit import __version__
from cockpit.core.errors import CockpitError

FORMAT = "cockpit-backup/1"
DB_FILE = "blue.db.gz"
MANIFEST_FILE = "manifest.json"
EXTRA_DIR = "extra"
PARTIAL_PREFIX = ".partial-"
REMOVING_PREFIX = ".removing-"
STEP_PAGES = 1024
MAX_RESTARTS = 5
BUSY_TIMEOUT_S = 5.0
# zlib level 1: ~4x faster than gzip's default 6 on blue-like data (95 vs 23 MB/s) for a ~30 % larger file;
# compression is nearly all of a backup's time (the online copy of 200 MB takes 0.2 s), and the operator waits.
COMPRESS_LEVEL = 1
CHUNK = 1 << 20
FILE_MODE = 0o600
DIR_MODE = 0o700
SQLITE_MAGIC = b"SQLite format 3\x00"
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_PARTIAL = re.compile(r"^\.partial-(?P<pid>\d+)-(?P<rand>[0-9a-f]{8})-(?P<host>.*)$")

Progress = Callable[[str, int, int], None]


class BackupError(CockpitError):
    """A backup, verify or restore that cannot be done; the message says what and why. Nothing was left behind."""


class _TooManyRestarts(CockpitError):
    pass


# ------------------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class StoredFile:
    """One file inside a backup, by its path relative to the backup folder."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ExtraFile:
    """An extra file asked for: where it came from and what became of it (`copied`, `missing`, `skipped: ...`)."""

    source: str
    status: str
    stored: str | None = None


@dataclass
class Manifest:
    """What one backup holds. `path` (where it is now) and `pruned` (what `keep` removed) are not in the file."""

    name: str
    created: str
    label: str
    host: str
    tool: str
    source_path: str
    source_size: int
    source_wal_size: int
    journal_mode: str
    sqlite_version: str
    page_size: int
    page_count: int
    db_size: int
    db_sha256: str
    tables: dict[str, int]
    integrity: list[str]
    files: list[StoredFile]
    extra_files: list[ExtraFile]
    copy_restarts: int = 0
    duration_s: float = 0.0
    format: str = FORMAT
    path: str = ""
    pruned: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The copy passed `PRAGMA integrity_check` (a corrupt blue is still saved, but is not ok)."""
        return self.integrity == ["ok"]

    @property
    def total_rows(self) -> int:
        return sum(self.tables.values())

    def file(self, name: str) -> StoredFile | None:
        return next((f for f in self.files if f.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_file_dict(self) -> dict[str, Any]:
        """What manifest.json holds: everything but the runtime fields."""
        data = self.as_dict()
        data.pop("path")
        data.pop("pruned")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str = "") -> Manifest:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} manifest")
        names = {f.name for f in dataclasses.fields(cls)} - {"path", "pruned"}
        values = {k: v for k, v in data.items() if k in names}
        values["files"] = [StoredFile(**f) for f in data["files"]]
        values["extra_files"] = [ExtraFile(**e) for e in data["extra_files"]]
        values["tables"] = {str(k): int(v) for k, v in data["tables"].items()}
        return cls(**values, path=path)

    def summary(self) -> str:
        gz = self.file(DB_FILE)
        copied = sum(1 for e in self.extra_files if e.status == "copied")
        extras = f", extra files {copied}/{len(self.extra_files)}" if self.extra_files else ""
        integrity = "ok" if self.ok else f"FAILED ({len(self.integrity)} problem(s))"
        return (
            f"backup {self.name}: {self.source_path} {human_size(self.db_size)} -> {human_size(gz.size if gz else 0)} gzip, "
            f"{len(self.tables)} tables, {self.total_rows:,} rows, integrity {integrity}{extras}, "
            f"{self.duration_s:.1f} s"
        )


@dataclass(frozen=True)
class Problem:
    """One thing that does not match: which file (or table), what, what the manifest says, what was found."""

    file: str
    what: str
    expected: str
    found: str

    def text(self) -> str:
        return f"{self.file}: {self.what} expected {self.expected}, found {self.found}"


@dataclass
class VerifyReport:
    """The result of `verify_backup`: ok when there is no problem. Warnings (loose modes) do not fail it."""

    path: str
    name: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files_checked: int = 0
    tables_checked: int = 0
    integrity: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ok": self.ok}

    def summary(self) -> str:
        if self.ok:
            return (
                f"verify {self.name}: OK ({self.files_checked} files, {self.tables_checked} tables, "
                f"integrity ok, {self.duration_s:.1f} s)"
            )
        listed = "; ".join(p.text() for p in self.problems[:3])
        more = f"; and {len(self.problems) - 3} more" if len(self.problems) > 3 else ""
        return f"verify {self.name}: FAILED, {len(self.problems)} problem(s): {listed}{more}"


# ------------------------------------------------------------------------------------------------ take


def take_backup(
    sqlite_path: str | os.PathLike[str],
    folder: str | os.PathLike[str],
    *,
    label: str = "",
    extra_files: Iterable[str | os.PathLike[str]] = (),
    progress: Progress | None = None,
    keep: int | None = None,
    step_pages: int = STEP_PAGES,
    max_restarts: int = MAX_RESTARTS,
    compresslevel: int = COMPRESS_LEVEL,
) -> Manifest:
    """Back up the live SQLite database at `sqlite_path` into a new folder under `folder`; return its manifest.

    `keep`: after success, remove the oldest complete backups beyond that many (never the new one, never
    anything that is not a cockpit backup). Raises `BackupError` on bad input or failure, leaving nothing behind.
    """
    started = time.monotonic()
    source = _check_source(Path(sqlite_path))
    if keep is not None and keep < 1:
        raise BackupError(f"keep must be at least 1, not {keep}")
    extras = [Path(p) for p in extra_files]
    suffix = f"-{_clean_label(label)}" if label else ""
    root = Path(folder)
    created_root = _ensure_folder(root)
    partial: Path | None = None
    try:
        _remove_stale_partials(root)
        _check_space(root, source, extras)
        now = dt.datetime.now(dt.UTC)
        name = _free_name(root, now.strftime("%Y%m%dT%H%M%SZ") + suffix)
        partial = _make_partial(root)
        manifest = _build(
            partial, source, extras, name, now, label, progress, step_pages, max_restarts, compresslevel
        )
        manifest.duration_s = round(time.monotonic() - started, 3)
        _write_manifest(partial, manifest)
        final = _publish(partial, root / name)
        partial = None
        manifest.path = str(final)
    except BaseException as exc:
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        if created_root:
            _remove_empty_tree(root, created_root)
        _reraise(exc, source, root)
    if keep is not None:
        manifest.pruned = [str(p) for p in prune_backups(root, keep, protect=(final,))]
    return manifest


def _reraise(exc: BaseException, source: Path, root: Path) -> NoReturn:
    """Known failures become one clear `BackupError`; anything else (a cancel from `progress`) goes up as is."""
    if isinstance(exc, BackupError):
        raise exc
    if isinstance(exc, _TooManyRestarts):
        raise BackupError(str(exc)) from exc
    if isinstance(exc, sqlite3.Error):
        text = str(exc)
        if "full" in text or getattr(exc, "sqlite_errorname", "") == "SQLITE_IOERR_WRITE":
            text += f" (writing the copy in {root} failed: is the disk full?)"
        raise BackupError(f"cannot copy the SQLite database {source}: {text}") from exc
    if isinstance(exc, OSError):
        if exc.errno in _NO_SPACE:
            raise BackupError(f"no space left in {root} for the backup: {exc.strerror}") from exc
        where = f" ({exc.filename})" if exc.filename else ""
        raise BackupError(f"cannot write the backup in {root}: {exc.strerror or exc}{where}") from exc
    raise exc


def _check_source(path: Path) -> Path:
    """The source must be an existing, readable SQLite file; checked before anything is created."""
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        raise BackupError(f"the SQLite database {path} does not exist") from None
    except IsADirectoryError:
        raise BackupError(f"{path} is a directory, not a SQLite database") from None
    except OSError as exc:
        raise BackupError(f"cannot read the SQLite database {path}: {exc.strerror}") from exc
    if head != SQLITE_MAGIC:
        what = "an empty file" if not head else "not a SQLite database (wrong header)"
        raise BackupError(f"{path} is {what}")
    return path.resolve()


def _ensure_folder(root: Path) -> Path | None:
    """Create the backups folder (0700) if needed; return the topmost folder created, to undo on failure."""
    if root.is_dir():
        if not os.access(root, os.W_OK | os.X_OK):
            raise BackupError(f"the backup folder {root} is not writable")
        return None
    if root.exists():
        raise BackupError(f"the backup folder {root} exists and is not a directory")
    top = root
    while not top.parent.exists():
        top = top.parent
    try:
        root.mkdir(mode=DIR_MODE, parents=True)
        os.chmod(root, DIR_MODE)
    except OSError as exc:
        _remove_empty_tree(root, top)
        raise BackupError(f"cannot create the backup folder {root}: {exc.strerror}") from exc
    return top


def _remove_empty_tree(root: Path, top: Path) -> None:
    """Remove `root` and its parents up to `top` (all created by us) when they are empty."""
    path = root
    while True:
        try:
            path.rmdir()
        except OSError:
            return
        if path == top or path.parent == path:
            return
        path = path.parent


def _check_space(root: Path, source: Path, extras: list[Path]) -> None:
    """Refuse early when the copy cannot fit: the uncompressed copy and its gzip exist together for a while."""
    raw = source.stat().st_size + _size_or_zero(Path(f"{source}-wal"))
    need = 2 * raw + sum(_size_or_zero(p) for p in extras) + (1 << 20)
    free = shutil.disk_usage(root).free
    if free < need:
        raise BackupError(
            f"not enough free space in {root}: the backup needs up to {human_size(need)} "
            f"(an uncompressed copy of {human_size(raw)} and its gzip), {human_size(free)} free"
        )


def _free_name(root: Path, base: str) -> str:
    name, n = base, 1
    while (root / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def _make_partial(root: Path) -> Path:
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:64]
    path = root / f"{PARTIAL_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{host}"
    path.mkdir(mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


def _remove_stale_partials(root: Path) -> None:
    """Partial folders left by a process of this host that is gone (killed mid-backup), and prunes cut short,
    are removed."""
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:64]
    for entry in root.iterdir():
        if entry.name.startswith(REMOVING_PREFIX) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)  # a prune cut short
            continue
        match = _PARTIAL.match(entry.name)
        if not match or match["host"] != host or entry.is_symlink() or not entry.is_dir():
            continue
        if not _pid_alive(int(match["pid"])):
            shutil.rmtree(entry, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _build(
    partial: Path,
    source: Path,
    extras: list[Path],
    name: str,
    now: dt.datetime,
    label: str,
    progress: Progress | None,
    step_pages: int,
    max_restarts: int,
    compresslevel: int,
) -> Manifest:
    """Fill the partial folder: copy, check, compress, extra files; return the manifest (not yet written)."""
    report = progress or (lambda step, done, total: None)
    raw = partial / "blue.db"
    wal_size = _size_or_zero(Path(f"{source}-wal"))
    source_size = source.stat().st_size
    journal_mode, restarts = _online_copy(source, raw, report, step_pages, max_restarts)
    page_size, page_count, integrity, tables = _inspect_copy(raw, report)
    db_size, db_sha, gz_file = _compress(raw, partial / DB_FILE, report, compresslevel, now)
    for leftover in (raw, Path(f"{raw}-journal")):
        leftover.unlink(missing_ok=True)
    extra_records, extra_files = _copy_extras(partial, extras, report)
    return Manifest(
        name=name,
        created=now.isoformat(),
        label=label,
        host=socket.gethostname(),
        tool=f"cockpit {__version__}",
        source_path=str(source),
        source_size=source_size,
        source_wal_size=wal_size,
        journal_mode=journal_mode,
        sqlite_version=sqlite3.sqlite_version,
        page_size=page_size,
        page_count=page_count,
        db_size=db_size,
        db_sha256=db_sha,
        tables=tables,
        integrity=integrity,
        files=[gz_file, *extra_files],
        extra_files=extra_records,
        copy_restarts=restarts,
    )


def _online_copy(
    source: Path, raw: Path, report: Progress, step_pages: int, max_restarts: int
) -> tuple[str, int]:
    """Copy the live database into `raw` with the backup API; return (journal mode, restarts).

    The source is opened read-only: the backup never writes the live file (no checkpoint at close either).
    """
    _create_private(raw)
    uri = source.as_uri() + "?mode=ro"
    with (
        closing(sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S)) as src,
        closing(sqlite3.connect(raw, isolation_level=None)) as dst,
    ):
        src.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        dst.execute("PRAGMA journal_mode = OFF")
        dst.execute("PRAGMA synchronous = OFF")
        (mode,) = src.execute("PRAGMA journal_mode").fetchone()
        mode = str(mode).lower()
        wal = mode == "wal"
        if wal:  # one snapshot for every step: no restart, and WAL readers never block writers
            src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        (page_size,) = src.execute("PRAGMA page_size").fetchone()
        last: int | None = None  # pages left at the previous step: more now means the copy restarted
        restarts = 0

        def step(_status: int, remaining: int, total: int) -> None:
            nonlocal last, restarts
            if last is not None and remaining > last:
                restarts += 1
                if restarts > max_restarts:
                    advice = (
                        "retry"
                        if wal
                        else (
                            "put it in WAL mode (PRAGMA journal_mode=WAL), which lets the backup read one snapshot "
                            "while the app writes, or retry when writes are quieter"
                        )
                    )
                    raise _TooManyRestarts(
                        f"the SQLite database {source} kept changing during the copy ({mode} journal mode: a "
                        f"write between two steps restarts it; {max_restarts} restarts allowed): {advice}"
                    )
            last = remaining
            report("copy", (total - remaining) * page_size, total * page_size)

        try:
            src.backup(dst, pages=max(1, step_pages), progress=step, sleep=0.05)
        finally:
            if wal:
                src.execute("COMMIT")
    return mode, restarts


def _open_copy(path: Path) -> sqlite3.Connection:
    """A read-only connection to a private copy: immutable, so SQLite takes no locks and makes no -wal/-shm."""
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro&immutable=1", uri=True)


def _inspect_copy(raw: Path, report: Progress) -> tuple[int, int, list[str], dict[str, int]]:
    """Page size and count, `PRAGMA integrity_check` and rows per table, all read from the copy."""
    with closing(_open_copy(raw)) as conn:
        conn.text_factory = lambda b: b.decode("utf-8", "backslashreplace")
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        (page_count,) = conn.execute("PRAGMA page_count").fetchone()
        names = _table_names(conn)
        report("check", 0, len(names))
        integrity = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(100)")]
        tables = _count_rows(conn, names, report)
    return page_size, page_count, integrity, tables


def _table_names(conn: sqlite3.Connection) -> list[str]:
    """Ordinary tables (virtual tables need their module; their shadow tables are counted instead)."""
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' "
        "AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name"
    )
    return [r[0] for r in rows]


def _count_rows(conn: sqlite3.Connection, names: list[str], report: Progress) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i, name in enumerate(names, 1):
        quoted = '"' + name.replace('"', '""') + '"'
        (counts[name],) = conn.execute(f"SELECT count(*) FROM {quoted}").fetchone()
        report("check", i, len(names))
    return counts


class _HashingWriter:
    """A write-only file over a descriptor that hashes and counts what goes through (for GzipFile)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.size, self.sha = fd, 0, hashlib.sha256()

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.sha.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def _compress(
    raw: Path, target: Path, report: Progress, level: int, now: dt.datetime
) -> tuple[int, str, StoredFile]:
    """Stream `raw` into gzip `target` chunk by chunk; return (raw size, raw sha256, the stored gz file)."""
    total = raw.stat().st_size
    raw_sha, done = hashlib.sha256(), 0
    with _private_fd(target) as fd, raw.open("rb") as src:
        out = _HashingWriter(fd)
        with gzip.GzipFile(
            filename="blue.db",
            mode="wb",
            fileobj=out,
            compresslevel=level,
            mtime=int(now.timestamp()),
        ) as gz:
            report("compress", 0, total)
            while chunk := src.read(CHUNK):
                raw_sha.update(chunk)
                gz.write(chunk)
                done += len(chunk)
                report("compress", done, total)
        os.fsync(fd)
    return done, raw_sha.hexdigest(), StoredFile(DB_FILE, out.size, out.sha.hexdigest())


def _copy_extras(
    partial: Path, extras: list[Path], report: Progress
) -> tuple[list[ExtraFile], list[StoredFile]]:
    """Copy each extra file into `extra/`. A file that is missing or cannot be read is recorded, not fatal."""
    records: list[ExtraFile] = []
    stored: list[StoredFile] = []
    used: set[str] = set()
    for i, path in enumerate(extras):
        report("files", i, len(extras))
        try:
            src = path.open("rb")
        except FileNotFoundError:
            records.append(ExtraFile(str(path), "missing"))
            continue
        except IsADirectoryError:
            records.append(ExtraFile(str(path), "skipped: a directory"))
            continue
        except OSError as exc:
            records.append(ExtraFile(str(path), f"skipped: {exc.strerror}"))
            continue
        with src:
            rel = f"{EXTRA_DIR}/{_unique(path.name, used)}"
            (partial / EXTRA_DIR).mkdir(mode=DIR_MODE, exist_ok=True)
            size, sha = _copy_stream(src, partial / rel)
        records.append(ExtraFile(str(path.resolve()), "copied", rel))
        stored.append(StoredFile(rel, size, sha))
    if extras:
        report("files", len(extras), len(extras))
    return records, stored


def _unique(name: str, used: set[str]) -> str:
    stem, n, candidate = name or "file", 1, name or "file"
    while candidate in used:
        n += 1
        candidate = f"{stem}.{n}"
    used.add(candidate)
    return candidate


def _copy_stream(src: BinaryIO, target: Path) -> tuple[int, str]:
    with _private_fd(target) as fd:
        out = _HashingWriter(fd)
        while chunk := src.read(CHUNK):
            out.write(chunk)
        os.fsync(fd)
    return out.size, out.sha.hexdigest()


def _write_manifest(partial: Path, manifest: Manifest) -> None:
    data = (json.dumps(manifest.to_file_dict(), indent=2) + "\n").encode()
    with _private_fd(partial / MANIFEST_FILE) as fd:
        _HashingWriter(fd).write(data)
        os.fsync(fd)


def _publish(partial: Path, final: Path) -> Path:
    """Make the complete backup visible in one step: fsync its folder, rename, fsync the parent."""
    for sub in (partial / EXTRA_DIR, partial):
        if sub.is_dir():
            _fsync_dir(sub)
    if final.exists():
        raise BackupError(f"{final} appeared while the backup was being written; nothing was replaced")
    os.rename(partial, final)
    _fsync_dir(final.parent)
    return final


# ------------------------------------------------------------------------------------------------ list, prune


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """The manifest of the backup at `path`; `BackupError` if it is not a readable cockpit backup."""
    folder = Path(path)
    try:
        data = json.loads((folder / MANIFEST_FILE).read_text())
        return Manifest.from_dict(data, path=str(folder))
    except FileNotFoundError:
        raise BackupError(f"{folder} is not a cockpit backup (no {MANIFEST_FILE})") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{folder / MANIFEST_FILE} is not a readable {FORMAT} manifest: {exc}") from exc


def list_backups(folder: str | os.PathLike[str]) -> list[Manifest]:
    """The complete backups in `folder`, newest first. Partial folders and anything without a valid manifest are
    ignored; a missing folder has none."""
    return [m for _, m in _complete_backups(Path(folder))]


def _complete_backups(root: Path) -> list[tuple[Path, Manifest]]:
    found: list[tuple[Path, Manifest]] = []
    if not root.is_dir():
        return found
    for entry in root.iterdir():
        if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            manifest = read_manifest(entry)
        except BackupError:
            continue
        if manifest.name == entry.name:
            found.append((entry, manifest))
    found.sort(key=lambda item: (item[1].created, item[0].name), reverse=True)
    return found


def prune_backups(
    folder: str | os.PathLike[str], keep: int, *, protect: Iterable[str | os.PathLike[str]] = ()
) -> list[Path]:
    """Remove the oldest complete cockpit backups beyond the `keep` newest; return what was removed.

    Only folders `list_backups` recognises are touched, and never one named in `protect`. A folder that cannot
    be removed is left (and not returned): pruning never fails a backup that succeeded.
    """
    if keep < 1:
        raise BackupError(f"keep must be at least 1, not {keep}")
    protected = {Path(p).resolve() for p in protect}
    removed: list[Path] = []
    for path, _ in _complete_backups(Path(folder))[keep:]:
        if path.resolve() in protected:
            continue
        doomed = path.with_name(f"{REMOVING_PREFIX}{path.name}")
        try:
            os.rename(path, doomed)  # out of the listing in one step, then deleted at leisure
        except OSError:
            continue
        shutil.rmtree(doomed, ignore_errors=True)
        removed.append(path)
    return removed


def prune_older(
    folder: str | os.PathLike[str],
    max_age_s: float,
    *,
    protect: Iterable[str | os.PathLike[str]] = (),
    now: float | None = None,
) -> list[Path]:
    """Remove the complete cockpit backups in `folder` created more than `max_age_s` seconds ago (an archive's
    retention); never one named in `protect`, never anything else. Returns what was removed."""
    protected = {Path(p).resolve() for p in protect}
    now = time.time() if now is None else now
    removed: list[Path] = []
    for path, manifest in _complete_backups(Path(folder)):
        try:
            created = dt.datetime.fromisoformat(manifest.created).timestamp()
        except ValueError:
            continue
        if path.resolve() in protected or now - created <= max_age_s:
            continue
        doomed = path.with_name(f"{REMOVING_PREFIX}{path.name}")
        try:
            os.rename(path, doomed)
        except OSError:
            continue
        shutil.rmtree(doomed, ignore_errors=True)
        removed.append(path)
    return removed


# ------------------------------------------------------------------------------------------------ verify


def verify_backup(
    path: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
    workdir: str | os.PathLike[str] | None = None,
) -> VerifyReport:
    """Check a backup without changing it: every file's size and SHA-256, then the database decompressed into a
    temporary file under `workdir` (the system's by default), its integrity_check and rows per table, all against
    the manifest. Each mismatch is one `Problem`. `BackupError` only when `path` is no backup or the temporary
    file cannot be written."""
    started = time.monotonic()
    folder = Path(path)
    report_progress = progress or (lambda step, done, total: None)
    result = VerifyReport(path=str(folder), name=folder.name)
    try:
        manifest = read_manifest(folder)
    except BackupError as exc:
        if not (folder / MANIFEST_FILE).exists():
            raise
        result.problems.append(Problem(MANIFEST_FILE, "content", f"a {FORMAT} manifest", str(exc)))
        return result
    _check_files(folder, manifest, result, report_progress)
    _check_modes(folder, result)
    if manifest.file(DB_FILE) and (folder / DB_FILE).is_file():
        _check_database(folder, manifest, result, report_progress, workdir)
    result.duration_s = round(time.monotonic() - started, 3)
    return result


def _check_files(folder: Path, manifest: Manifest, result: VerifyReport, report: Progress) -> None:
    total = sum(f.size for f in manifest.files)
    done = 0
    for stored in manifest.files:
        path = folder / stored.name
        result.files_checked += 1
        if not path.is_file():
            result.problems.append(Problem(stored.name, "file", f"{stored.size} bytes", "missing"))
            continue

        def hashed(n: int, d: int = done) -> None:
            report("hash", d + n, total)

        size, sha = _hash_file(path, hashed)
        done += stored.size
        if size != stored.size:
            result.problems.append(Problem(stored.name, "size", f"{stored.size} bytes", f"{size} bytes"))
        if sha != stored.sha256:
            result.problems.append(Problem(stored.name, "sha256", stored.sha256, sha))
    known = {f.name for f in manifest.files} | {MANIFEST_FILE}
    for path in sorted(p for p in folder.rglob("*") if not p.is_dir()):
        rel = path.relative_to(folder).as_posix()
        if rel not in known:
            result.problems.append(Problem(rel, "file", "not in the manifest", "an unexpected file"))


def _check_modes(folder: Path, result: VerifyReport) -> None:
    for path in [folder, *sorted(folder.rglob("*"))]:
        want = DIR_MODE if path.is_dir() else FILE_MODE
        mode = path.stat().st_mode & 0o777
        if mode & ~want:
            rel = path.relative_to(folder).as_posix() if path != folder else folder.name
            result.warnings.append(f"{rel}: mode {mode:04o}, expected {want:04o} (readable by others)")


def _check_database(
    folder: Path,
    manifest: Manifest,
    result: VerifyReport,
    report: Progress,
    workdir: str | os.PathLike[str] | None,
) -> None:
    """Decompress the copy into a private temp file, then integrity_check and row counts against the manifest."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix="cockpit-verify-", dir=workdir))
    except OSError as exc:
        raise BackupError(f"cannot make a temporary folder to verify {folder}: {exc.strerror}") from exc
    try:
        raw = tmp / "blue.db"
        try:
            size, sha = _decompress(folder / DB_FILE, raw, report)
        except _Corrupt as exc:
            result.problems.append(Problem(DB_FILE, "gzip content", "a complete gzip stream", str(exc)))
            return
        except OSError as exc:
            raise BackupError(
                f"cannot write the temporary copy in {tmp} to verify {folder}: {exc.strerror}"
            ) from exc
        if size != manifest.db_size:
            result.problems.append(
                Problem(f"{DB_FILE} (decompressed)", "size", str(manifest.db_size), str(size))
            )
        if sha != manifest.db_sha256:
            result.problems.append(Problem(f"{DB_FILE} (decompressed)", "sha256", manifest.db_sha256, sha))
        try:
            _, _, integrity, tables = _inspect_copy(raw, report)
        except sqlite3.Error as exc:
            result.problems.append(Problem(DB_FILE, "database", "a SQLite database", str(exc)))
            return
        result.integrity = integrity
        result.tables_checked = len(tables)
        if integrity != ["ok"]:
            result.problems.append(Problem(DB_FILE, "integrity_check", "ok", "; ".join(integrity[:5])))
        _compare_tables(manifest.tables, tables, result)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _compare_tables(expected: dict[str, int], found: dict[str, int], result: VerifyReport) -> None:
    for name in sorted(set(expected) | set(found)):
        want, got = expected.get(name), found.get(name)
        if want == got:
            continue
        result.problems.append(
            Problem(
                f'table "{name}"',
                "rows",
                "no such table" if want is None else f"{want:,}",
                "no such table" if got is None else f"{got:,}",
            )
        )


class _Corrupt(CockpitError):
    """The compressed file cannot be read to its end (bad gzip data, bad CRC, truncated)."""


def _decompress(gz_path: Path, target: Path, report: Progress) -> tuple[int, str]:
    """Stream gz into a new private `target`; return (size, sha256) of the decompressed bytes.

    Raises `_Corrupt` for bad input and `OSError` for a failure to write `target`.
    """
    total = gz_path.stat().st_size
    sha, size = hashlib.sha256(), 0
    with gz_path.open("rb") as raw_in, _private_fd(target) as fd:
        gz = gzip.GzipFile(fileobj=raw_in, mode="rb")
        out = _HashingWriter(fd)
        while True:
            try:
                chunk = gz.read(CHUNK)
            except (OSError, EOFError, zlib.error) as exc:
                raise _Corrupt(f"{type(exc).__name__}: {exc}") from exc
            if not chunk:
                break
            out.write(chunk)
            sha.update(chunk)
            size += len(chunk)
            report("restore", raw_in.tell(), total)
        os.fsync(fd)
    return size, sha.hexdigest()


# ------------------------------------------------------------------------------------------------ restore


def restore_backup(
    path: str | os.PathLike[str], target_path: str | os.PathLike[str], *, progress: Progress | None = None
) -> Path:
    """Decompress the backup's database to `target_path` (mode 0600), which must not exist; return it.

    The compressed file's and the decompressed bytes' SHA-256 must both match the manifest, else `BackupError`
    and no target. The file appears at `target_path` only when complete (hard link of a private temp file, which
    also refuses to replace a file created meanwhile). A leftover `-wal`, `-shm` or `-journal` beside the target
    is refused too: SQLite would apply it to the restored file.
    """
    folder, target = Path(path), Path(target_path)
    manifest = read_manifest(folder)
    stored = manifest.file(DB_FILE)
    if stored is None:
        raise BackupError(f"the manifest of {folder} lists no {DB_FILE}")
    for existing in (target, *(Path(f"{target}{s}") for s in ("-wal", "-shm", "-journal"))):
        if existing.exists() or existing.is_symlink():
            raise BackupError(f"refusing to overwrite {existing}: restore into a path that does not exist")
    if not target.parent.is_dir():
        raise BackupError(f"cannot restore to {target}: {target.parent} is not a directory")
    tmp = target.parent / f".{target.name}.restore-{secrets.token_hex(4)}"
    try:
        gz_size, gz_sha = _hash_file(folder / DB_FILE, lambda n: None)
        _expect(f"{folder / DB_FILE}", "sha256", stored.sha256, gz_sha)
        _expect(f"{folder / DB_FILE}", "size", str(stored.size), str(gz_size))
        try:
            size, sha = _decompress(folder / DB_FILE, tmp, progress or (lambda step, done, total: None))
        except _Corrupt as exc:
            raise BackupError(f"cannot decompress {folder / DB_FILE}: {exc}") from exc
        _expect(f"{folder / DB_FILE} (decompressed)", "sha256", manifest.db_sha256, sha)
        _expect(f"{folder / DB_FILE} (decompressed)", "size", str(manifest.db_size), str(size))
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise BackupError(f"refusing to overwrite {target}: it appeared during the restore") from None
        _fsync_dir(target.parent)
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise BackupError(f"no space left in {target.parent} to restore: {exc.strerror}") from exc
        raise BackupError(f"cannot restore {folder} to {target}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _expect(what: str, field_name: str, expected: str, found: str) -> None:
    if expected != found:
        raise BackupError(f"{what}: {field_name} expected {expected}, found {found}; nothing was restored")


# ------------------------------------------------------------------------------------------------ files


def _create_private(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    os.chmod(path, FILE_MODE)


@contextmanager
def _private_fd(path: Path) -> Iterator[int]:
    """A new file, 0600 from its creation (not chmod-ed after the data is in)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        yield fd
    finally:
        os.close(fd)


def _hash_file(path: Path, report: Callable[[int], None]) -> tuple[int, str]:
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
            report(size)
    return size, sha.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0


def _clean_label(label: str) -> str:
    """A label safe in a folder name: letters, digits, `.`, `_` and `-`, at most 40 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.")[:40]
    if not cleaned:
        raise BackupError(f"the label {label!r} has no usable character (letters, digits, . _ -)")
    return cleaned


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class BlueBackup:
    """The plan's backups of blue, as the controller uses them: the `backup` action takes and verifies one, and
    as a metrics source it reports `backup_age` (seconds since the newest backup whose copy passed the integrity
    check; None while there is none), which the plan's `backup.required` gate reads."""

    def __init__(
        self,
        sqlite_path: str | os.PathLike[str],
        folder: str | os.PathLike[str],
        *,
        keep: int | None = None,
        extra_files: Iterable[str | os.PathLike[str]] = (),
        clock: Callable[[], float] = time.time,
    ):
        self.sqlite_path = Path(sqlite_path)
        self.folder = Path(folder)
        self.keep = keep
        self.extra_files = [Path(p) for p in extra_files]
        self.clock = clock
        self._seen: tuple[int | None, float | None] = (
            None,
            None,
        )  # the folder's mtime, the newest good backup

    @classmethod
    def from_plan(cls, plan: Any) -> BlueBackup:
        """Blue's SQLite file into `backup.folder`, with the plan itself and every nginx include beside it."""
        extra = [Path(plan.source)] if plan.source else []
        for balancer in getattr(plan.traffic, "balancers", []) or []:
            include = plan.path(balancer.include)
            extra += [include, include.with_name(include.name + ".location")]
        return cls(
            plan.path(plan.blue.database.path),
            plan.path(plan.backup.folder),
            keep=plan.backup.keep,
            extra_files=extra,
        )

    def take(self, label: str = "", progress: Progress | None = None) -> Manifest:
        return take_backup(
            self.sqlite_path,
            self.folder,
            label=label,
            extra_files=self.extra_files,
            progress=progress,
            keep=self.keep,
        )

    def verify(self, path: str | os.PathLike[str]) -> VerifyReport:
        return verify_backup(path)

    def archive(self, folder: str | os.PathLike[str], label: str, since: float) -> Manifest:
        """Blue as an archive in `folder` (not pruned by `keep`): the one labelled `label` taken at or after
        `since` (epoch seconds) when there is one already (a resumed finalize), else a new one."""
        for manifest in list_backups(folder):
            created = dt.datetime.fromisoformat(manifest.created).timestamp()
            if manifest.label == label and created >= since - 1 and manifest.ok:
                return manifest
        return take_backup(self.sqlite_path, folder, label=label, extra_files=self.extra_files)

    def prune_archives(
        self, folder: str | os.PathLike[str], max_age_s: float, protect: Iterable[str | os.PathLike[str]] = ()
    ) -> list[Path]:
        """The archives in `folder` older than `max_age_s` removed (their retention)."""
        return prune_older(folder, max_age_s, protect=protect, now=self.clock())

    def poll(self) -> dict[str, float | None]:
        """Called once a tick: the folder's manifests are read again only when the folder changed (a backup is
        published or pruned by a rename in it, which moves its mtime)."""
        try:
            stamp = self.folder.stat().st_mtime_ns
        except OSError:
            stamp = None
        if stamp is None or stamp != self._seen[0]:
            newest = next((m for m in list_backups(self.folder) if m.ok), None)
            created = None if newest is None else dt.datetime.fromisoformat(newest.created).timestamp()
            self._seen = (stamp, created)
        created = self._seen[1]
        return {"backup_age": None if created is None else max(0.0, self.clock() - created)}
