"""Errors of the storage floor, so the CLI can print one line and exit 3 (docs/ARCHITECTURE.md "The command line")."""

from __future__ import annotations

from facility.domain.errors import RuntimeFailure


class StoreError(RuntimeFailure):
    """A storage problem the user can act on; the message names the place and the fix."""


class StoreMissing(StoreError):
    """The database file does not exist (a read-only open never creates one)."""


class StoreLocked(StoreError):
    """Another connection held the write lock for longer than the busy timeout."""


class StoreRefused(StoreError):
    """An action the store refuses by rule, e.g. purging a GMP partition with no verified archive."""


class AuditKeyError(StoreError):
    """The audit HMAC key file is missing, empty or readable by others than its owner."""


class StoreFull(StoreError):
    """SQLite reported "database or disk is full" (SQLITE_FULL): nothing of the cycle was kept;
    the service holds the cycle and retries (docs/ARCHITECTURE.md "Disk full")."""
