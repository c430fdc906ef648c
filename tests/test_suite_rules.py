"""Rules the test suite keeps about itself, read from the test files' syntax trees.

* Every test checks something: an ``assert``, ``pytest.raises``/``warns``/``fail``, or a call
  to a helper of its own module that does.  A test that only runs code passes whatever the
  code does.
* No fixed waits: a ``sleep``/``pause`` of a constant time is allowed only inside a ``while``
  loop (polling a condition until a deadline).  Sleeping a fixed time and then counting
  tests the machine's load, not the system (``tests/fixtures/wait.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
CHECKS = {"raises", "warns", "fail", "deprecated_call"}
WAITS = {"sleep", "pause"}


def _test_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if p.name.startswith("test_"))


def _checks(node: ast.AST) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Assert):
            return True
        if isinstance(n, ast.Call):
            f = n.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in CHECKS:
                return True
    return False


def _functions(tree: ast.AST) -> dict[str, ast.AST]:
    return {n.name: n for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_every_test_checks_something():
    idle = []
    for path in _test_files():
        funcs = _functions(ast.parse(path.read_text(encoding="utf-8")))
        checking = {name for name, fn in funcs.items() if _checks(fn)}
        for name, fn in funcs.items():
            if not name.startswith("test") or name in checking:
                continue
            called = {c.func.id for c in ast.walk(fn)
                      if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
            if not called & checking:
                idle.append(f"{path.relative_to(TESTS.parent)}::{name}")
    assert idle == [], "tests that assert nothing: " + ", ".join(idle)


def _fixed_waits(tree: ast.AST) -> list[int]:
    """Line numbers of constant, non-zero sleeps/pauses outside any ``while`` loop."""
    found = []

    def visit(node: ast.AST, in_while: bool) -> None:
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if (name in WAITS and node.args and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, (int, float)) and node.args[0].value > 0
                    and not in_while):
                found.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, in_while or isinstance(node, ast.While))

    visit(tree, False)
    return found


def test_no_fixed_waits():
    fixed = []
    for path in [*_test_files(), *(TESTS / "fixtures").glob("*.py"), TESTS / "conftest.py"]:
        for line in _fixed_waits(ast.parse(path.read_text(encoding="utf-8"))):
            fixed.append(f"{path.relative_to(TESTS.parent)}:{line}")
    assert fixed == [], "fixed sleeps (wait on a condition instead): " + ", ".join(fixed)


def test_the_rules_see_what_they_forbid():
    """The two scanners flag the patterns they exist for (so a passing suite means something)."""
    idle = ast.parse("def test_x():\n    run()\n")
    assert not _checks(_functions(idle)["test_x"])
    fixed = ast.parse("import time\ndef test_x():\n    time.sleep(1.5)\n    assert f()\n"
                      "def wait():\n    while not f():\n        time.sleep(0.1)\n")
    assert _fixed_waits(fixed) == [3]
