"""Shared fixtures: a fresh PostgreSQL database per test on the real server, waits with deadlines."""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.drivers.sshd import fleet  # noqa: F401 (the fixture: two real sshd hosts, for every test folder)

PG_ADMIN_URL = os.environ.get("COCKPIT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def sample_values(journal_path: str | os.PathLike[str], name: str) -> list[float | None]:
    """The values a journal holds for one metric, oldest first (read beside any writer, as `sqlite3` would)."""
    conn = sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True)
    try:
        return [v for (v,) in conn.execute("SELECT value FROM samples WHERE name = ? ORDER BY ts", (name,))]
    finally:
        conn.close()


def wait_for(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> object:
    """Poll `predicate` until it returns a truthy value; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty database on the real PostgreSQL server, dropped after the test."""
    name = f"cockpit_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening: connecting is refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/health"
    finally:
        sock.close()
