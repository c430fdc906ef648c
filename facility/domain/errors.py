"""The kinds of failure a user can act on, shared by every floor.

Library code raises these (or its own subclasses of them); only ``facility.cli`` turns
them into one line on stderr and an exit code (docs/ARCHITECTURE.md "The command line": 1 a check
found a problem, 2 bad usage / configuration / refused action, 3 a runtime failure).
Keeping the categories here, on the ground floor, lets the store, the service and the
hazmat ledger say *what kind* of failure they mean without knowing the CLI exists.
"""

from __future__ import annotations


class FacilityError(Exception):
    """A failure the user can act on; its message names the place, the problem and the fix."""


class UsageError(FacilityError):
    """Bad usage, bad configuration or an action refused by rule (exit code 2)."""


class CheckFailed(FacilityError):
    """A check ran and found a problem: verify, audit verify, hazmat check (exit code 1)."""


class RuntimeFailure(FacilityError):
    """The environment stops the work: database missing or locked, service not running (exit code 3)."""
