"""The project's human-readable settings file, `duetml.toml`.

It holds what a person may want to read or edit (goal, backbone, which LLM each agent uses);
machine state lives in `.duetml/`. `format` lets an older duetml refuse a newer project
instead of misreading it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from duetml import atomic
from duetml.errors import DuetmlError, ProjectTooNewError

SETTINGS_FILE = "duetml.toml"
FORMAT_VERSION = 1
DEFAULT_BACKBONE = "efficientnet-lite0"
# New projects extract with the quantized backbone (bench/bench_int8.py: as accurate, faster).
# A project whose duetml.toml has no `precision` was made before int8 existed: it keeps fp32,
# the precision its cached features and model were computed with.
DEFAULT_PRECISION = "int8"
LEGACY_PRECISION = "fp32"


def default_settings(goal: str = "") -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "goal": goal,
        "backbone": DEFAULT_BACKBONE,
        "precision": DEFAULT_PRECISION,
        "agents": {"proactive_enabled": True, "proactive_interval_seconds": 60},
    }


def read_settings(root: Path) -> dict[str, Any]:
    path = root / SETTINGS_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DuetmlError(f"{SETTINGS_FILE} is not valid TOML ({exc}): fix or delete it.") from None
    except UnicodeDecodeError:
        raise DuetmlError(f"{SETTINGS_FILE} is not UTF-8 text: fix or delete it.") from None
    version = data.get("format", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        shown = repr(version)[:40]
        raise DuetmlError(
            f"{SETTINGS_FILE} has a malformed setting: format = {shown} should be a whole "
            f"number (format = {FORMAT_VERSION}, without quotes): fix that line."
        )
    if version > FORMAT_VERSION:
        raise ProjectTooNewError(
            f"This project was written by a newer duetml (format {version}): "
            "upgrade with `pip install -U duetml`."
        )
    merged = default_settings()
    merged["precision"] = LEGACY_PRECISION
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def write_settings(root: Path, settings: dict[str, Any]) -> None:
    atomic.write_text(root / SETTINGS_FILE, tomli_w.dumps(_drop_none(settings)))


def _drop_none(value: Any) -> Any:
    # TOML has no null; an unset option is simply absent.
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value
