"""The one vocabulary: each word list defined once, and everything that lists one uses it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from facility.domain import vocab
from facility.domain.errors import UsageError
from facility.domain.vocab import (
    ALARM_KINDS,
    LIMIT_NAMES,
    PRIORITIES,
    ROLES,
    ZONE_MODES,
    DurationError,
    has_role,
    parse_duration,
    priority_rank,
)

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("facility", "sensors", "alarms", "hazmat", "tui")


@pytest.mark.parametrize("text,seconds", [
    ("90", 90.0), ("90s", 90.0), ("2.5", 2.5), ("30m", 1800.0), ("2h", 7200.0), ("1d", 86400.0),
    ("1h30m", 5400.0), ("1h 30m", 5400.0), (" 2H ", 7200.0), ("1.5h", 5400.0),
    ("1d2h3m4s", 93784.0),
])
def test_durations_that_read(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text,words", [
    ("", "a duration is required"), ("   ", "a duration is required"),
    ("soon", "'soon' is not readable"), ("1h30", "is not readable"), ("h", "is not readable"),
    ("1.2.3s", "is not readable"), ("-5m", "is not readable"), ("10x", "is not readable"),
    ("0", "must be more than 0"), ("0m0s", "must be more than 0"),
])
def test_durations_that_do_not_read_say_how(text, words):
    with pytest.raises(DurationError) as exc:
        parse_duration(text)
    assert words in str(exc.value)
    assert isinstance(exc.value, UsageError) and isinstance(exc.value, ValueError)  # exit 2


def test_priorities_in_order_and_unknown_last():
    assert PRIORITIES == ("critical", "high", "medium", "low")
    assert [priority_rank(p) for p in PRIORITIES] == [0, 1, 2, 3]
    assert priority_rank(None) == priority_rank("urgent") == len(PRIORITIES)
    assert sorted(["low", "bogus", "critical", "medium"], key=priority_rank) == [
        "critical", "medium", "low", "bogus"]


def test_roles_are_explicit_sets_and_admin_implies_none_of_the_others():
    assert has_role(["hazmat"], "hazmat") and has_role(("admin",), "admin")
    assert not has_role(("technician",), "engineer") and not has_role((), "viewer")
    for role in ROLES:
        assert has_role((role,), role)
        if role != vocab.ADMIN:
            assert not has_role((vocab.ADMIN,), role), role
    assert not has_role(("admin", "technician", "engineer", "hazmat"), "shelve_critical")
    assert vocab.ADMIN in ROLES


def test_the_kinds_include_every_limit_and_what_the_shipped_catalogue_raises():
    from facility.catalogue import build_catalogue
    from facility.config import load_config

    assert set(LIMIT_NAMES) <= set(ALARM_KINDS) and len(set(ALARM_KINDS)) == len(ALARM_KINDS)
    cat = build_catalogue(load_config(str(ROOT / "config.toml")))
    raised = {r.alarm_id.rsplit(":", 1)[1].split("@")[0] for r in cat.rules}
    assert raised <= set(ALARM_KINDS), raised - set(ALARM_KINDS)


def test_everything_that_lists_a_word_list_imports_it():
    import alarms.flood
    import alarms.lifecycle  # noqa: F401 - its role check is has_role
    import alarms.rules
    import facility.config.checks as checks
    import facility.domain.model as model
    import tui.fmt
    import tui.screens.action_modal

    assert alarms.rules.MODES is ZONE_MODES and checks.MODES is ZONE_MODES
    assert tui.screens.action_modal.MODES is ZONE_MODES
    assert checks.ROLES is ROLES and model.LIMIT_NAMES is LIMIT_NAMES
    assert checks.ISA_PRIORITIES == PRIORITIES[::-1]
    assert alarms.flood.PRIORITIES is PRIORITIES and tui.fmt.PRIORITIES is PRIORITIES
    assert tui.fmt.parse_duration is parse_duration and tui.fmt.priority_rank is priority_rank


def test_no_module_spells_a_word_list_out_again():
    """A literal copy of a list (or a second duration grammar) is how two vocabularies start."""
    lists = {
        "zone modes": re.compile(r"[(\[]\s*\"at_rest\",\s*\"in_operation\"\s*[)\]]"),
        "priorities": re.compile(r"\"critical\",\s*\"high\",\s*\"medium\",\s*\"low\""),
        "priorities, reversed": re.compile(r"\"low\",\s*\"medium\",\s*\"high\",\s*\"critical\""),
        "roles": re.compile(r"\"technician\",\s*\"engineer\",\s*\"shelve_critical\""),
        "limit names": re.compile(r"\"action_high\",\s*\"alert_high\",\s*\"alert_low\","
                                  r"\s*\"action_low\""),
        "a duration grammar": re.compile(r"^\s*def parse_duration\(", re.M),
    }
    found = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if path == ROOT / "facility" / "domain" / "vocab.py":
                continue
            text = path.read_text(encoding="utf-8")
            found += [f"{path.relative_to(ROOT)}: {what}" for what, rx in lists.items()
                      if rx.search(text)]
    assert found == [], "import these from facility.domain.vocab:\n" + "\n".join(found)


def test_shelve_for_uses_the_one_grammar(config_file):
    from facility.cli import cli

    path = config_file()
    r = CliRunner().invoke(cli, ["shelve", "X:action_high", "--for", "1h30", "--reason", "r",
                                 "--config", str(path)])
    assert r.exit_code == 2, r.output
    assert r.output.strip() == ("--for: duration '1h30' is not readable; use a number with s, "
                                "m, h or d, e.g. 90s, 30m, 2h or 1h30m")
