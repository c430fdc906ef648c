"""Only the service account and ``[storage] group`` read the files (docs/ARCHITECTURE.md
"Service account and readers"): a real Store on real SQLite files and the real ActionServer on
a real Unix socket; the database, its -wal/-shm and a day partition are 0640, the socket 0660,
all owned by the configured group."""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import pwd
import stat
from datetime import datetime, timezone

import pytest

from facility.domain.model import PointInfo, Sample
from facility.service.socket import ActionServer
from facility.store.database import Cycle, Store
from facility.store.partitions import partition_path

T0 = int(datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc).timestamp() * 1000)
DAY = "2025-03-01"
POINTS = [PointInfo("MEC-DP-01.dp", "MEC-DP-01", "MEC", "MEC-LITHO", "pressure_diff", "Pa", 1)]
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def group_of(path: str) -> str:
    return grp.getgrgid(os.stat(path).st_gid).gr_name


def sqlite_files(base: str) -> list[str]:
    files = [base + s for s in ("", "-wal", "-shm")]
    for f in files:  # SQLite made them all (WAL mode), so the modes below are not vacuous
        assert os.path.exists(f), f
    return files


def _written_store(path: str, group: str | None) -> Store:
    s = Store(path, group=group)
    s.register_points(POINTS)
    s.write_cycle(Cycle(samples=[Sample(POINTS[0].id, T0, 10.0)]))
    return s


@pytest.fixture
def loose_umask():
    """Files would be created 0666/0777 but for the store's and the socket's own modes."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_database_wal_shm_and_partition_are_0640_in_the_group(tmp_path, loose_umask):
    db = str(tmp_path / "var" / "facility.db")
    with _written_store(db, MY_GROUP) as s:
        files = sqlite_files(s.path) + sqlite_files(partition_path(s.path, DAY))
        for f in files:
            assert mode(f) == 0o640, (f, oct(mode(f)))
            assert group_of(f) == MY_GROUP, f


def test_default_group_is_the_process_group(tmp_path, loose_umask):
    with _written_store(str(tmp_path / "f.db"), None) as s:
        for f in sqlite_files(s.path):
            assert mode(f) == 0o640 and os.stat(f).st_gid == os.getegid(), f


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to a group the process is not"
                    " in needs root; the other tests cover the mode and the own group")
def test_the_configured_group_is_applied_over_the_process_group(tmp_path):
    other = grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
    assert grp.getgrnam(other).gr_gid != os.getegid()
    with _written_store(str(tmp_path / "f.db"), other) as s:
        files = sqlite_files(s.path) + sqlite_files(partition_path(s.path, DAY))
        assert {group_of(f) for f in files} == {other}
    with Store(str(tmp_path / "f.db"), group=MY_GROUP) as s:  # and back on the next open
        assert group_of(s.path) == MY_GROUP


def test_a_group_it_cannot_apply_warns_in_one_line_and_goes_on(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="facility.store.filemodes"):
        with _written_store(str(tmp_path / "f.db"), "no-such-group-fms") as s:
            assert mode(s.path) == 0o640
            assert s.conn.execute("SELECT count(*) FROM points").fetchone()[0] == 1
    warned = [r.getMessage() for r in caplog.records if "no-such-group-fms" in r.getMessage()]
    assert warned and all("\n" not in w and "no such group" in w for w in warned)
    assert len(warned) == len(set(warned)), "one warning per file, not per open"


def test_action_socket_is_0660_in_the_group(tmp_path, loose_umask):
    path = str(tmp_path / "fms.sock")

    async def handle(*_args):
        return {"ok": True}

    async def bind_and_look() -> tuple[int, str, bool]:
        srv = ActionServer(path, handle, group=MY_GROUP)
        await srv.start()
        try:
            st = os.stat(path)
            return stat.S_IMODE(st.st_mode), grp.getgrgid(st.st_gid).gr_name, \
                stat.S_ISSOCK(st.st_mode)
        finally:
            await srv.close()

    m, g, is_sock = asyncio.run(bind_and_look())
    assert is_sock and m == 0o660 and g == MY_GROUP
    assert not os.path.exists(path)
