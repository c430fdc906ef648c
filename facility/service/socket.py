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
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import socket
import struct
from collections.abc import Awaitable, Callable

from facility.domain.errors import RuntimeFailure, UsageError

MAX_REQUEST_BYTES = 64 * 1024


class ServiceNotRunning(RuntimeFailure):
    """No service answers on the socket (exit 3)."""


class ServiceNotListening(ServiceNotRunning):
    """Nothing listens on the socket at all: no service owns the database right now.

    Unlike a service that does not answer in time (which may still act on the request),
    this one certainly did not receive it, so a caller may do the work itself.
    """


class ActionRefused(UsageError):
    """The service refused the action (exit 2); the refusal is audited by the service."""


def socket_path(db_path: str) -> str:
    """The action socket of the service owning ``db_path``."""
    return db_path + ".sock"


def peer_login(sock: socket.socket) -> tuple[str, int, int]:
    """(login, uid, pid) of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    try:
        login = pwd.getpwuid(uid).pw_name
    except KeyError:
        login = f"uid:{uid}"
    return login, uid, pid


def current_login() -> str:
    """The OS login of this process, as the service will see it."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid:{os.getuid()}"


Handler = Callable[[str, dict], Awaitable[dict]]


class ActionServer:
    """Accepts one JSON request per connection and answers with the handler's reply."""

    def __init__(self, path: str, handler: Handler):
        self.path = path
        self.handler = handler
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Bind the socket (replacing a stale one) readable and writable by everyone.

        Authorisation is by login through [[operators]], so the socket itself is open;
        unknown logins are refused and audited.
        """
        if os.path.exists(self.path):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)
        os.chmod(self.path, 0o666)

    async def close(self) -> None:
        """Stop accepting and remove the socket file."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if os.path.exists(self.path):
            os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            login, _uid, _pid = peer_login(sock)
            line = await asyncio.wait_for(reader.readline(), timeout=10)
            try:
                request = json.loads(line[:MAX_REQUEST_BYTES] or b"{}")
                if not isinstance(request, dict):
                    raise ValueError("request must be a JSON object")
                reply = await self.handler(login, request)
            except ValueError as exc:
                reply = {"ok": False, "message": f"bad request: {exc}"}
            reply.setdefault("operator", login)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()


def request(db_path: str, payload: dict, timeout_s: float = 10.0) -> dict:
    """Send one action to the service; raises ServiceNotRunning or ActionRefused."""
    path = socket_path(db_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise ServiceNotListening(f"service not running: no answer on {path}; start it with"
                                " `facility run`") from None
    try:
        sock.sendall(json.dumps(payload).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        raise ServiceNotRunning(f"service did not answer within {timeout_s:g} s on {path}") from None
    finally:
        sock.close()
    try:
        reply = json.loads(data or b"{}")
    except ValueError:
        raise ServiceNotRunning(f"service sent an unreadable reply on {path}") from None
    if not reply.get("ok"):
        raise ActionRefused(reply.get("message") or "refused")
    return reply
