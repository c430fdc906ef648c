"""Errors that reach the user as one line and an exit code (DESIGN.md "The command line")."""

from __future__ import annotations

USAGE = 2  # bad usage, bad configuration or a refused action
CHECK_FAILED = 1  # verify, audit verify, hazmat check found a problem
RUNTIME = 3  # database missing or locked, service not running, every device dead
INTERNAL = 70


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


def translate(exc: BaseException) -> CliError | None:
    """Map known library exceptions (by class name, to keep the ground free of imports)."""
    names = {c.__name__ for c in type(exc).__mro__}
    if names & {"ConfigError"}:
        return CliError(getattr(exc, "problems", [str(exc)]), USAGE)
    if names & {"StoreLocked", "StoreMissing", "StoreError", "ServiceNotRunning"}:
        return CliError(str(exc), RUNTIME)
    if names & {"Refused", "HazmatError", "ActionRefused", "UsageError", "ServiceLocked"}:
        return CliError(str(exc), USAGE)
    if isinstance(exc, PermissionError):
        return CliError(f"permission denied: {exc.filename or exc}", RUNTIME)
    if isinstance(exc, FileNotFoundError):
        return CliError(f"file not found: {exc.filename or exc}", RUNTIME)
    return None
