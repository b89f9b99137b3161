"""The lab's private PostgreSQL cluster: initdb (as the postgres user when root), start, serve green, stop."""

from __future__ import annotations

from pathlib import Path

import psutil
import psycopg
import pytest

from cockpit.lab.cluster import ClusterInfo
from cockpit.lab.errors import LabError
from cockpit.lab.lab import LabOptions, down, listening, status, up


def test_private_cluster_up_and_down(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    try:
        state = up(LabOptions(root=root, rate=0, rows=300, pg_url="", quiet=True))
        doc = status(root)
        pg = doc["postgres"]
        assert pg["mode"] == "private" and pg["running"]
        info = ClusterInfo(**pg["cluster"])
        postmaster = psutil.Process(info.server_pid())
        if psutil.Process().uids().effective == 0:
            assert postmaster.username() == "postgres"  # PostgreSQL refuses root: it runs as postgres
        with psycopg.connect(doc["postgres_url"]) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
            assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == state["seeded"]["users"]
        assert all(s["health"] == 200 for s in doc["services"] if s["side"] == "green")
        assert info.port in listening([info.port])
    finally:
        report = down(root, quiet=True)
    assert report["errors"] == []
    assert not psutil.pid_exists(postmaster.pid) or postmaster.status() == psutil.STATUS_ZOMBIE
    assert listening(state["ports"]) == []
    assert not Path(info.base).exists()  # the cluster's data goes with it


def test_private_cluster_with_tls_serves_every_client_encrypted(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    try:
        state = up(LabOptions(root=root, rate=0, rows=200, pg_url="", quiet=True, tls=True))
        doc = status(root)
        url = doc["postgres_url"]
        assert "sslmode=verify-full" in url and "sslrootcert=" in url
        assert all(s["health"] == 200 for s in doc["services"] if s["side"] == "green")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == state["seeded"]["users"]
            rows = conn.execute(
                "SELECT a.pid, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                "WHERE a.backend_type = 'client backend' AND a.datname = current_database()"
            ).fetchall()
        assert len(rows) >= 2  # this test's connection and the green services'
        assert all(ssl for _pid, ssl in rows), rows
    finally:
        report = down(root, quiet=True)
    assert report["errors"] == []


def test_tls_with_an_existing_server_is_refused_before_anything_starts(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    with pytest.raises(LabError, match="sslmode=require"):
        up(
            LabOptions(
                root=root,
                rate=0,
                rows=200,
                pg_url="postgresql://postgres@127.0.0.1/postgres",
                quiet=True,
                tls=True,
            )
        )
    assert not root.exists()
