"""Who may read the service's files (docs/ARCHITECTURE.md "Service account and readers").

The database, its ``-wal``/``-shm`` and the day partitions are 0640 and the action socket
0660, all owned by ``[storage] group`` (None: the process's own group), so the service
account writes, the readers' group reads and nobody else does. SQLite creates ``-wal`` and
``-shm`` lazily, so the writer calls :func:`restrict_db` after opening a file in WAL mode.
Changing the group needs the process to own the file and belong to the group; where it may
not, one warning line says so and the service goes on (never a crash).
"""

from __future__ import annotations

import grp
import logging
import os

log = logging.getLogger(__name__)

DB_MODE = 0o640
SOCKET_MODE = 0o660
SQLITE_SIDE_FILES = ("", "-wal", "-shm")

_warned: set[tuple[str, str]] = set()


def group_id(group: str | None) -> int:
    """The id of ``group`` (None: the process's effective group); KeyError if unknown."""
    return os.getegid() if group is None else grp.getgrnam(group).gr_gid


def restrict(path: str, mode: int, group: str | None = None) -> None:
    """Set ``path`` to ``mode`` and owned by ``group``; a missing file is skipped."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    what = f"mode {mode:04o}"
    try:
        if st.st_mode & 0o7777 != mode:
            os.chmod(path, mode)
        what = f"group {group!r}"
        gid = group_id(group)
        if st.st_gid != gid:
            os.chown(path, -1, gid)
    except (KeyError, OSError) as exc:
        if (path, what) not in _warned:
            _warned.add((path, what))
            why = "no such group" if isinstance(exc, KeyError) else exc.strerror
            log.warning("cannot give %s %s (%s); check who owns it", path, what, why)


def restrict_db(path: str, group: str | None = None) -> None:
    """0640 and ``group`` on a SQLite file and its ``-wal``/``-shm`` (those that exist)."""
    for suffix in SQLITE_SIDE_FILES:
        restrict(path + suffix, DB_MODE, group)
