"""Where duetml keeps per-user state (settings defaults, weights, ONNX exports).

`DUETML_HOME` overrides everything, so tests and air-gapped setups can point it anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path


def user_home() -> Path:
    override = os.environ.get("DUETML_HOME")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("duetml", appauthor=False))


def user_cache_dir() -> Path:
    override = os.environ.get("DUETML_HOME")
    if override:
        return Path(override) / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir("duetml", appauthor=False))


def user_config_file() -> Path:
    """User-level defaults (e.g. which LLM each agent uses) that a project may override."""
    return user_home() / "config.toml"
