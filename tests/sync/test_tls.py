"""The copy, the two-way sync and the integrity check over TLS, as Neon demands (`sslmode=require`).

The machine's PostgreSQL has SSL off, so these tests run against a private cluster of the lab started with SSL on
(a throwaway CA and a server certificate for 127.0.0.1). The cockpit's connections carry an `application_name` in
the URL, and `pg_stat_ssl` (joined with `pg_stat_activity` by pid) shows that those connections really are encrypted
while they are open, not just that a URL said so.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest

from cockpit.cli.main import main
from cockpit.drivers.integrity import check
from cockpit.drivers.sync.capture import sqlite_installed
from cockpit.drivers.sync.copy import CopyProgress, copy_database
from cockpit.drivers.sync.runner import SyncRunner, connect_pg, connect_sqlite
from cockpit.drivers.sync.schema import read_mapping
from cockpit.lab.cluster import (
    ClusterInfo,
    create_lab_database,
    drop_lab_database,
    init_cluster,
    make_certificates,
    remove_cluster,
    start_cluster,
    stop_cluster,
    with_database,
)
from tests.conftest import wait_for
from tests.sync.test_sync_support import (
    TABLES,
    Events,
    assert_same,
    blue_exec,
    blue_rows,
    green_rows,
    make_blue,
    pg_exec,
    runner,
)

APP = "cockpit-tls"  # tags the cockpit's connections in pg_stat_activity
OBSERVER = "cockpit-tls-observer"  # the test's own look at pg_stat_ssl, never counted


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _url(base: str, **params: str) -> str:
    """`base` with libpq parameters added to its query (sslmode, sslrootcert, application_name)."""
    return f"{base}{'&' if '?' in base else '?'}{urlencode(params)}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    """A private PostgreSQL serving TLS; stopped and removed at the end, also when a test or the start fails."""
    info = init_cluster(tmp_path_factory.mktemp("tls-pg"), _free_port(), ssl=True)
    try:
        start_cluster(info)
        yield info
    finally:
        stop_cluster(info)
        remove_cluster(info)


@pytest.fixture
def green(cluster: ClusterInfo) -> Iterator[str]:
    """A new database on the TLS cluster: its URL with no sslmode (each test says how it connects)."""
    url, name = create_lab_database(cluster.url)
    try:
        yield url
    finally:
        drop_lab_database(cluster.url, name)


def _require(url: str) -> str:
    return _url(url, sslmode="require", application_name=APP)


def _ssl_of(url: str, app: str = APP) -> list[bool]:
    """`pg_stat_ssl.ssl` of every connection named `app` open on the database of `url` at this instant."""
    with psycopg.connect(_url(url, sslmode="require", application_name=OBSERVER), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid"
            " WHERE a.application_name = %s AND a.datname = current_database()",
            (app,),
        ).fetchall()
    return [bool(r[0]) for r in rows]


def _seeded_blue(tmp_path: Path) -> Path:
    db = tmp_path / "blue.db"
    make_blue(db)
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?, ?, ?)",
            [(i, f"nome {i} ç", i, i / 8, bytes([i % 256]) * 3 if i % 3 else None) for i in range(1, 301)],
        )
        conn.executemany('INSERT INTO "Pairs" VALUES (?, ?, ?)', [("a", i, f"v{i}") for i in range(20)])
    return db


@pytest.fixture
def pair(tmp_path: Path, green: str) -> Iterator[tuple[Path, str, SyncRunner]]:
    """Blue seeded, copied into green over TLS with capture on both sides (as `cockpit sync copy` does it)."""
    db = _seeded_blue(tmp_path)
    url = _require(green)
    r = runner(db, url, interval=0.05)
    try:
        r.install_blue()  # capture first: the copy's snapshot names where blue→green resumes
        copy_database(str(db), url, tables=list(TABLES), jobs=2)
        r.install()
        r.close()  # the test opens what it needs: only its own connections are then in pg_stat_ssl
        yield db, url, r
    finally:
        r.stop()


def test_the_ssl_check_tells_an_encrypted_connection_from_a_plain_one(green: str) -> None:
    with connect_pg(_url(green, sslmode="disable", application_name="plain")):
        assert _ssl_of(green, "plain") == [
            False
        ]  # the check can fail: the server also takes plain connections
    with connect_pg(_require(green)) as conn:  # opened the way the runner opens its connection
        assert _ssl_of(green) == [True]
        version = conn.execute("SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0]
        assert version.startswith("TLS")
    assert _ssl_of(green) == []


def test_initial_copy_over_tls(tmp_path: Path, green: str) -> None:
    db = _seeded_blue(tmp_path)
    seen: list[list[bool]] = []

    def progress(p: CopyProgress) -> None:  # called by a writer thread with its COPY session open
        if not seen:
            seen.append(_ssl_of(green))

    report = copy_database(str(db), _require(green), jobs=2, progress=progress)
    assert report.rows == 320
    assert seen and seen[0] and all(seen[0]), f"the copy's connections in pg_stat_ssl: {seen}"
    assert_same(db, _require(green))


def test_runner_moves_changes_both_ways_over_tls(pair: tuple[Path, str, SyncRunner]) -> None:
    db, url, r = pair
    r.start()
    blue_exec(db, "INSERT INTO items (id, name) VALUES (1000, 'from blue')")
    blue_exec(db, "UPDATE items SET qty = -1 WHERE id = 5")
    blue_exec(db, "DELETE FROM items WHERE id = 6")
    pg_exec(url, """INSERT INTO "Pairs" VALUES ('g', 1, 'from green')""")
    pg_exec(url, """UPDATE "Pairs" SET "value" = 'changed on green' WHERE a = 'a' AND b = 3""")
    pg_exec(url, """DELETE FROM "Pairs" WHERE a = 'a' AND b = 4""")
    wait_for(
        lambda: r.lag()["blue_to_green"].pending == 0 and r.lag()["green_to_blue"].pending == 0,
        15,
        what="both directions caught up",
    )
    wait_for(lambda: len(_ssl_of(url)) >= 2, 5, what="the runner's pass and lag connections")
    assert all(_ssl_of(url)), "a connection of the runner is not encrypted"
    r.stop()
    assert _ssl_of(url) == []  # stopping closed them
    assert_same(db, url)
    assert (1000, "from blue", None, None, None) in green_rows(url, "items")
    assert [row for row in green_rows(url, "items") if row[0] in (5, 6)] == [
        (5, "nome 5 ç", -1, 5 / 8, b"\x05" * 3)
    ]
    assert ("g", 1, "from green") in blue_rows(db, "Pairs")
    assert ("a", 3, "changed on green") in blue_rows(db, "Pairs")
    assert not [row for row in blue_rows(db, "Pairs") if row[:2] == ("a", 4)]


def test_integrity_check_over_tls(pair: tuple[Path, str, SyncRunner]) -> None:
    db, url, r = pair
    with closing(connect_sqlite(db)) as conn:
        mapping = read_mapping(conn, tables=list(TABLES))
    report = check(str(db), url, mapping, segment_rows=50)
    assert report.ok and report.compared == 320

    pg_exec(url, "UPDATE items SET name = 'only on green' WHERE id = 77")  # not synced yet
    seen: list[list[bool]] = []

    def settle() -> None:  # called with the check's green connection open
        seen.append(_ssl_of(url))

    report = check(str(db), url, mapping, segment_rows=50, settle=settle)
    assert not report.ok
    assert [d.key for d in report.table("items").diffs] == [(77,)]
    assert seen == [[True]], f"the integrity check's connection in pg_stat_ssl: {seen}"
    r.run_once()
    assert check(str(db), url, mapping, segment_rows=50).ok


def test_verify_full_with_the_cluster_ca(cluster: ClusterInfo, pair: tuple[Path, str, SyncRunner]) -> None:
    db, url, _ = pair
    name = url.split("?")[0].rsplit("/", 1)[1]
    verify = _url(with_database(cluster.verify_full_url, name), application_name=APP)
    r = runner(db, verify)
    try:
        blue_exec(db, "INSERT INTO items (id, name) VALUES (2000, 'verified')")
        pg_exec(url, """INSERT INTO "Pairs" VALUES ('v', 1, 'verified')""")
        assert r.drain(10)
        assert _ssl_of(url) == [True, True]  # the pass connection and the lag connection
    finally:
        r.close()
    assert_same(db, url)
    with closing(connect_sqlite(db)) as conn:
        mapping = read_mapping(conn, tables=list(TABLES))
    assert check(str(db), verify, mapping).ok


def test_a_wrong_ca_is_refused_with_a_clear_message(
    tmp_path: Path, green: str, capsys: pytest.CaptureFixture[str]
) -> None:
    other_ca, _, _ = make_certificates(
        tmp_path / "other-ca"
    )  # a valid CA, but not the one that signed the server
    wrong = _url(green, sslmode="verify-full", sslrootcert=str(other_ca))
    db = _seeded_blue(tmp_path)

    assert main(["sync", "copy", "--from", str(db), "--to", wrong]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cockpit sync") and "certificate verify failed" in err
    assert "Traceback" not in err
    with closing(connect_sqlite(db)) as conn:
        assert sqlite_installed(conn) == []  # blue as it was
    with psycopg.connect(_require(green)) as pg:
        assert pg.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0

    events = Events()
    r = runner(db, wrong, on_event=events, max_backoff=0.5)
    r.start()
    try:
        wait_for(lambda: events.of("sync.error"), 10, what="the runner's error event")
    finally:
        r.stop()
    assert "certificate verify failed" in events.of("sync.error")[0]["error"]
    assert "certificate verify failed" in (r.last_error or "")
