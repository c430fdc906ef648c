"""DESIGN.md's import floors, checked two ways: import-linter and a subprocess per module."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("facility", "sensors", "alarms", "hazmat", "tui")
# The ground floor of DESIGN.md; every other facility module is on the top floor.
GROUND = ("facility.model", "facility.config", "facility.config_schema", "facility.config_checks",
          "facility.errors", "facility.store", "facility.audit")


def _floor(module: str) -> str:
    pkg = module.split(".")[0]
    if pkg in ("sensors", "alarms", "hazmat"):
        return pkg
    if module == "facility" or module.startswith(GROUND):
        return "ground"
    return "top"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {m for m in found if m.split(".")[0] in PACKAGES}


ALLOWED = {
    "ground": {"ground"},
    "sensors": {"ground", "sensors"},
    "alarms": {"ground", "alarms"},
    "hazmat": {"ground", "alarms", "hazmat"},
    "top": {"ground", "sensors", "alarms", "hazmat", "top"},
}


def _modules():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            yield ".".join(p for p in rel.parts if p != "__init__"), path


def test_every_import_respects_the_floors():
    bad = []
    for module, path in _modules():
        floor = _floor(module)
        for imported in _imports(path):
            if _floor(imported) not in ALLOWED[floor]:
                bad.append(f"{module} ({floor}) imports {imported} ({_floor(imported)})")
    assert not bad, "\n".join(bad)


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
