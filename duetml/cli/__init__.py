"""The `duetml` command. Each command group lives in its own small module; all of them only
adapt the core (duetml.project, duetml.training, duetml.agents, duetml.web) to the shell."""

# ruff: noqa: I001, F401  -- the import order below is the order of `duetml --help`.
from __future__ import annotations

from duetml.cli.app import app, main

from duetml.cli import project_cmds  # init, add, status, undo, demo
from duetml.cli import category_cmds  # categories ...
from duetml.cli import model_cmds  # train, eval, predict, backbones
from duetml.cli import export_cmd  # export
from duetml.cli import review_cmds  # review, review apply|dismiss
from duetml.cli import chat_cmd  # chat
from duetml.cli import agent_cmds  # ask, advise
from duetml.cli import llm_cmds  # llm status|use|proactive
from duetml.cli import serve_cmd  # serve

__all__ = ["app", "main"]
