"""Readers' entry point to the chain witness (the writer lives in :mod:`facility.store.witness`,
below the service in the layering): ``witness_path(cfg)``, ``read_checkpoints(path)`` (each
line ``{"seq","row_id","hash","at","prev","key","sig"}``, checked; :class:`WitnessError`, a
:class:`~facility.domain.errors.CheckFailed`, names the first broken line) and ``latest(path)``.
"""

from __future__ import annotations

from facility.store.witness import WITNESS, WitnessError, latest, read_checkpoints, witness_path

__all__ = ["WITNESS", "WitnessError", "latest", "read_checkpoints", "witness_path"]
