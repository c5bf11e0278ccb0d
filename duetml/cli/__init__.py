"""The `duetml` command. Each command group lives in its own small module; all of them only
adapt the core (duetml.project, duetml.training, duetml.agents, duetml.web) to the shell.

The commands (and Typer) are imported on first use of `app`, not with this package: `main`
runs the plain forms of `duetml predict` without Typer (see predict_quick), which halves the
imports of a cold prediction.
"""

# ruff: noqa: I001, F401  -- the command modules register themselves, in the order of --help.
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typer import Typer

    app: Typer

__all__ = ["app", "main"]


def _commands() -> Any:
    # The import order below is the order of `duetml --help`.
    import duetml.cli.app as app_module
    from duetml.cli import project_cmds  # init, add, status, undo, demo
    from duetml.cli import category_cmds  # categories ...
    from duetml.cli import model_cmds  # train, eval, predict, backbones
    from duetml.cli import export_cmd  # export
    from duetml.cli import review_cmds  # review, review apply|dismiss
    from duetml.cli import chat_cmd  # chat
    from duetml.cli import agent_cmds  # ask, advise
    from duetml.cli import llm_cmds  # llm status|use|proactive
    from duetml.cli import serve_cmd  # serve
    from duetml.cli import study_cmds  # study init|status|report|replay|rate|export

    # Importing the submodule duetml.cli.app bound the name `app` here to that module; the
    # package's `app` is the Typer application, as before the commands were imported lazily.
    globals()["app"] = app_module.app
    return app_module


def __getattr__(name: str) -> Any:
    if name == "app":
        return _commands().app
    raise AttributeError(f"module 'duetml.cli' has no attribute {name!r}")


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["predict"]:
        from duetml.cli import guard, predict_quick

        args = predict_quick.parse(argv[1:])
        if args is not None:
            guard.run_guarded(lambda: sys.exit(predict_quick.run(args)))
            return
    _commands().main()
