"""The sync loop: both directions, a pass at a time, in a background thread; lag per direction; drain.

PostgreSQL may go away at any moment (Neon cold starts, restarts, network): the loop closes the connection, waits
with exponential backoff and reconnects; the changes wait in the change logs meanwhile, and since every applied
position is committed with its data nothing is lost or repeated. No session state is kept on PostgreSQL (the
applier's tag is `SET LOCAL`, no prepared statements), so a transaction pooler in front does not break it; TLS and
the rest come from the URL (`sslmode=require` for Neon; use the direct host, not `-pooler`).

Between passes the loop watches blue's `PRAGMA data_version` every 50 ms: a commit on SQLite starts the next pass
at once (blue→green lag stays in tens of milliseconds); `interval` paces the polling of green when blue is idle.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from cockpit.core.redact import redact_text
from cockpit.core.state import Lag
from cockpit.drivers.sync import ddl
from cockpit.drivers.sync.apply import POLICIES, Applier, EventSink, StepResult
from cockpit.drivers.sync.capture import (
    BLUE_TO_GREEN,
    GREEN_TO_BLUE,
    PG_SCHEMA,
    SQLITE_LOG,
    SQLITE_STATE,
    CaptureError,
    install_pg,
    install_sqlite,
    one,
    pg_has,
    pg_installed,
    qi,
    read_blue_position,
    read_green_position,
    sqlite_epoch,
    sqlite_installed,
    sqlite_keys,
    sqlite_log_is_current,
    sqlite_tables,
    uninstall_pg,
    uninstall_sqlite,
)

if TYPE_CHECKING:
    from cockpit.core.plan import Plan
    from cockpit.drivers.sync.copy import CopyProgress, CopyReport
    from cockpit.drivers.sync.schema import TableMap

DIRECTIONS = (BLUE_TO_GREEN, GREEN_TO_BLUE)
# a server that vanishes without closing the socket is noticed in about 20 s instead of hanging a pass
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
}
# PostgreSQL errors that mean "the server or the connection went away": reconnect and retry
_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)


def connect_sqlite(path: str | Path) -> sqlite3.Connection:
    """A SQLite connection as the sync uses it: autocommit (explicit BEGIN), a generous busy timeout."""
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def connect_pg(url: str, connect_timeout: float = 10.0) -> psycopg.Connection:
    """A PostgreSQL connection for the sync: no server-side prepared statements (pooler-safe), not autocommit."""
    return psycopg.connect(
        url, connect_timeout=max(1, int(connect_timeout)), prepare_threshold=None, **KEEPALIVES
    )


def pooler_warning(url: str) -> str | None:
    """A warning when the URL points at a connection pooler (Neon's `-pooler` host) instead of the direct host."""
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return None
    if "-pooler" in host:
        return (
            f"{host} is a pooled endpoint: the copy and the sync should use the direct host "
            f"({host.replace('-pooler', '')})"
        )
    return None


class SyncRunner:
    """Keeps one SQLite file and one PostgreSQL database in sync, both ways.

    `tables`: a list of table names or "all" (every app table of the SQLite file). Thread-safe: `run_once`,
    `drain` and the background loop serialize on one lock; `lag` uses its own connections and never waits for
    a batch.
    """

    def __init__(
        self,
        sqlite_path: str | Path,
        pg_url: str,
        tables: Sequence[str] | str = "all",
        conflict_policy: str = "newest",
        batch_size: int = 1000,
        interval: float = 1.0,
        on_event: EventSink | None = None,
        *,
        casts: Iterable[Any] | None = None,
        mappings: Mapping[str, TableMap] | None = None,
        max_backoff: float = 30.0,
        connect_timeout: float = 10.0,
        pass_budget_s: float = 1.0,
        row_keys: Mapping[str, Sequence[str]] | None = None,
        key_ceiling: int | None = None,
        key_headroom: int = 1_000_000,
        disjoint_keys: Sequence[str] = (),
    ):
        if conflict_policy not in POLICIES:
            raise ValueError(f"conflict policy must be one of {', '.join(POLICIES)}, not {conflict_policy!r}")
        self.sqlite_path = Path(sqlite_path)
        self.pg_url = pg_url
        self.tables = tables
        self.conflict_policy = conflict_policy
        self.batch_size = int(batch_size)
        self.interval = float(interval)
        self.on_event = on_event
        self.casts = list(casts or [])
        self.max_backoff = float(max_backoff)
        self.connect_timeout = float(connect_timeout)
        self.pass_budget_s = float(pass_budget_s)
        self.row_keys = {t: list(c) for t, c in (row_keys or {}).items()}
        self.key_ceiling = key_ceiling
        self.key_headroom = int(key_headroom)
        self.disjoint_keys = list(disjoint_keys)
        self._mappings = dict(mappings) if mappings is not None else None
        self._given_mappings = self._mappings
        self._applier: Applier | None = None
        self._lock = threading.RLock()  # the applier's connections
        self._lag_lock = threading.Lock()  # the lag reader's connections
        self._blue: sqlite3.Connection | None = None
        self._pg: psycopg.Connection | None = None
        self._lag_blue: sqlite3.Connection | None = None
        self._lag_pg: psycopg.Connection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = 0.0
        self._down_since: float | None = None
        self._capture_seen = False
        self._watch: sqlite3.Connection | None = None  # the loop's watch on blue (data_version)
        self._last_blue_position = 0
        self._last_green_lag = Lag(0.0, 0)
        self._green_unmirrored = 0  # conflict records made on green not yet copied into blue's store
        self._keys: list[Any] = []
        # stall watch: a direction with changes pending whose position has not moved for `stall_after_s`
        self.stall_after_s = 5.0
        self._progress: dict[str, tuple[Any, float]] = {}
        self._stalled = False
        self._persisted: Any = ...  # the problem last written to blue for `sync status` (... = not known yet)
        self._persist_lock = threading.Lock()
        self._active = False  # this runner has run a pass (only such a runner reports its problem to blue)
        self._persist_conn: sqlite3.Connection | None = None
        # schema changes (cockpit.drivers.sync.ddl): table -> what changed; the applier holds these tables
        self.schema_changed: dict[str, str] = {}
        self.schema_watch: str | None = None  # why green's event trigger is missing, when it is
        self._schema_cache: dict[str, Any] = {}
        self._accepted: Any = ...  # the schemas blue last recorded as accepted (install, re-seed)
        self._ddl_checked = 0.0
        self.hold: str | None = None  # the message while a held table stops a direction
        # figures read every `figures_ttl_s` with the lag connections (conflicts waiting, keys left)
        self.figures_ttl_s = 5.0
        self._figures: dict[str, Any] = {}
        self._figures_at = 0.0
        self._key_tables: list[Any] | None = None
        self.totals = {BLUE_TO_GREEN: 0, GREEN_TO_BLUE: 0, "conflicts": 0, "errors": 0}
        self.last_error: str | None = None

    @classmethod
    def from_plan(cls, plan: Plan, on_event: EventSink | None = None) -> SyncRunner:
        """A runner for the plan's blue (SQLite) and green (PostgreSQL) databases and its `sync` section.

        Without `on_event`, conflicts and errors are written to the plan's journal.
        """
        from cockpit.core.plan import PlanError

        errors = []
        if plan.blue.database.engine != "sqlite" or not plan.blue.database.path:
            errors.append(f"{plan.source}: sync needs blue.database to be sqlite with a path")
        if plan.green.database.engine != "postgresql" or not plan.green.database.url:
            errors.append(f"{plan.source}: sync needs green.database to be postgresql with a url")
        if errors:
            raise PlanError(errors)
        if on_event is None:
            on_event = journal_sink(plan.path(plan.journal.path))
        from cockpit.drivers.sync.schema import plan_casts

        s = plan.sync
        return cls(
            plan.path(plan.blue.database.path),
            plan.green.database.url,
            tables=s.tables,
            conflict_policy=s.conflict_policy,
            batch_size=s.batch_size,
            interval=float(s.interval),
            on_event=on_event,
            casts=plan_casts(s),
            row_keys=s.row_keys,
            key_ceiling=s.key_ceiling,
            key_headroom=s.key_headroom,
            disjoint_keys=s.disjoint_keys,
        )

    # --------------------------------------------------------------------------------------------- connections

    def _sqlite(self) -> sqlite3.Connection:
        if self._blue is None:
            if not self.sqlite_path.exists():
                raise FileNotFoundError(f"SQLite database not found: {self.sqlite_path}")
            self._blue = connect_sqlite(self.sqlite_path)
        return self._blue

    def _postgres(self) -> psycopg.Connection:
        if self._pg is None or self._pg.closed or self._pg.broken:
            self._drop_pg()
            self._pg = connect_pg(self.pg_url, self.connect_timeout)
        return self._pg

    def _drop_pg(self) -> None:
        if self._pg is not None:
            try:
                self._pg.close()
            except Exception:
                pass
        self._pg = None

    def table_names(self) -> list[str]:
        """The synced tables: the plan's list, or every app table of the SQLite file."""
        if isinstance(self.tables, str):
            if self.tables != "all":
                return [t.strip() for t in self.tables.split(",") if t.strip()]
            return sqlite_tables(self._sqlite())
        return list(self.tables)

    def mappings(self) -> dict[str, TableMap]:
        if self._mappings is None:
            from cockpit.drivers.sync.schema import read_mapping

            names = self.table_names()
            self._mappings = read_mapping(self._sqlite(), tables=names, casts=self.casts or None)
        return self._mappings

    def applier(self) -> Applier:
        if self._applier is None:
            self._applier = Applier(
                self.mappings(), self.conflict_policy, self.batch_size, self.on_event, row_keys=self.row_keys
            )
        return self._applier

    # ----------------------------------------------------------------------------------------------- install

    def install(self, accept: Sequence[str] | None = None) -> dict[str, Any]:
        """Install capture on both sides for the synced tables, and disjoint keys on green (idempotent). The keys
        go first: when they are refused (`KeysError`), nothing has changed. The tables' schemas as they are now
        become the ones the sync expects (all of them, or only the tables in `accept`: after a re-seed)."""
        from cockpit.drivers.sync import keys as disjoint

        with self._lock:
            names = self.table_names()
            self._keys = disjoint.install(
                self._sqlite(),
                self._postgres(),
                names,
                ceiling=self.key_ceiling,
                headroom=self.key_headroom,
                disjoint=self.disjoint_keys,
            )
            keys = install_sqlite(self._sqlite(), names, self.row_keys)
            install_pg(self._postgres(), keys)
            if accept is None:
                ddl.record_sqlite(self._sqlite(), names)
                self.schema_watch = ddl.install_pg(self._postgres(), names)
            else:
                ddl.record_sqlite(self._sqlite(), accept)
                pg = self._postgres()
                with pg.transaction():
                    ddl.acknowledge_pg(pg, accept)
                pg.commit()
            self._schema_reset()
            # the schemas as they are now are the ones synced: read the tables again
            self._mappings = None if self._given_mappings is None else dict(self._given_mappings)
            self._applier = None
            return {
                "tables": sorted(keys),
                "keys": [k.as_dict() for k in self._keys],
                "schema_watch": self.schema_watch or "event trigger",
            }

    # ------------------------------------------------------------------------------------------------ keys

    def key_states(self) -> list[Any]:
        """Where each table's database-chosen keys stand (`cockpit.drivers.sync.keys.KeyState`), read now."""
        from cockpit.drivers.sync import keys as disjoint

        with self._lock:
            blue, pg = self._sqlite(), self._postgres()
            found = disjoint.key_tables(blue, pg, self.table_names(), self.disjoint_keys)
            return disjoint.states(blue, pg, found)

    def keys_left(self) -> dict[str, int]:
        """Per table counting down (disjoint keys), the new keys left before the two sides could meet."""
        return {k.table: k.keys_left for k in self.key_states() if k.state == "down"}

    def restore_keys(self) -> list[Any]:
        """Green counts up again above the highest key (the end of the migration)."""
        from cockpit.drivers.sync import keys as disjoint

        with self._lock:
            return disjoint.restore(self._sqlite(), self._postgres(), self.table_names(), self.disjoint_keys)

    def install_blue(self) -> dict[str, tuple[str, ...]]:
        """Install capture on SQLite only (before the initial copy, so that no write slips between)."""
        with self._lock:
            return install_sqlite(self._sqlite(), self.table_names(), self.row_keys)

    def uninstall_blue(self) -> list[str]:
        """Remove capture from SQLite only (undoes `install_blue` when the copy failed)."""
        with self._lock:
            return uninstall_sqlite(self._sqlite())

    def initial_copy(
        self,
        jobs: int = 4,
        progress: Callable[[CopyProgress], None] | None = None,
        tables: Sequence[str] | None = None,
    ) -> tuple[CopyReport, list[str]]:
        """Copy blue into green, then install capture on both sides. `cockpit sync copy` and the controller's
        `copy` action both come here (one code path). Returns the copy's report and the captured tables.

        With `tables` while capture is installed (the migration under way), those tables are re-seeded: green's
        copy of each is replaced by blue's, green's changes to them not yet on blue are parked, and the sync goes
        on (`cockpit.drivers.sync.reseed`).

        Capture goes on blue first, so that the copy's snapshot names exactly where blue→green resumes and no
        write slips between. A failed copy takes blue's capture off again when it was not there before (blue
        ends as it was; the copy has already dropped what it created on green). A running loop is paused
        meanwhile: green has neither the tables nor the change log yet.
        """
        from cockpit.drivers.sync.copy import copy_database

        was_running = self.running
        if was_running:
            self.stop()
        try:
            if tables is not None and self._capture_installed_on_green():
                return self._reseed(list(tables), jobs, progress)
            names = list(tables) if tables is not None else self.table_names()
            self.tables = names
            with self._lock:
                had_capture = bool(sqlite_installed(self._sqlite()))
            self.install_blue()
            try:
                report = copy_database(
                    str(self.sqlite_path),
                    self.pg_url,
                    tables=names,
                    jobs=jobs,
                    casts=self.casts or None,
                    progress=progress,
                )
            except BaseException:
                if not had_capture:
                    self.uninstall_blue()
                raise
            return report, self.install()["tables"]
        finally:
            if was_running:
                self.start()

    def _capture_installed_on_green(self) -> bool:
        with self._lock:
            pg = self._postgres()
            try:
                return one(pg.execute("SELECT to_regclass(%s)", (f"{PG_SCHEMA}.positions",)))[0] is not None
            finally:
                pg.rollback()

    def _reseed(
        self, tables: list[str], jobs: int, progress: Callable[[CopyProgress], None] | None
    ) -> tuple[CopyReport, list[str]]:
        from cockpit.drivers.sync import reseed
        from cockpit.drivers.sync.copy import copy_database

        synced = self.table_names()
        unknown = [t for t in tables if t not in synced]
        if unknown:
            raise CaptureError(f"not synced tables, cannot be re-seeded: {', '.join(unknown)}")
        with self._lock:
            parked = reseed.prepare(self._sqlite(), self._postgres(), tables)
        for record in parked:
            self._emit("sync.conflict", record.payload())
        report = copy_database(
            str(self.sqlite_path),
            self.pg_url,
            tables=tables,
            jobs=jobs,
            casts=self.casts or None,
            progress=progress,
        )
        with self._lock:
            report.warnings.extend(
                reseed.finish(self._sqlite(), self._postgres(), tables, report.sqlite_position)
            )
        self._emit("sync.reseeded", {"tables": tables, "parked": len(parked), "rows": report.rows})
        return report, self.install(accept=tables)["tables"]

    def uninstall(self) -> dict[str, list[str]]:
        """Remove every cockpit trigger and table from both sides (idempotent)."""
        with self._lock:
            return {"blue": uninstall_sqlite(self._sqlite()), "green": uninstall_pg(self._postgres())}

    def installed(self) -> dict[str, list[str]]:
        """The tables carrying capture triggers on each side."""
        with self._lock:
            pg = self._postgres()
            try:
                green = pg_installed(pg)
            finally:
                pg.rollback()
            return {"blue": sqlite_installed(self._sqlite()), "green": green}

    def check_installed(self) -> list[str]:
        """What is missing for the sync to be lossless (empty when capture is in place on both sides)."""
        names = self.table_names()
        sqlite_keys(self._sqlite(), names, self.row_keys)  # refuses a named key whose columns are missing
        have = self.installed()
        problems = []
        for side in ("blue", "green"):
            missing = [t for t in names if t not in have[side]]
            if missing:
                problems.append(f"capture not installed on {side} for: {', '.join(missing)}")
        return problems

    # ------------------------------------------------------------------------------------------------- passes

    def run_once(self) -> dict[str, Any]:
        """One pass in both directions: batches until caught up or `pass_budget_s` is spent in each direction.

        Raises on failure (a PostgreSQL connection error closes the connection; the next call reconnects).
        """
        with self._lock:
            self._active = True
            started = time.monotonic()
            blue = self._sqlite()
            try:
                pg = self._postgres()
                if not self._capture_seen:
                    self._check_capture(blue, pg)
                self._check_schema(blue, pg)
                applier = self.applier()
                b2g = self._drive(lambda: applier.blue_to_green(blue, pg))
                position = b2g.position  # what blue→green has committed: later SQLite changes still pend
                g2b = self._drive(lambda: applier.green_to_blue(blue, pg, position))
            except _CONNECTION_ERRORS:
                self._drop_pg()
                raise
            except BaseException:
                if self._pg is not None and not self._pg.closed:
                    try:
                        self._pg.rollback()
                    except Exception:
                        self._drop_pg()
                raise
            if b2g.position is not None:
                self._last_blue_position = int(b2g.position)
            held = b2g.held or g2b.held
            self.hold = (
                None
                if held is None
                else f"table {held!r}: {self.schema_changed.get(held, 'its schema changed')}; its changes are held "
                "(the other tables' keep flowing up to its first one). Make its schema the same on both sides and "
                f"run `cockpit sync install`, or re-seed it from blue: `cockpit sync copy --tables {held}`"
            )
            self.totals[BLUE_TO_GREEN] += b2g.changes
            self.totals[GREEN_TO_BLUE] += g2b.changes
            self.totals["conflicts"] += len(b2g.conflicts) + len(g2b.conflicts)
            return {
                BLUE_TO_GREEN: b2g.as_dict(),
                GREEN_TO_BLUE: g2b.as_dict(),
                "conflicts": len(b2g.conflicts) + len(g2b.conflicts),
                "seconds": round(time.monotonic() - started, 4),
            }

    def _check_capture(self, blue: sqlite3.Connection, pg: psycopg.Connection) -> None:
        """Refuse to run, with a clear message, while the change logs are missing on either side. A blue log of
        an older cockpit's form is upgraded in place first (rows kept, the same tables captured again)."""
        missing = []
        if not blue.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SQLITE_LOG,)
        ).fetchone():
            missing.append("blue (SQLite)")
        elif not sqlite_log_is_current(blue):
            install_sqlite(blue, [], self.row_keys)
        has_pg = pg_has(pg, f"{PG_SCHEMA}.changes")
        pg.rollback()
        if not has_pg:
            missing.append("green (PostgreSQL)")
        if missing:
            raise CaptureError(
                f"change capture is not installed on {' and '.join(missing)}: run `cockpit sync install` "
                "(or `cockpit sync copy` for a first copy)"
            )
        self._capture_seen = True

    def _drive(self, step: Callable[[], StepResult]) -> StepResult:
        """Repeat a step while its batches come back full, within the pass budget; the results summed."""
        total = StepResult()
        deadline = time.monotonic() + self.pass_budget_s
        while True:
            r = step()
            total.changes += r.changes
            total.rows += r.rows
            total.upserts += r.upserts
            total.deletes += r.deletes
            total.conflicts.extend(r.conflicts)
            total.position = r.position
            total.small_step = total.small_step or r.small_step
            total.held = r.held
            if (r.changes < self.batch_size and not r.small_step) or time.monotonic() >= deadline:
                return total

    # ---------------------------------------------------------------------------------------------- conflicts

    def conflicts(self, everything: bool = False) -> list[dict[str, Any]]:
        """The parked versions, both sides' stores together (one record per uid, oldest first); only those
        waiting unless `everything`. Green unreachable: blue's store alone."""
        from cockpit.drivers.sync import conflicts

        with self._lock:
            blue = conflicts.sqlite_records(self._sqlite())
            try:
                pg = self._postgres()
                try:
                    green = conflicts.pg_records(pg)
                finally:
                    pg.rollback()
            except _CONNECTION_ERRORS:
                self._drop_pg()
                green = None
        records = conflicts.merged(blue, green)
        return records if everything else [r for r in records if r["status"] == "waiting"]

    def resolve_conflict(self, uid: str, keep: str) -> dict[str, Any]:
        """Apply the lead's choice for one parked version: `keep` the kept side's version (nothing to write), the
        parked side's (written back into blue's table; the sync carries it to green), or `both` (the parked row
        added under a new key blue chooses). The write is an ordinary app write on blue; the record is marked
        resolved on both sides. Raises `ResolveError` with what to do instead."""
        from cockpit.drivers.sync import conflicts

        rec = conflicts.find(self.conflicts(everything=True), uid)
        with self._lock:
            blue = self._sqlite()
            columns = sqlite_keys(blue, [rec["tbl"]], self.row_keys)[rec["tbl"]]
            info = [r for r in blue.execute(f"PRAGMA table_info({qi(rec['tbl'])})") if r[5]]
            rowid_key = len(info) == 1 and (info[0][2] or "").strip().upper() == "INTEGER"
            done = conflicts.apply_choice(blue, rec, keep, columns, rowid_key)
            resolution = f"keep {keep}: {done}"
            conflicts.mark_resolved_sqlite(blue, rec, resolution)
            pg = self._postgres()
            with pg.transaction():
                conflicts.mark_resolved_pg(pg, rec, resolution)
            pg.commit()
        self._emit(
            "sync.conflict_resolved", {"uid": rec["uid"], "table": rec["tbl"], "keep": keep, "done": done}
        )
        return {"uid": rec["uid"], "keep": keep, "done": done}

    def repair(self, prefer: str, diffs: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
        """Rows that differ (integrity `RowDiff`s per table) put into `prefer`'s change log, for the applier to
        carry across (cockpit.drivers.sync.repair). Returns what was logged and what was skipped."""
        from cockpit.drivers.sync import repair

        with self._lock:
            blue, pg = self._sqlite(), self._postgres()
            pg.rollback()  # `transaction()` in mark() must be the real one
            return repair.mark(blue, pg, self.mappings(), prefer, diffs)

    def health(self) -> dict[str, Any]:
        """Conflicts waiting, keys left per table and schema changes, read now (what `cockpit sync status` adds
        to the lag)."""
        names = list(self.mappings())
        with self._lock:
            blue, pg = self._sqlite(), self._postgres()
            try:
                changed = {**ddl.sqlite_changes(blue, names, {}), **ddl.pg_changes(pg, names)}
            finally:
                pg.rollback()
        return {
            "conflicts_waiting": len(self.conflicts()),
            "keys_left": self.keys_left(),
            "schema_changed": changed,
        }

    # ------------------------------------------------------------------------------------------- schema watch

    def _check_schema(self, blue: sqlite3.Connection, pg: psycopg.Connection) -> None:
        """Both sides' schemas at the start of every pass (one PRAGMA on blue, one query on green while its event
        trigger watches; without it, the catalog fingerprints at most every `ddl_interval_s`); a newly changed
        synced table is reported once ('sync.schema_changed') and held by the applier."""
        accepted = blue.execute(
            f"SELECT value FROM {SQLITE_STATE} WHERE key = ?", (ddl.STATE_KEY,)
        ).fetchone()
        if accepted != self._accepted:
            if self._accepted is not ...:  # `sync install` or a re-seed (maybe in another process) since
                self._mappings = None if self._given_mappings is None else dict(self._given_mappings)
                self._applier = None
                self._schema_reset()
            self._accepted = accepted
        names = list(self.mappings())
        applier = self.applier()
        applier.prepare(pg)
        changed = dict(applier.mismatched)
        changed.update(ddl.sqlite_changes(blue, names, self._schema_cache))
        green_cache = self._schema_cache.setdefault("pg", {})
        if green_cache.get("watching") or time.monotonic() - self._ddl_checked >= self.ddl_interval_s:
            self._ddl_checked = time.monotonic()
            try:
                self._schema_cache["green"] = ddl.pg_changes(pg, names, green_cache)
            finally:
                pg.rollback()
        changed.update(self._schema_cache.get("green", {}))
        for table, what in changed.items():
            if table not in self.schema_changed:
                self._emit(
                    "sync.schema_changed",
                    {
                        "table": table,
                        "change": what,
                        "action": "make the schema the same on both sides and run `cockpit sync install`, or re-seed "
                        f"it from blue: `cockpit sync copy --tables {table}`",
                    },
                )
        self.schema_changed = changed
        applier.held = set(changed)

    #: how often green's catalog is compared when no event trigger records its DDL
    ddl_interval_s = 1.0

    def _schema_reset(self) -> None:
        self.schema_changed = {}
        self._schema_cache = {}
        self._ddl_checked = 0.0
        self.hold = None
        if self._applier is not None:
            self._applier.held = set()

    def problem(self) -> str | None:
        """Why the sync is not moving: the last failed pass, or a held table; None when it runs."""
        return self.last_error or self.hold

    def _persist(self) -> None:
        """Write the sync's problem (or its absence) and the stall flag to blue, where `cockpit sync status` run
        from another process reads them (`read_problem`). Only when they change."""
        state = (self.problem(), self._stalled)
        if state == self._persisted or not self._active:
            return  # a runner that runs no passes (`sync status` in another process) leaves it alone
        try:
            with self._persist_lock:  # its own connection: never waits for a batch to finish
                if self._persist_conn is None:
                    if not self.sqlite_path.exists():
                        return
                    self._persist_conn = sqlite3.connect(
                        str(self.sqlite_path), isolation_level=None, timeout=1.0, check_same_thread=False
                    )
                conn = self._persist_conn
                if not conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SQLITE_STATE,)
                ).fetchone():
                    return
                if state == (None, False):
                    conn.execute(f"DELETE FROM {SQLITE_STATE} WHERE key = ?", (PROBLEM_KEY,))
                else:
                    value = json.dumps({"error": state[0], "stalled": state[1], "since": time.time()})
                    conn.execute(
                        f"INSERT INTO {SQLITE_STATE} (key, value) VALUES (?, ?)"
                        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        (PROBLEM_KEY, value),
                    )
            self._persisted = state
        except sqlite3.Error:
            pass  # best effort (blue busy): tried again at the next change or lag reading

    # ----------------------------------------------------------------------------------------------------- lag

    def lag(self) -> dict[str, Lag]:
        """Lag per direction ('blue_to_green', 'green_to_blue'). With PostgreSQL unreachable, blue→green counts
        what waits in SQLite after the last known position and green→blue is the last figure read."""
        with self._lag_lock:
            if self._lag_blue is None:
                self._lag_blue = connect_sqlite(self.sqlite_path)
            blue = self._lag_blue
            try:
                if self._lag_pg is None or self._lag_pg.closed or self._lag_pg.broken:
                    self._lag_pg = None
                    self._lag_pg = psycopg.connect(
                        self.pg_url,
                        autocommit=True,
                        connect_timeout=max(1, int(min(self.connect_timeout, 5))),
                        prepare_threshold=None,
                        **KEEPALIVES,
                    )
                pg = self._lag_pg
                self._last_blue_position = read_blue_position(pg)
                green_pos = read_green_position(blue)
                self._last_green_lag = _green_lag(pg, green_pos)
                self._green_unmirrored = _unmirrored(pg, blue)
            except _CONNECTION_ERRORS:
                if self._lag_pg is not None:
                    try:
                        self._lag_pg.close()
                    except Exception:
                        pass
                self._lag_pg = None
            blue_lag = _blue_lag(blue, self._last_blue_position)
            lag = {BLUE_TO_GREEN: blue_lag, GREEN_TO_BLUE: self._last_green_lag}
            self._watch_stall(
                lag, {BLUE_TO_GREEN: self._last_blue_position, GREEN_TO_BLUE: read_green_position(blue)}
            )
            self._read_figures(blue)
        self._persist()
        return lag

    def _watch_stall(self, lag: dict[str, Lag], positions: dict[str, Any]) -> None:
        """Stalled: a pass fails, or changes are pending in a direction whose position has not moved for
        `stall_after_s`. Reported once each way ('sync.stalled', 'sync.resumed')."""
        now = time.monotonic()
        worst = 0.0
        for d in DIRECTIONS:
            seen = self._progress.get(d)
            if lag[d].pending == 0 or seen is None or seen[0] != positions[d]:
                self._progress[d] = (positions[d], now)
            elif lag[d].pending:
                worst = max(worst, now - seen[1])
        self.stalled_s = worst
        stalled = worst >= self.stall_after_s or self.problem() is not None
        if stalled != self._stalled:
            self._stalled = stalled
            pending = {d: lag[d].pending for d in DIRECTIONS}
            if stalled:
                self._emit(
                    "sync.stalled", {"pending": pending, "for_s": round(worst, 1), "error": self.problem()}
                )
            else:
                self._emit("sync.resumed", {"pending": pending})

    stalled_s = 0.0

    def _read_figures(self, blue: sqlite3.Connection) -> None:
        """Conflicts waiting and keys left, read with the lag connections at most every `figures_ttl_s`."""
        if time.monotonic() - self._figures_at < self.figures_ttl_s:
            return
        pg = self._lag_pg
        try:
            waiting = _waiting(blue, pg)
            keys_left = None
            if pg is not None:
                from cockpit.drivers.sync import keys as disjoint

                if self._key_tables is None:
                    self._key_tables = disjoint.key_tables(
                        blue, pg, self.table_names_quiet(blue), self.disjoint_keys
                    )
                states = [k for k in disjoint.states(blue, pg, self._key_tables) if k.state == "down"]
                keys_left = {k.table: k.keys_left for k in states}
            self._figures = {"conflicts_waiting": waiting, "keys_left": keys_left}
            self._figures_at = time.monotonic()
        except (sqlite3.Error, psycopg.Error):
            pass

    def table_names_quiet(self, blue: sqlite3.Connection) -> list[str]:
        if isinstance(self.tables, str):
            return (
                sqlite_tables(blue) if self.tables == "all" else [t.strip() for t in self.tables.split(",")]
            )
        return list(self.tables)

    def metrics(self) -> dict[str, float | None]:
        """Figures for the controller's tick, as of the last `lag()` (call that first; this reads no database):
        `sync.stalled` (1/0), `sync.stalled_s`, `sync.conflicts_waiting`, `sync.keys_left_min` (None: no table
        with disjoint keys), `sync.schema_changed` (tables changed), `sync.green_only_pending` (acknowledged
        changes on green not yet on blue)."""
        keys_left = self._figures.get("keys_left") or {}
        return {
            "sync.stalled": 1.0 if self._stalled else 0.0,
            "sync.stalled_s": round(self.stalled_s, 3),
            "sync.conflicts_waiting": float(self._figures.get("conflicts_waiting", 0) or 0),
            "sync.keys_left_min": float(min(keys_left.values())) if keys_left else None,
            "sync.schema_changed": float(len(self.schema_changed)),
            "sync.green_only_pending": float(self._last_green_lag.pending + self._green_unmirrored),
        }

    def green_only_pending(self) -> int:
        """Acknowledged writes on green not yet on blue, read now: changes green→blue has still to apply, and
        versions parked on green whose record has not reached blue's store yet."""
        pending = self.lag()[GREEN_TO_BLUE].pending
        return pending + self._green_unmirrored

    def conflicts_waiting(self) -> int:
        """Parked versions not yet resolved, both sides' stores together (read now)."""
        with self._lag_lock:
            self._figures_at = 0.0
        self.lag()
        return int(self._figures.get("conflicts_waiting", 0) or 0)

    def drain(self, timeout_s: float) -> bool:
        """Run passes until green→blue has nothing pending, or until the deadline. True when drained."""
        deadline = time.monotonic() + max(0.0, float(timeout_s))
        backoff = 0.05
        while True:
            try:
                self.run_once()
                if self.lag()[GREEN_TO_BLUE].pending == 0:
                    return True
                backoff = 0.05
            except Exception as exc:  # the server went away: keep trying until the deadline
                self._error(exc)
                backoff = min(backoff * 2, 1.0)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # pending changes not yet final (a transaction still open on green): poll again shortly
            time.sleep(min(backoff, remaining))

    # ---------------------------------------------------------------------------------------------- the loop

    def start(self) -> None:
        """Run passes every `interval` seconds in a background thread (reconnecting with backoff)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="cockpit-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop (the current batch finishes or rolls back) and close the connections."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.close()
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            version = self._blue_version()
            try:
                result = self.run_once()
                if self._down_since is not None:
                    self._emit("sync.reconnected", {"down_s": round(time.monotonic() - self._down_since, 3)})
                    self._down_since = None
                self._backoff = 0.0
                self.last_error = None
                self._persist()
                busy = any(result[d]["changes"] >= self.batch_size for d in DIRECTIONS)
                if not busy:
                    self._wait_for_blue(version, self.interval)
            except Exception as exc:
                self._stop.wait(self._error(exc))

    # Between passes the loop watches SQLite's `PRAGMA data_version` (a local read, no I/O to PostgreSQL): a commit
    # on blue starts the next pass at once, so blue→green lag stays well under `interval`, which then only paces
    # the polling of green.
    WATCH_S = 0.05

    def _blue_version(self) -> int | None:
        try:
            if self._watch is None:
                self._watch = connect_sqlite(self.sqlite_path)
            return int(self._watch.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            return None

    def _wait_for_blue(self, version: int | None, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop.wait(min(self.WATCH_S, remaining)):
                return
            if version is not None and self._blue_version() != version:
                return

    def _error(self, exc: BaseException) -> float:
        """Note a failed pass; the backoff before the next one (doubling up to `max_backoff`)."""
        self._backoff = min(self.max_backoff, max(0.25, self._backoff * 2)) if self._backoff else 0.25
        self.totals["errors"] += 1
        message = redact_text(f"{type(exc).__name__}: {exc}".strip())
        first = self.last_error != message
        self.last_error = message
        if isinstance(exc, _CONNECTION_ERRORS) and self._down_since is None:
            self._down_since = time.monotonic()
        if first:
            self._emit("sync.error", {"error": message, "retry_in_s": self._backoff})
        self._persist()
        return self._backoff

    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        if self.on_event is not None:
            try:
                self.on_event(kind, payload)
            except Exception:
                pass

    def close(self) -> None:
        with self._lock:
            self._drop_pg()
            if self._blue is not None:
                self._blue.close()
                self._blue = None
        with self._persist_lock:
            if self._persist_conn is not None:
                self._persist_conn.close()
                self._persist_conn = None
        with self._lag_lock:
            if self._lag_pg is not None:
                try:
                    self._lag_pg.close()
                except Exception:
                    pass
                self._lag_pg = None
            if self._lag_blue is not None:
                self._lag_blue.close()
                self._lag_blue = None

    def status(self) -> dict[str, Any]:
        """Lag per direction, pending counts, totals and what holds the sync, as `cockpit sync status --json`
        prints it."""
        lag = self.lag()
        return {
            "blue": str(self.sqlite_path),
            "lag": {d: lag[d].as_dict() for d in DIRECTIONS},
            "totals": dict(self.totals),
            "last_error": self.last_error,
            "error": self.problem(),
            "stalled": self._stalled,
            "stalled_s": round(self.stalled_s, 3),
            "conflicts_waiting": self._figures.get("conflicts_waiting", 0),
            "keys_left": self._figures.get("keys_left"),
            "schema_changed": dict(self.schema_changed),
            "green_only_pending": self._last_green_lag.pending + self._green_unmirrored,
        }


def _blue_lag(blue: sqlite3.Connection, position: int) -> Lag:
    if not blue.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SQLITE_LOG,)
    ).fetchone():
        return Lag(0.0, 0)
    count, oldest = blue.execute(
        f"SELECT count(*), {sqlite_epoch('min(ts)')} FROM {SQLITE_LOG} WHERE seq > ?", (position,)
    ).fetchone()
    if not count:
        return Lag(0.0, 0)
    return Lag(max(0.0, time.time() - float(oldest)), int(count))


def _green_lag(pg: psycopg.Connection, position: tuple[int, int]) -> Lag:
    if not pg_has(pg, f"{PG_SCHEMA}.changes"):
        return Lag(0.0, 0)
    count, age = pg.execute(  # type: ignore[misc]
        f"SELECT count(*), extract(epoch FROM clock_timestamp() - min(ts))::float8 FROM {PG_SCHEMA}.changes"
        " WHERE (txid, seq) > (%s::text::xid8, %s)",
        (str(position[0]), position[1]),
    ).fetchone()
    if not count:
        return Lag(0.0, 0)
    return Lag(max(0.0, float(age or 0.0)), int(count))


PROBLEM_KEY = "sync_problem"  # _cockpit_state: what the running sync last reported (see SyncRunner._persist)


def read_problem(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """What the running sync last wrote to blue: {"error", "stalled", "since"}, or None while it runs well."""
    try:
        row = conn.execute(f"SELECT value FROM {SQLITE_STATE} WHERE key = ?", (PROBLEM_KEY,)).fetchone()
    except sqlite3.OperationalError:
        return None
    return json.loads(row[0]) if row else None


def _unmirrored(pg: psycopg.Connection, blue: sqlite3.Connection) -> int:
    from cockpit.drivers.sync import conflicts

    if not pg_has(pg, conflicts.PG_STORE):
        return 0
    try:
        row = blue.execute(
            f"SELECT value FROM {SQLITE_STATE} WHERE key = ?", (conflicts.FROM_GREEN,)
        ).fetchone()
    except sqlite3.OperationalError:  # capture not installed on blue
        row = None
    after = int(row[0]) if row else 0
    return int(
        one(
            pg.execute(
                f"SELECT count(*) FROM {conflicts.PG_STORE} WHERE made_on = 'green' AND id > %s", (after,)
            )
        )[0]
    )


def _waiting(blue: sqlite3.Connection, pg: psycopg.Connection | None) -> int:
    from cockpit.drivers.sync import conflicts

    waiting, resolved = conflicts.waiting_uids_sqlite(blue)
    if pg is not None:
        green_waiting, green_resolved = conflicts.waiting_uids_pg(pg)
        waiting |= green_waiting
        resolved |= green_resolved
    return len(waiting - resolved)


def journal_sink(path: Path) -> EventSink:
    """An `on_event` that writes each sync event into the journal at `path` (opened per event: thread-safe)."""

    def sink(kind: str, payload: dict[str, Any]) -> None:
        from cockpit.core.journal import Journal

        journal = Journal(path)
        try:
            journal.event(kind, payload)
        finally:
            journal.close()

    return sink
