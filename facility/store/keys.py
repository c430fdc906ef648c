"""Where the audit key comes from: the file named by ``storage.audit_key_env``, else
``audit.key`` beside the database (created 0600 by the service on first start)."""

from __future__ import annotations

import os

from facility.config.schema import Config
from facility.store.audit import ensure_key, load_key


def default_key_path(cfg: Config) -> str:
    """``<db folder>/audit.key``."""
    return os.path.join(os.path.dirname(cfg.db_path), "audit.key")


def audit_key(cfg: Config, *, create: bool = False) -> bytes | None:
    """The HMAC key, or None when there is none (and ``create`` is false)."""
    key = load_key(cfg.storage.audit_key_env)
    if key is not None:
        return key
    path = default_key_path(cfg)
    if create:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return ensure_key(path)
    if os.access(path, os.R_OK):
        with open(path, "rb") as fh:
            return fh.read().strip()
    return None
