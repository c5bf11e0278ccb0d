"""Command groups that live beside the core (agents, web UI), registered when present."""

from __future__ import annotations

import importlib

for _module in ("duetml.cli.llm_cmds", "duetml.cli.serve_cmd"):
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as exc:
        if exc.name != _module:
            raise
