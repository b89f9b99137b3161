"""Are blue and green the same data? Counts per table, then checksums over primary-key segments, narrowed to the
exact rows that differ.

One canonical form on both sides: every green value is brought to the form blue stores (the sync's own
`ColumnMap.to_sqlite`), and each row becomes the repr of (type, value) pairs, so `1` and `1.0` or `'1'` differ as
they do in SQLite. Segments follow blue's primary key (keyset pagination, `segment_rows` keys each); each segment
is hashed on both sides; a segment whose hashes differ is compared key by key, which names the rows that are
missing on one side or differ. Rows still in flight in the sync are not divergence: a key that differs is checked
again after the sync has had time to carry it (`settle_s`), and only what still differs counts.

`score` (the `data_integrity_score` metric, %) is 100 x matching rows / rows compared. Output names rows by key
and masks personal data (e-mails, CPF, CNPJ) unless asked not to.
"""

from __future__ import annotations

from cockpit.drivers.integrity.check import check
from cockpit.drivers.integrity.report import MAX_LISTED, IntegrityReport, RowDiff, TableIntegrity, mask
from cockpit.drivers.integrity.watch import IntegrityWatch

__all__ = ["MAX_LISTED", "IntegrityReport", "IntegrityWatch", "RowDiff", "TableIntegrity", "check", "mask"]
