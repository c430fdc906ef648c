"""Library exceptions to one line and an exit code (docs/ARCHITECTURE.md "The command line").

This is the only place where a failure becomes an exit code: the floors below raise the
categories of ``facility.domain.errors`` and know nothing of the command line.
"""

from __future__ import annotations

from facility.domain.errors import CheckFailed, FacilityError, RuntimeFailure, UsageError

CHECK_FAILED = 1  # verify, audit verify, hazmat check found a problem
USAGE = 2  # bad usage, bad configuration or a refused action
RUNTIME = 3  # database missing or locked, service not running, every device dead
INTERNAL = 70  # an uncaught exception: one line plus a hint to rerun with --debug


class CliError(Exception):
    """A user-facing failure: one or more lines for stderr and an exit code."""

    def __init__(self, lines: str | list[str], code: int = USAGE):
        self.lines = [lines] if isinstance(lines, str) else list(lines)
        super().__init__("; ".join(self.lines))
        self.code = code


class Exit(Exception):
    """Leave with an exit code after output was already printed."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


_CODES = ((UsageError, USAGE), (CheckFailed, CHECK_FAILED), (RuntimeFailure, RUNTIME))


def translate(exc: BaseException) -> CliError | None:
    """The one line(s) and exit code for a known library exception, else ``None``."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, FacilityError):
        lines = getattr(exc, "problems", None) or [str(exc)]
        code = next((c for cls, c in _CODES if isinstance(exc, cls)), USAGE)
        return CliError(lines, code)
    if isinstance(exc, PermissionError):
        return CliError(f"permission denied: {exc.filename or exc}", RUNTIME)
    if isinstance(exc, FileNotFoundError):
        return CliError(f"file not found: {exc.filename or exc}", RUNTIME)
    return None


def check_text_file(path: str, what: str = "a UTF-8 text file") -> None:
    """A file a command reads as text: one line naming it when it is missing, a folder, not
    readable or not UTF-8 (e.g. a binary given to ``backtest --samples``)."""
    import os

    if os.path.isdir(path):
        raise CliError(f"{path}: is a folder; give {what}", USAGE)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise CliError(f"{path}: file not found", USAGE) from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read: {exc.strerror or exc}", RUNTIME) from None
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise CliError(f"{path}: line {line}: is not text (byte 0x{raw[exc.start]:02x} is not"
                       f" UTF-8); give {what}", USAGE) from None
    if b"\x00" in raw:
        line = raw.count(b"\n", 0, raw.index(b"\x00")) + 1
        raise CliError(f"{path}: line {line}: is not text (a NUL byte); give {what}", USAGE)
