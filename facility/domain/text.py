"""Operator text is data: how free text leaves the system for a terminal or a spreadsheet.

Reasons, actor logins, display names and point names are typed by people (or by whoever can
reach the action socket) and then shown to other people. Three places would otherwise read
them as instructions instead of data (docs/ARCHITECTURE.md "Operator text is data"):

* a **terminal** obeys ANSI/OSC escape sequences and C0/C1 control characters (cursor moves,
  screen clears, window titles, hyperlinks) and breaks a one-line listing on a newline, see
  :func:`clean_terminal`;
* a **spreadsheet** evaluates a CSV cell that begins with ``= + - @``, a tab or a carriage
  return as a formula (``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0``), so text cells get the
  OWASP "CSV Injection" treatment, a leading single quote, see :func:`neutralise_cell`;
  :func:`restore_cell` is its exact inverse, so a verifier re-derives the digest of the
  original text from the written cell;
* a **reason** has a stated upper length, :data:`REASON_MAX`, so one request cannot fill the
  audit trail or the screen.

Plain functions over ``str``: no I/O and no imports beyond the standard library.
"""

from __future__ import annotations

import re

REASON_MAX = 2000
"""Most characters an operator reason may have; a longer one is refused and the refusal is
audited. Two thousand characters is a long paragraph, far more than any justification
EU GMP Annex 1 or 21 CFR Part 11 §11.10(e) asks for, and still fits a terminal screen."""

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters a spreadsheet treats as the start of a formula (OWASP "CSV Injection")."""

_ESCAPE = re.compile(
    r"""
      (?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?     # CSI: ESC [ params intermediates final
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])                  # OSC, DCS, SOS, PM, APC ...
      [^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?                    # ... up to BEL or ST (or the end)
    | \x1b[\x20-\x2f]*[\x30-\x7e]?                             # other escapes: ESC c, ESC ( B, ESC 7
    """,
    re.VERBOSE,
)
"""ANSI (ECMA-48) escape and control-string sequences, C1 forms included. An unterminated
control string runs to the end of the text, as a terminal would swallow it."""

_LINE_BREAKS = re.compile(r"[\t\n\v\f\r\x85\u2028\u2029]+")
"""Characters that break or move a line; a run of them becomes one space."""

_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""C0, DEL and C1 control characters, plus the bidirectional overrides and isolates that make
a terminal show text in an order other than the one stored ("Trojan Source")."""


def clean_terminal(s: str) -> str:
    """Return *s* safe to print as one line on a terminal.

    Escape sequences are dropped whole (``"\\x1b[31mred\\x1b[0m"`` reads ``"red"``), a run of
    newlines, tabs and other line breaks becomes a single space, and every remaining control
    character is dropped. Printable text, including non-ASCII letters, is left unchanged.
    """
    if s.isprintable():
        return s
    s = _ESCAPE.sub("", s)
    s = _LINE_BREAKS.sub(" ", s)
    return _CONTROLS.sub("", s)


def neutralise_cell(s: str) -> str:
    """Return the CSV *text* cell *s* so that a spreadsheet shows it and never evaluates it.

    OWASP "CSV Injection": a cell that begins with ``= + - @``, a tab or a carriage return gets
    one leading single quote. A cell that already begins with a single quote gets one more, so
    :func:`restore_cell` can tell the two apart. Never apply this to numeric cells: ``-12.5``
    must stay a number.
    """
    if s.startswith(FORMULA_PREFIXES) or s.startswith("'"):
        return "'" + s
    return s


def restore_cell(s: str) -> str:
    """Return the text that :func:`neutralise_cell` turned into the written cell *s*.

    The exact inverse: ``restore_cell(neutralise_cell(x)) == x`` for every string ``x``, so a
    verifier recomputes a row's digest from the original text.
    """
    if s.startswith("'"):
        return s[1:]
    return s
