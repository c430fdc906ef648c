"""Operator actions over a Unix socket beside the database, identified by the OS login.

The service is the only writer; technicians act through this socket. The operator's
identity is the connecting process's login, taken from the kernel's peer credentials
(SO_PEERCRED), never from the request itself. One JSON object per line each way:

    request:  {"action": "ack", "alarm": "MEC-PC-01.pc_0_5um:action_high",
               "occurrence": 3, "reason": "door left open during transfer"}
    response: {"ok": true, "message": "...", "operator": "technician"}

A dangerous-goods movement is an action too, so the service stays the one writer of the
ledger while it runs (``hazmat.commands.MOVEMENTS`` names each movement's fields):

    request:  {"action": "hazmat", "movement": "issue", "container": "CYL-1",
               "quantity": 2.5, "unit": "L_wc", "reason": "etch line 3"}
    response: {"ok": true, "message": "issue #7: ...", "lines": ["issue #7: ...", ...]}

This records attributable actions; it is not a Part 11 11.200 electronic signature.

The socket is 0660, owned by ``[storage] group`` (docs/ARCHITECTURE.md "Service account and
readers"), so only the service account and that group's members reach it; it is still built
to survive them (docs/ARCHITECTURE.md "The action socket under abuse"): a request is at most
:data:`MAX_REQUEST_BYTES` of UTF-8 JSON and must arrive whole within ``idle_timeout_s``;
a peer uid may hold :data:`MAX_PER_UID` connections and all peers together
:data:`MAX_CONNECTIONS`, so one user's flood leaves room for everyone else and never
exhausts the service's file descriptors; a request refused here (too large, not JSON, not an
object) still reaches the handler as an :data:`INVALID_REQUEST` action, so the refusal is
answered in one line and audited under the peer's login; and what the socket logs about a
peer is logged once per peer per minute, with a count of what was left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
import socket
import struct
import time
from collections.abc import Awaitable, Callable

from facility.domain.errors import RuntimeFailure, UsageError
from facility.domain.text import REASON_MAX
from facility.store.filemodes import SOCKET_MODE, restrict

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 16 * 1024
"""Largest request line, in bytes of UTF-8 JSON. An action's longest field is its reason, at
most ``facility.domain.text.REASON_MAX`` (2 000) characters, 8 000 bytes even if every one
takes four; the rest of a request is identifiers."""

MAX_PER_UID = 8
"""Connections one peer uid may hold at once; more are answered "busy" and closed. A person
runs one command at a time; the TUI holds none between actions."""

MAX_CONNECTIONS = 64
"""Connections all peers together may hold; each is a file descriptor of the service."""

IDLE_TIMEOUT_S = 5.0
"""A connection must deliver its whole request line within this long, or it is closed; the
command line sends its request the moment it connects."""

BACKLOG = 512
"""Connections the kernel queues for the service to accept (asyncio's default is 100)."""

CONNECT_RETRY_S = 0.005
"""How soon a client knocks again when the listen backlog is full."""

LOG_EVERY_S = 60.0
"""What the socket logs about one peer, it logs at most once in this period."""

INVALID_REQUEST = "invalid_request"
"""The action the handler receives for a request refused before it could be read (too large,
not UTF-8 JSON, not an object); its ``refusal`` says why, so the handler can audit it."""


class ServiceNotRunning(RuntimeFailure):
    """No service answers on the socket (exit 3)."""


class ServiceNotListening(ServiceNotRunning):
    """Nothing listens on the socket at all: no service owns the database right now.

    Unlike a service that does not answer in time (which may still act on the request),
    this one certainly did not receive it, so a caller may do the work itself.
    """


class ActionRefused(UsageError):
    """The service refused the action (exit 2); the refusal is audited by the service."""


SUN_PATH_MAX = 107
"""Longest socket path the kernel binds or connects: ``sun_path`` holds 108 bytes with the
terminating NUL (Linux unix(7)). A database in a deep folder has a longer one."""


@contextlib.contextmanager
def reachable(path: str):
    """A name for the socket file at ``path`` that fits in ``sun_path``: the path itself, or,
    when it is longer, the same file through a descriptor of its folder
    (``/proc/self/fd/N/<name>``, Linux), held open while the name is used. The socket file
    itself stays at ``path`` (its mode and group are set there)."""
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        yield path
        return
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        short = f"/proc/self/fd/{fd}/{os.path.basename(path)}"
        if len(os.fsencode(short)) > SUN_PATH_MAX or not os.path.isdir(f"/proc/self/fd/{fd}"):
            raise OSError(f"socket path {path} is {len(os.fsencode(path))} bytes, over the"
                          f" {SUN_PATH_MAX} a Unix socket allows; keep the database in a"
                          " shorter path")
        yield short
    finally:
        os.close(fd)


def socket_path(db_path: str) -> str:
    """The action socket of the service owning ``db_path``."""
    return db_path + ".sock"


def peer_credentials(sock: socket.socket) -> tuple[int, int]:
    """(uid, pid) of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    return uid, pid


def login_of(uid: int) -> str:
    """The OS login of ``uid`` (``uid:N`` when it has none)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def peer_login(sock: socket.socket) -> tuple[str, int, int]:
    """(login, uid, pid) of the process at the other end of a Unix socket (SO_PEERCRED)."""
    uid, pid = peer_credentials(sock)
    return login_of(uid), uid, pid


def current_login() -> str:
    """The OS login of this process, as the service will see it."""
    return login_of(os.getuid())


class LogThrottle:
    """Log a peer's trouble once per period; count the rest and say how many were left out.

    A flood of bad connections must not become a flood of log lines (nor fill the disk the
    database lives on). The count of what was held back is logged when that peer's period
    is over, at the next message from anyone, or at :meth:`flush`.
    """

    def __init__(self, logger: logging.Logger, period_s: float = LOG_EVERY_S,
                 clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.period_s = period_s
        self.clock = clock
        self._open: dict[object, list] = {}  # peer -> [period start, messages held back]

    def warning(self, peer: object, message: str, *args) -> bool:
        """Log ``message`` for ``peer`` unless it had one this period; True when logged."""
        now = self.clock()
        self._sweep(now)
        held = self._open.get(peer)
        if held is not None:
            held[1] += 1
            return False
        self._open[peer] = [now, 0]
        self.logger.warning(message, *args)
        return True

    def _sweep(self, now: float) -> None:
        for peer, (since, n) in list(self._open.items()):
            if now - since >= self.period_s:
                del self._open[peer]
                self._say_held(peer, n)

    def _say_held(self, peer: object, n: int) -> None:
        if n:
            self.logger.warning("action socket: %d more messages about %s left out in the last"
                                " %g s", n, peer, self.period_s)

    def flush(self) -> None:
        """Log every count still held back (at shutdown)."""
        for peer, (_since, n) in list(self._open.items()):
            self._say_held(peer, n)
        self._open.clear()


Handler = Callable[[str, dict], Awaitable[dict]]


class BadRequest(ValueError):
    """A request line that is not one JSON object of UTF-8 within the size limit."""


class ActionServer:
    """Accepts one JSON request per connection and answers with the handler's reply.

    ``max_request_bytes``, ``max_per_uid``, ``max_connections`` and ``idle_timeout_s``
    default to this module's constants; ``open_by_uid``, ``peak_open`` and ``turned_away``
    let a test watch the caps at work.
    """

    def __init__(self, path: str, handler: Handler, *,
                 max_request_bytes: int = MAX_REQUEST_BYTES, max_per_uid: int = MAX_PER_UID,
                 max_connections: int = MAX_CONNECTIONS, idle_timeout_s: float = IDLE_TIMEOUT_S,
                 log_every_s: float = LOG_EVERY_S, group: str | None = None):
        if max_per_uid >= max_connections:
            raise ValueError(f"max_per_uid={max_per_uid} must be below"
                             f" max_connections={max_connections}, or one peer fills them all")
        self.path = path
        self.group = group  # [storage] group: who may connect (None: the process's group)
        self.handler = handler
        self.max_request_bytes = max_request_bytes
        self.max_per_uid = max_per_uid
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.open_by_uid: dict[int, int] = {}
        self.peak_open = 0
        self.turned_away = 0
        self.throttle = LogThrottle(log, log_every_s)
        self._server: asyncio.AbstractServer | None = None

    @property
    def open_connections(self) -> int:
        """Connections being served now."""
        return sum(self.open_by_uid.values())

    async def start(self) -> None:
        """Bind the socket (replacing a stale one) 0660, owned by ``self.group``.

        Reaching it needs the service account or the readers' group; authorisation is
        then by login through [[operators]]; unknown logins are refused and audited.
        """
        if os.path.exists(self.path):
            os.unlink(self.path)
        with reachable(self.path) as name:
            self._server = await asyncio.start_unix_server(self._serve, path=name,
                                                           backlog=BACKLOG)
        restrict(self.path, SOCKET_MODE, self.group)

    async def close(self) -> None:
        """Stop accepting and remove the socket file."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.throttle.flush()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            uid, _pid = peer_credentials(writer.get_extra_info("socket"))
        except OSError:
            writer.close()
            return
        busy = self._busy(uid)
        if busy:
            self.turned_away += 1
            self.throttle.warning(uid, "action socket: %s (uid %d)", busy, uid)
            writer.write(_line({"ok": False, "message": busy}))
            writer.close()
            return
        self.open_by_uid[uid] = self.open_by_uid.get(uid, 0) + 1
        self.peak_open = max(self.peak_open, self.open_connections)
        try:
            await self._answer(uid, reader, writer)
        except (ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            n = self.open_by_uid.pop(uid) - 1
            if n:
                self.open_by_uid[uid] = n
            writer.close()

    def _busy(self, uid: int) -> str | None:
        """Why a new connection from ``uid`` is turned away now, if it is."""
        if self.open_by_uid.get(uid, 0) >= self.max_per_uid:
            return (f"busy: {self.max_per_uid} connections from your login are open already"
                    " (max per login); try again when they finish")
        if self.open_connections >= self.max_connections:
            return (f"busy: {self.max_connections} connections are open (the service's limit);"
                    " try again shortly")
        return None

    async def _answer(self, uid: int, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        try:
            raw = await self._read_line(reader)
        except asyncio.TimeoutError:
            self.throttle.warning(uid, "action socket: uid %d sent no request within %g s",
                                  uid, self.idle_timeout_s)
            writer.write(_line({"ok": False, "message": f"no request within"
                                f" {self.idle_timeout_s:g} s; connection closed"}))
            await writer.drain()
            return
        login = login_of(uid)
        try:
            request = self._parse(raw)
        except BadRequest as exc:
            self.throttle.warning(uid, "action socket: bad request from %s: %s", login, exc)
            request = {"action": INVALID_REQUEST, "refusal": f"bad request: {exc}"}
        try:
            reply = await self.handler(login, request)
        except Exception as exc:  # one bad request must not cost the service its socket
            if self.throttle.warning(uid, "action socket: request from %s failed: %s",
                                     login, exc):
                log.debug("action socket: traceback", exc_info=True)
            reply = {"ok": False, "message": f"internal error: {type(exc).__name__};"
                     " see the service log"}
        reply.setdefault("operator", login)
        writer.write(_line(reply))
        await writer.drain()

    async def _read_line(self, reader: asyncio.StreamReader) -> bytes:
        """The request line: up to the first newline, end of input, or one byte past the
        size limit, whichever comes first, all within ``idle_timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.idle_timeout_s
        buf = bytearray()
        while len(buf) <= self.max_request_bytes:
            end = buf.find(b"\n")
            if end >= 0:
                return bytes(buf[:end])
            left = deadline - loop.time()
            if left <= 0:
                raise asyncio.TimeoutError
            chunk = await asyncio.wait_for(reader.read(self.max_request_bytes + 1 - len(buf)),
                                           left)
            if not chunk:
                break
            buf += chunk
        return bytes(buf)

    def _parse(self, raw: bytes) -> dict:
        if len(raw) > self.max_request_bytes:
            raise BadRequest(f"request is larger than {self.max_request_bytes} bytes (a reason"
                             f" may have at most {REASON_MAX} characters)")
        try:
            request = json.loads(raw.decode("utf-8") or "{}")
        except UnicodeDecodeError:
            raise BadRequest("request is not UTF-8 text") from None
        except ValueError as exc:
            raise BadRequest(f"request is not JSON ({exc})") from None
        if not isinstance(request, dict):
            raise BadRequest(f"request must be a JSON object, not {type(request).__name__}")
        if request.get("action") == INVALID_REQUEST:
            raise BadRequest(f"action {INVALID_REQUEST!r} is reserved")
        return request


def _line(reply: dict) -> bytes:
    return json.dumps(reply).encode() + b"\n"


def recv_line(sock: socket.socket) -> bytes:
    """What the other end sends up to and including its first newline, or until it closes."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def request(db_path: str, payload: dict, timeout_s: float = 10.0) -> dict:
    """Send one action to the service; raises ServiceNotRunning or ActionRefused."""
    path = socket_path(db_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with reachable(path) as name:
                sock.connect(name)
            break
        except (FileNotFoundError, NotADirectoryError, ConnectionRefusedError):
            sock.close()
            raise ServiceNotListening(f"service not running: no answer on {path}; start it"
                                      " with `facility run`") from None
        except BlockingIOError:  # the listen backlog is full (someone floods it): knock again
            if time.monotonic() >= deadline:
                sock.close()
                raise ServiceNotRunning(f"service too busy to accept within {timeout_s:g} s on"
                                        f" {path}") from None
            time.sleep(CONNECT_RETRY_S)
    try:
        try:
            sock.sendall(json.dumps(payload, ensure_ascii=False).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the service stopped reading (a request over its limit): read why
        data = recv_line(sock)
    except socket.timeout:
        raise ServiceNotRunning(f"service did not answer within {timeout_s:g} s on {path}") from None
    except ConnectionResetError:
        raise ServiceNotRunning(f"service closed the connection without an answer on {path}") from None
    finally:
        sock.close()
    try:
        reply = json.loads(data or b"{}")
    except ValueError:
        raise ServiceNotRunning(f"service sent an unreadable reply on {path}") from None
    if not isinstance(reply, dict) or not reply:
        raise ServiceNotRunning(f"service closed the connection without an answer on {path}")
    if not reply.get("ok"):
        raise ActionRefused(reply.get("message") or "refused")
    return reply
