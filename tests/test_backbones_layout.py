"""The backbones package keeps PyTorch in one module: the default install has no torch, so any
other module importing it (even inside a function) would break a command there."""

from __future__ import annotations

import ast
from pathlib import Path

import duetml

PACKAGE = Path(duetml.__file__).parent
TORCH = {"torch", "torchvision", "efficientnet_lite_pytorch"}


def imported_modules(source: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_onnx_export_imports_torch() -> None:
    importers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if imported_modules(path) & TORCH
    )
    assert importers == ["backbones/onnx_export.py"]


def top_level_imports(source: Path) -> set[str]:
    """Modules imported when ``source`` is imported (not inside functions or TYPE_CHECKING)."""
    names: set[str] = set()
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_backbones_module_imports_numpy_or_onnxruntime_at_import_time() -> None:
    """`duetml predict` imports duetml.backbones first to begin its ONNX Runtime session
    early: the package must stay light (heavy imports inside the functions that need them)."""
    for path in (PACKAGE / "backbones").glob("*.py"):
        assert not top_level_imports(path) & {"numpy", "onnxruntime", "onnx", *TORCH}, path.name
