"""docs/ARCHITECTURE.md's import floors, checked two ways: import-linter and a subprocess per module."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("facility", "sensors", "alarms", "hazmat", "tui")


def _modules():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            yield ".".join(p for p in rel.parts if p != "__init__"), path


def test_every_contract_says_why_and_nothing_is_ignored():
    """The floors live in pyproject.toml as import-linter contracts, each with its reason."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "ignore_imports" not in text
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "[[tool.importlinter.contracts]]"]
    assert len(starts) >= 6
    for i in starts:
        assert lines[i - 1].startswith("#"), f"contract at pyproject.toml:{i + 1} has no comment saying why"
    cfg = tomllib.loads(text)["tool"]["importlinter"]["contracts"]
    layers = next(c for c in cfg if c["type"] == "layers")["layers"]
    assert layers[0] == "facility.cli" and layers[-1] == "facility.domain"
    assert {c["type"] for c in cfg} >= {"layers", "acyclic_siblings", "protected", "forbidden"}


def test_only_the_allowed_modules_import_textual_pymodbus_and_define_njit():
    for module, path in _modules():
        text = path.read_text(encoding="utf-8")
        if "import textual" in text or "from textual" in text:
            assert module.startswith("tui"), module
        if "pymodbus.client" in text or "AsyncModbusTcpClient" in text:
            assert module == "sensors.modbus", module
        if "@njit" in text or "@numba.njit" in text:
            assert module == "alarms.kernels", module


def test_import_linter_contract():
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.fail("lint-imports is not installed in this environment; run make test")
    run = subprocess.run([str(exe)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr


def test_help_imports_neither_numba_nor_textual():
    code = ("import sys, json\nfrom facility.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0]"
            " in ('numba', 'textual', 'pymodbus'))))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    assert loaded == [], loaded


def test_ground_and_middle_never_import_textual_at_runtime():
    code = ("import sys, importlib, json, pkgutil\nmods=[]\n"
            "for pkg in ('facility','sensors','alarms','hazmat'):\n"
            "    p = importlib.import_module(pkg)\n"
            "    for m in pkgutil.iter_modules(p.__path__):\n"
            "        name = f'{pkg}.{m.name}'\n"
            "        if name in ('facility.__main__',):\n            continue\n"
            "        importlib.import_module(name); mods.append(name)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('textual'))))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []
