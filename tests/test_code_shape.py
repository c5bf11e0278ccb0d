"""The package stays a codebase one can live in (issue 20): no module over 700 lines, no
function over 80 (a longer one would be named in LONGER_FOR_A_REASON, with the reason its
docstring gives)."""

from __future__ import annotations

import ast
from pathlib import Path

import duetml

PACKAGE = Path(duetml.__file__).parent
MODULE_LINES = 700
FUNCTION_LINES = 80
LONGER_FOR_A_REASON: set[str] = set()  # "module.py:function" whose docstring says why


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_is_over_700_lines() -> None:
    lines = {p: len(p.read_text(encoding="utf-8").splitlines()) for p in _modules()}
    long = {str(p.relative_to(PACKAGE)): n for p, n in lines.items() if n > MODULE_LINES}
    assert not long, f"split these along their seams: {long}"


def test_no_function_is_over_80_lines() -> None:
    long: dict[str, int] = {}
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                length = node.end_lineno - node.lineno + 1
                name = f"{path.relative_to(PACKAGE)}:{node.name}"
                if length > FUNCTION_LINES and name not in LONGER_FOR_A_REASON:
                    long[name] = length
    assert not long, f"split these into named steps, or say why in the docstring: {long}"


def test_the_check_sees_the_package() -> None:
    """The two checks above would pass on an empty walk: they read the real modules."""
    names = {str(p.relative_to(PACKAGE)) for p in _modules()}
    assert {"project.py", "classifier/selection.py", "web/app.py"} <= names
