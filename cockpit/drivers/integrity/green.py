"""Green's connection as the integrity check uses it: every query through `rows`, which counts the bytes moved.

psycopg exposes no socket counters, so the count is the protocol payload: what is sent (the query text and its
parameters as text) and what is received (each result row's field bytes plus the DataRow framing, 7 bytes a row
and 4 a field, read from libpq's result). TCP and TLS framing are not counted; the benchmark prints the socket
count of a proxy beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from cockpit.drivers.integrity.canonical import GREEN_SETTINGS


class Green:
    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.sent = 0
        self.received = 0
        for setting in GREEN_SETTINGS:
            conn.execute(setting)

    @property
    def bytes(self) -> int:
        return self.sent + self.received

    def rows(self, query: sql.Composable, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        self.sent += len(query.as_bytes(self.conn)) + sum(_param_bytes(p) for p in params or ())
        with self.conn.cursor() as cur:
            cur.execute(sql.Composed([query]), params)  # any Composable, as psycopg's types want one
            rows = cur.fetchall()
            res = cur.pgresult
            if res is not None:
                fields, value = res.nfields, res.get_value
                self.received += res.ntuples * (7 + 4 * fields) + sum(
                    len(value(r, c) or b"") for r in range(res.ntuples) for c in range(fields)
                )
            return rows


def _param_bytes(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bytes):
        return 2 * len(value) + 2  # hex
    if isinstance(value, list | tuple):
        return 2 + sum(_param_bytes(v) + 1 for v in value)
    return len(str(value).encode())
