"""The storage floor: one SQLite database in WAL mode, day partitions, aggregates, the audit trail.

The face of the floor is here: :class:`Store` (the single writer's connection and the read
API every reader uses), :class:`Cycle` (what one service cycle writes in one transaction)
and the errors.  The modules behind it:

* ``schema``      numbered migrations of the main database (sqlite-utils)
* ``partitions``  one attached SQLite file per UTC day for raw samples
* ``rows``        alarm and event rows as the store writes and reads them
* ``aggs``        1-minute and hourly aggregates (min, max, mean, count, worst quality)
* ``read``        the read API (readers speak no SQL): snapshots, latest values, alarms,
                  events, chunked history and audit rows, the hazmat ledger's stock
* ``retention``   whole-partition purges, only after a verified archive for GMP data
* ``audit``       the append-only HMAC-SHA-256 chain and its canonical form
* ``keys``        where the audit key lives and how it is created (mode 0600)
"""

from facility.store.database import Cycle, CycleResult, Store
from facility.store.errors import AuditKeyError, StoreError, StoreLocked, StoreMissing, StoreRefused

__all__ = ["AuditKeyError", "Cycle", "CycleResult", "Store", "StoreError", "StoreLocked",
           "StoreMissing", "StoreRefused"]
