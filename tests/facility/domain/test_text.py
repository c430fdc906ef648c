"""Operator text is data: terminal cleaning, CSV-cell neutralising and its exact inverse."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from facility.domain.text import (
    FORMULA_PREFIXES,
    REASON_MAX,
    clean_terminal,
    neutralise_cell,
    restore_cell,
)


@pytest.mark.parametrize("raw,clean", [
    ("filter change", "filter change"),
    ("Düsenwechsel 洁净室 ✓", "Düsenwechsel 洁净室 ✓"),
    ("\x1b[31mred\x1b[0m", "red"),
    ("\x1b[2J\x1b[Hwiped", "wiped"),                        # clear screen, cursor home
    ("\x1b[38;5;196mX\x1b[m", "X"),                          # 256-colour SGR
    ("a\x1b]0;pwned title\x07b", "ab"),                      # OSC window title, BEL-terminated
    ("a\x1b]8;;http://evil/\x1b\\link\x1b]8;;\x1b\\b", "alinkb"),  # OSC 8 hyperlink, ST
    ("a\x1b]0;never terminated", "a"),                       # unterminated control string
    ("a\x1bPqdcs\x1b\\b", "ab"),                             # DCS
    ("a\x9b31mb", "ab"),                                     # C1 CSI
    ("a\x9d0;t\x9cb", "ab"),                                 # C1 OSC ... C1 ST
    ("a\x1bcb", "ab"),                                       # RIS (full reset)
    ("a\x1b(Bb", "ab"),                                      # charset designation
    ("line one\nline two", "line one line two"),
    ("a\r\n\r\nb", "a b"),                                   # a run of breaks: one space
    ("a\tb", "a b"),
    ("a\u2028b\x85c", "a b c"),
    ("bell\x07 nul\x00 del\x7f bs\x08", "bell nul del bs"),
    ("abc\u202edcba", "abcdcba"),                            # bidi override dropped
    ("\x1b", ""),
    ("", ""),
])
def test_clean_terminal(raw, clean):
    assert clean_terminal(raw) == clean


@given(st.text())
def test_clean_terminal_leaves_no_control_character(s):
    out = clean_terminal(s)
    assert not any(unicodedata.category(c) == "Cc" for c in out)
    assert "\x1b" not in out
    assert clean_terminal(out) == out  # idempotent


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_clean_terminal_keeps_printable_ascii(s):
    assert clean_terminal(s) == s


@pytest.mark.parametrize("raw,cell", [
    ("=HYPERLINK(\"http://evil\",\"x\")", "'=HYPERLINK(\"http://evil\",\"x\")"),
    ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
    ("+1+1", "'+1+1"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\tTAB", "'\tTAB"),
    ("\rCR", "'\rCR"),
    ("'quoted", "''quoted"),
    ("filter change", "filter change"),
    ("a=b", "a=b"),
    ("", ""),
])
def test_neutralise_cell(raw, cell):
    assert neutralise_cell(raw) == cell
    assert restore_cell(cell) == raw


def test_formula_prefixes_are_owasps():
    assert set(FORMULA_PREFIXES) == {"=", "+", "-", "@", "\t", "\r"}


@given(st.text())
def test_restore_inverts_neutralise(s):
    assert restore_cell(neutralise_cell(s)) == s


@given(st.text())
def test_neutralised_cell_never_starts_a_formula(s):
    assert not neutralise_cell(s).startswith(FORMULA_PREFIXES)


@given(st.text(alphabet=st.sampled_from("=+-@\t\r'ab")), st.text(alphabet=st.sampled_from("=+-@\t\r'ab")))
def test_neutralise_is_injective(a, b):
    # Distinct texts stay distinct cells, so a digest over the cell names one text.
    if a != b:
        assert neutralise_cell(a) != neutralise_cell(b)
    assert restore_cell(neutralise_cell(neutralise_cell(a))) == neutralise_cell(a)


def test_reason_max():
    assert REASON_MAX == 2000
