"""The `duetml` command. Each command group lives in its own small module; all of them only
adapt the core (duetml.project, duetml.training, duetml.agents, duetml.web) to the shell.

Typer is the one definition of every command. A command given on the command line imports
only the module that defines it (`duetml predict` imports model_cmds, not the agents, the
web server or the LLM clients); `duetml`, `--help`, `--version` and anything unknown import
them all, in the order of `duetml --help`.
"""

# ruff: noqa: I001, F401  -- the command modules register themselves, in the order of --help.
from __future__ import annotations

import gc
import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typer import Typer

    app: Typer

__all__ = ["app", "main"]

# The first word on the command line -> the module that defines that command (or group), in
# the order of `duetml --help`; tests/test_cli.py checks it against the commands Typer has.
COMMAND_MODULES = {
    "init": "project_cmds",
    "add": "project_cmds",
    "status": "project_cmds",
    "undo": "project_cmds",
    "redo": "project_cmds",
    "demo": "project_cmds",
    "categories": "category_cmds",
    "train": "model_cmds",
    "eval": "model_cmds",
    "predict": "model_cmds",
    "backbones": "model_cmds",
    "export": "export_cmd",
    "review": "review_cmds",
    "chat": "chat_cmd",
    "ask": "agent_cmds",
    "advise": "agent_cmds",
    "llm": "llm_cmds",
    "serve": "serve_cmd",
    "study": "study_cmds",
}


def _commands(only: str | None = None) -> Any:
    """Import the command modules (all of them, or only the one named), which register their
    commands on the Typer app, and return the module holding the app."""
    import duetml.cli.app as app_module

    modules = [only] if only else list(dict.fromkeys(COMMAND_MODULES.values()))
    for module in modules:
        importlib.import_module(f"duetml.cli.{module}")
    # Importing the submodule duetml.cli.app bound the name `app` here to that module; the
    # package's `app` is the Typer application, as before the commands were imported lazily.
    if only is None:
        globals()["app"] = app_module.app
    return app_module


def __getattr__(name: str) -> Any:
    if name == "app":
        return _commands().app
    raise AttributeError(f"module 'duetml.cli' has no attribute {name!r}")


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "predict":
        # Before numpy is imported: OpenBLAS's threads took 45 ms of a cold one-photo
        # predict to start and stop (bench/bench_predict.py), and its few small products
        # do not need them. A value the user set is kept.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        # Its imports (Typer, NumPy, ONNX Runtime, Pillow) make a few hundred thousand objects
        # and no garbage, yet the cyclic collector walked them 70 times, 15-20 ms of a cold
        # one-photo predict (bench/bench_predict.py); predict turns it back on once imported.
        gc.disable()
    try:
        _commands(COMMAND_MODULES.get(command)).main()
    except SystemExit as stop:
        if command != "predict":
            raise
        # Predict has printed its answer and written nothing else: tearing the interpreter
        # down (ONNX Runtime's thread pool, NumPy's and Typer's modules) took 16 ms of a
        # cold one-photo predict (bench/bench_predict.py), which nothing needs.
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if stop.code is not None and not isinstance(stop.code, int):
            print(stop.code, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    finally:
        gc.enable()  # also where predict stopped before its imports (a wrong option, say)
