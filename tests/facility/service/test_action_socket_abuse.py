"""The action socket survives abuse: oversized, mistyped and flooded requests.

The real ``ActionServer`` serves the real ``ActionHandler`` of a ``Desk`` (book, store and
audit chain; no pollers) on a loop thread; clients are real Unix-socket connections, the
flood a forked child process. Every refusal is one line, and audited under the peer's login.
"""

from __future__ import annotations

import grp
import json
import logging
import os
import pwd
import resource
import select
import signal
import socket
import tempfile

import pytest

from alarms.lifecycle import State
from facility.config import parse_config
from facility.domain.text import REASON_MAX
from facility.service.socket import (
    MAX_REQUEST_BYTES,
    SUN_PATH_MAX,
    ActionRefused,
    ActionServer,
    LogThrottle,
    current_login,
    recv_line,
    request,
    socket_path,
)
from tests.fixtures.config import device, facility_toml, operator, zone
from tests.fixtures.desk import Desk
from tests.fixtures.loop import LoopThread
from tests.fixtures.wait import DEADLINE_S, wait_for

TEMP = "T-1.temp:action_high"
ME = current_login()
FLOOD = 1000
PER_UID, TOTAL, IDLE_S = 8, 64, 1.0


@pytest.fixture(scope="module")
def world():
    """A Desk on a loop thread, in a folder every uid may traverse (the flood runs as nobody)."""
    folder = tempfile.mkdtemp(prefix="fms-socket-")
    os.chmod(folder, 0o755)
    db = os.path.join(folder, "fms.db")
    text = facility_toml(
        storage={"path": db}, zones=[zone("Z1", iso_class=7, area_m2=10)],
        devices=[device("T-1", 15030, zone="Z1", points=[{
            "name": "temp", "table": "holding", "address": 0, "type": "float32", "unit": "C",
            "quantity": "temperature", "limits": {"action_high": {"limit": 25.0}}}])],
        operators=[operator(ME, "Test Operator", ("technician",))])
    loop = LoopThread("socket-abuse")
    desk = loop.call(lambda: Desk(parse_config(text, base_dir=folder), db))
    loop.call(desk.raise_, TEMP)
    yield loop, desk, db
    loop.call(desk.close)
    loop.stop()
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))
    os.rmdir(folder)


@pytest.fixture
def server(world):
    loop, desk, db = world
    # The socket is 0660: as root, give it to nobody's group (the readers' group of a real
    # install) so the flood from nobody reaches it.
    group = grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name if os.geteuid() == 0 else None
    srv = ActionServer(socket_path(db), desk.handler.handle, max_per_uid=PER_UID,
                       max_connections=TOTAL, idle_timeout_s=IDLE_S, group=group)
    loop.run(srv.start())
    yield srv
    loop.run(srv.close())


def audit(world, action):
    loop, desk, _db = world
    return loop.call(desk.audit, action)


def raw(path: str, data: bytes) -> dict:
    """Send raw bytes as a request line; the service's one-line reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(DEADLINE_S)
        s.connect(path)
        s.sendall(data)
        reply = recv_line(s)
    assert reply.count(b"\n") == 1, reply
    return json.loads(reply)


def occurrence(world) -> int:
    loop, desk, _db = world
    return loop.call(lambda: desk.state(TEMP).occurrence)


# -- size ---------------------------------------------------------------------------------
def test_oversized_request_is_one_line_and_audited(world, server):
    before = len(audit(world, "refused:request"))
    with pytest.raises(ActionRefused) as exc:
        request(world[2], {"action": "comment", "alarm": TEMP, "reason": "x" * 100_000})
    msg = str(exc.value)
    assert f"larger than {MAX_REQUEST_BYTES} bytes" in msg and "\n" not in msg
    rows = audit(world, "refused:request")[before:]
    assert [(r["actor"], r["details"]["refusal"]) for r in rows] == [(ME, msg)]


def test_reason_over_reason_max_is_refused_and_audited(world, server):
    before = len(audit(world, "refused:comment"))
    long = "r" * (REASON_MAX + 1)
    with pytest.raises(ActionRefused) as exc:
        request(world[2], {"action": "comment", "alarm": TEMP, "reason": long})
    assert f"reason is {REASON_MAX + 1} characters, at most {REASON_MAX}" in str(exc.value)
    (row,) = audit(world, "refused:comment")[before:]
    assert row["actor"] == ME and row["subject"] == TEMP
    assert row["reason"] == long[:REASON_MAX]  # the audit trail keeps a bounded reason
    # REASON_MAX characters of four-byte UTF-8 still fit a request
    ok = request(world[2], {"action": "comment", "alarm": TEMP, "reason": "😀" * REASON_MAX})
    assert ok["ok"]


# -- type ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fields,words", [
    ({"reason": 42}, "reason must be text, not a number"),
    ({"reason": ["a"]}, "reason must be text, not a list"),
    ({"reason": "ok", "occurrence": "three"}, "occurrence must be a number, not text"),
    ({"reason": "ok", "occurrence": True}, "occurrence must be a number, not true/false"),
    ({"reason": "ok", "alarm": {"id": 1}}, "alarm must be text, not an object"),
])
def test_mistyped_field_is_refused_and_audited(world, server, fields, words):
    req = {"action": "ack", "alarm": TEMP, **fields}
    before = len(audit(world, "refused:ack"))
    reply = raw(world[2] + ".sock", json.dumps(req).encode() + b"\n")
    assert reply["ok"] is False and words in reply["message"], reply
    rows = audit(world, "refused:ack")[before:]
    assert [(r["actor"], r["details"]["refusal"]) for r in rows] == [(ME, reply["message"])]
    assert loop_state(world) is State.UNACK  # nothing was acknowledged


def loop_state(world):
    loop, desk, _db = world
    return loop.call(lambda: desk.state(TEMP).state)


def test_mistyped_hazmat_quantity_is_refused_before_the_ledger(world, server):
    before = len(audit(world, "refused:hazmat_issue"))
    reply = raw(world[2] + ".sock", json.dumps({
        "action": "hazmat", "movement": "issue", "container": "CYL-1", "quantity": [2.5],
        "unit": "L", "reason": "etch"}).encode() + b"\n")
    assert reply["ok"] is False and "quantity must be a number, not a list" in reply["message"]
    (row,) = audit(world, "refused:hazmat_issue")[before:]
    assert row["subject"] == "CYL-1" and row["reason"] == "etch"


@pytest.mark.parametrize("line,words", [
    (b"[1, 2]\n", "must be a JSON object, not list"),
    (b"{\"action\": \n", "not JSON"),
    (b"\xff\xfe{}\n", "not UTF-8"),
    (b"{\"action\": \"invalid_request\", \"refusal\": \"forged\"}\n", "is reserved"),
])
def test_unreadable_request_is_refused_and_audited(world, server, line, words):
    before = len(audit(world, "refused:request"))
    reply = raw(world[2] + ".sock", line)
    assert reply["ok"] is False and words in reply["message"] and reply["operator"] == ME
    rows = audit(world, "refused:request")[before:]
    assert [r["details"]["refusal"] for r in rows] == [reply["message"]]


# -- time ---------------------------------------------------------------------------------
def test_idle_connection_is_closed(world, server):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(DEADLINE_S)
        s.connect(world[2] + ".sock")
        s.sendall(b'{"action": "ping"')  # half a request, then nothing
        reply = s.recv(65536)
        assert b"no request within 1 s" in reply
        assert s.recv(65536) == b""  # closed
    assert wait_for(lambda: world[0].call(lambda: server.open_connections) == 0)


def test_handler_failure_is_one_line_and_the_socket_survives(tmp_path):
    async def broken(login, req):
        raise KeyError("boom")

    loop = LoopThread("broken-handler")
    srv = ActionServer(str(tmp_path / "x.sock"), broken)
    try:
        loop.run(srv.start())
        for _ in range(3):
            reply = raw(str(tmp_path / "x.sock"), b'{"action": "ping"}\n')
            assert reply["ok"] is False and "internal error: KeyError" in reply["message"]
    finally:
        loop.run(srv.close())
        loop.stop()


def test_a_database_in_a_deep_folder_still_gets_its_action_socket(tmp_path):
    """A socket path longer than sun_path's 107 bytes (a deep data folder, a CI temp dir) is
    bound and reached through a descriptor of its folder; the socket file is where it
    belongs, with its mode, and `request` reaches it like any other."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    db = str(deep / "facility.db")
    assert len(os.fsencode(socket_path(db))) > SUN_PATH_MAX

    async def ping(login, req):
        return {"ok": True, "message": f"pong {login}"}

    loop = LoopThread("deep-socket")
    srv = ActionServer(socket_path(db), ping)
    try:
        loop.run(srv.start())
        assert os.path.exists(socket_path(db))
        assert os.stat(socket_path(db)).st_mode & 0o777 == 0o660
        reply = request(db, {"action": "ping"})
        assert reply["ok"] and reply["message"] == f"pong {current_login()}"
    finally:
        loop.run(srv.close())
        loop.stop()
    assert not os.path.exists(socket_path(db))


# -- logging ------------------------------------------------------------------------------
def test_log_throttle_once_per_peer_per_minute(caplog):
    now = [0.0]
    throttle = LogThrottle(logging.getLogger("test.throttle"), 60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        assert throttle.warning(1000, "bad from %s", 1000)
        for _ in range(500):
            assert not throttle.warning(1000, "bad from %s", 1000)
        assert throttle.warning(1001, "bad from %s", 1001)  # another peer has its own minute
        now[0] = 61.0
        assert throttle.warning(1000, "bad from %s", 1000)
        throttle.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["bad from 1000", "bad from 1001",
                     "action socket: 500 more messages about 1000 left out in the last 60 s",
                     "bad from 1000"]


def test_caps_must_leave_room_for_other_peers(tmp_path):
    with pytest.raises(ValueError, match="one peer fills them all"):
        ActionServer(str(tmp_path / "x.sock"), None, max_per_uid=64, max_connections=64)


# -- flood --------------------------------------------------------------------------------
def _enough_descriptors(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below the {want} the flood needs")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _flood(path: str, uid: int | None) -> tuple[int, int, int]:
    """Fork a child that (as ``uid``, when given) opens FLOOD connections and holds them,
    round after round, until told to stop. Returns (pid, ready fd, stop fd)."""
    ready_r, ready_w = os.pipe()
    stop_r, stop_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only sockets and pipes, then _exit
        code = 1
        try:
            keep = {ready_w, stop_r, 0, 1, 2}
            for fd in [int(f) for f in os.listdir("/proc/self/fd")]:
                if fd not in keep:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            if uid is not None:
                os.setgroups([])
                os.setgid(pwd.getpwuid(uid).pw_gid)
                os.setuid(uid)
            reported = False
            while True:
                held = []
                for _ in range(FLOOD):
                    try:
                        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    except OSError:  # out of descriptors on a crowded machine: this round ends
                        break
                    s.setblocking(False)
                    while True:  # a full listen backlog answers EAGAIN: knock again
                        try:
                            s.connect(path)
                            break
                        except BlockingIOError:
                            select.select([], [], [], 0.001)
                        except OSError:
                            s.close()
                            s = None
                            break
                    if s is not None:
                        held.append(s)
                if not reported:  # the first complete round only: the pipe never fills
                    os.write(ready_w, b"%d\n" % len(held))
                    reported = True
                for s in held:
                    s.close()
                if select.select([stop_r], [], [], 0)[0]:
                    code = 0
                    break
        except BaseException as exc:  # said on stderr, so a flood that ends early says why
            os.write(2, f"flood child ended: {exc!r}\n".encode())
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(stop_r)
    return pid, ready_r, stop_w


def _first_round(ready_r: int) -> int:
    """Connections the child held at once in its first complete round."""
    readable, _, _ = select.select([ready_r], [], [], DEADLINE_S)
    assert readable, "the flood never completed a round"
    return int(os.read(ready_r, 64).split(b"\n")[0])


def _stop(pid: int, ready_r: int, stop_w: int) -> int:
    try:
        os.write(stop_w, b"x")
    except BrokenPipeError:  # the flood already ended (its reason is on stderr): reap it
        os.waitpid(pid, 0)
        os.close(ready_r)
        os.close(stop_w)
        return 0
    done = wait_for(lambda: os.waitpid(pid, os.WNOHANG)[0] == pid)
    if not done:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(ready_r)
    os.close(stop_w)
    return 0 if done else 1


def _socket_records(caplog):
    return [r for r in caplog.records if r.name == "facility.service.socket"]


def test_a_flood_from_one_uid_is_capped(world, server, caplog):
    """Same uid as the test: the per-uid cap holds, and the overall cap is never reached, so
    any other login would still be served."""
    _enough_descriptors(FLOOD)
    loop = world[0]
    with caplog.at_level(logging.WARNING, logger="facility.service.socket"):
        pid, ready_r, stop_w = _flood(server.path, None)
        try:
            assert _first_round(ready_r) > FLOOD // 2
            opened = loop.call(lambda: dict(server.open_by_uid))
            assert opened.get(os.getuid(), 0) <= PER_UID
            assert loop.call(lambda: server.peak_open) <= PER_UID < TOTAL
            assert loop.call(lambda: server.turned_away) >= FLOOD - PER_UID
        finally:
            assert _stop(pid, ready_r, stop_w) == 0
    assert len(_socket_records(caplog)) <= 3  # not one line per connection turned away
    # once the flood ends, the same login is served again
    assert wait_for(lambda: loop.call(lambda: server.open_connections) == 0)
    assert request(world[2], {"action": "ping"})["ok"]


@pytest.mark.skipif(os.geteuid() != 0, reason="flooding from another uid needs root to"
                    " setuid() a child to nobody; test_a_flood_from_one_uid_is_capped covers"
                    " the caps from this uid")
def test_ack_succeeds_during_a_flood_from_another_uid(world, server, caplog):
    _enough_descriptors(FLOOD)
    nobody = pwd.getpwnam("nobody").pw_uid
    loop = world[0]
    assert loop_state(world) is State.UNACK
    with caplog.at_level(logging.WARNING, logger="facility.service.socket"):
        pid, ready_r, stop_w = _flood(server.path, nobody)
        try:
            assert _first_round(ready_r) > FLOOD // 2  # a 1 000-connection round ran ...
            reply = request(world[2], {"action": "ack", "alarm": TEMP,
                                       "occurrence": occurrence(world),
                                       "reason": "acknowledged during a flood"})
            assert os.waitpid(pid, os.WNOHANG) == (0, 0)  # ... and the flood is still on
            assert reply["ok"] and reply["state"] == "ACKED", reply
            assert loop_state(world) is State.ACKED
            assert loop.call(lambda: server.open_by_uid.get(nobody, 0)) <= PER_UID
            assert loop.call(lambda: server.turned_away) >= FLOOD - PER_UID
            assert loop.call(lambda: server.peak_open) <= PER_UID + 1
        finally:
            assert _stop(pid, ready_r, stop_w) == 0
    assert 1 <= len(_socket_records(caplog)) <= 3
    (row,) = [r for r in audit(world, "ack") if r["reason"] == "acknowledged during a flood"]
    assert row["actor"] == ME
