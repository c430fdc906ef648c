"""The ``facility`` command line: a thin translator from arguments to library calls.

``group`` holds the click group and the options every command shares; each command family
lives in its own module and attaches itself to the group when imported here; ``errors``
turns library exceptions into one line and an exit code.  Heavy modules (numba, textual,
pymodbus) are imported inside the commands that need them, so ``facility --help`` stays
fast and imports neither numba nor textual.
"""

from __future__ import annotations

import sys

from facility.cli import actions, campus, config, data, hazmat, keys, kpi, pages, service  # noqa: F401 - registers commands
from facility.cli.group import cli


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    try:
        return cli.main(args=argv, prog_name="facility", standalone_mode=True) or 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)


if __name__ == "__main__":
    sys.exit(main())
