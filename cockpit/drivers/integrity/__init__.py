"""Are blue and green the same data? Hashes of primary-key segments computed inside each database, narrowed down
to the exact rows that differ; only the hashes, and the rows of the parts that differ, cross the network.

One canonical form on both sides: blue's stored value, storage class included (`1`, `1.0` and `'1'` differ as they
do in SQLite); a green value is equal when its `ColumnMap.to_sqlite` is. `canonical` renders that form as text in
SQLite's SQL, in PostgreSQL's SQL and in Python, the three pinned to each other by a randomized test and checked on
probe values at the start of every check. `segments` compares a keyed table by segments of blue's keys, cut again
where the hashes differ, down to a few dozen rows compared in Python (`table.Table.diff`); `multiset` compares a
table without a key as a multiset of rows. Rows still in flight in the sync are not divergence: a key that differs
is checked again after the sync has had time to carry it (`settle`), and only what still differs counts.

`score` (the `data_integrity_score` metric, %) is 100 x matching rows / rows compared; `bytes` is what the check
moved to and from green (`green`). Output names rows by key and masks personal data (e-mails, CPF, CNPJ) unless
asked not to.
"""

from __future__ import annotations

from cockpit.drivers.integrity.check import check
from cockpit.drivers.integrity.report import MAX_LISTED, IntegrityReport, RowDiff, TableIntegrity, mask
from cockpit.drivers.integrity.watch import IntegrityWatch

__all__ = ["MAX_LISTED", "IntegrityReport", "IntegrityWatch", "RowDiff", "TableIntegrity", "check", "mask"]
