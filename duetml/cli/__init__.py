"""The `duetml` command. Each command group lives in its own small module; all of them only
adapt the core (duetml.project, duetml.training, ...) to the shell."""

from __future__ import annotations

from duetml.cli.app import app, main

# Registering the command groups; each module adds its commands to `app`.
from duetml.cli import project_cmds, category_cmds, model_cmds  # noqa: E402,F401
from duetml.cli import optional_cmds  # noqa: E402,F401

__all__ = ["app", "main"]
