"""A table keyed by one BLOB column (a UUID stored as 16 bytes, say) syncs both ways, and its keys reach the
touched set the rollback's check reads. Before, the prune's `json_array(pk)` raised on the first blob key and
stopped the sync on every pass."""

from __future__ import annotations

import sqlite3

from cockpit.drivers.sync.capture import touched_keys
from tests.sync.test_keyless import _settle
from tests.sync.test_sync_support import blue_exec, blue_rows, green_rows, make_copied, pg_exec


def test_a_blob_key_syncs_both_ways_and_is_touched_as_bytes(tmp_path, pg_url):
    db, r = make_copied(
        tmp_path,
        pg_url,
        ["CREATE TABLE tok (id BLOB PRIMARY KEY, v TEXT)", "INSERT INTO tok VALUES (x'00ff', 'a')"],
        tables=["tok"],
    )
    try:
        blue_exec(db, "INSERT INTO tok VALUES (x'0102', 'b')")
        blue_exec(db, "UPDATE tok SET v = 'a2' WHERE id = x'00ff'")
        _settle(r)
        assert sorted(green_rows(pg_url, "tok")) == [(b"\x00\xff", "a2"), (b"\x01\x02", "b")]
        pg_exec(pg_url, "INSERT INTO tok VALUES ('\\x0a0b'::bytea, 'g')")
        pg_exec(pg_url, "DELETE FROM tok WHERE id = '\\x0102'::bytea")
        _settle(r)
        want = [(b"\x00\xff", "a2"), (b"\n\x0b", "g")]
        assert sorted(blue_rows(db, "tok")) == want and sorted(green_rows(pg_url, "tok")) == want
        conn = sqlite3.connect(db)
        try:
            touched = touched_keys(conn)["tok"]
        finally:
            conn.close()
        assert {(b"\x00\xff",), (b"\x01\x02",), (b"\n\x0b",)} <= touched
    finally:
        r.close()
