"""Killing duetml at any moment leaves the old or the new file, never a broken one
(security.md item 8): a writer process is SIGKILLed at random moments, again and again."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from duetml.classifier import TrainedModel
from duetml.prediction import model_path
from duetml.settings import read_settings

WRITER = """
import sys
from dataclasses import replace
from pathlib import Path
from duetml.classifier import TrainedModel
from duetml.project import Project
from duetml.settings import write_settings
root = Path(sys.argv[1])
model_file = root / ".duetml" / "model" / "model.npz"
model = TrainedModel.load(model_file)
settings = Project.open(root).settings
print("ready", flush=True)
i = 0
while True:
    i += 1
    model.meta["generation"] = i
    model.save(model_file)
    write_settings(root, replace(settings, goal=f"generation {i} " + "x" * (i % 500)))
"""


@pytest.mark.slow
def test_sigkill_during_writes_never_leaves_a_broken_model_or_settings(trained_demo: Path) -> None:
    rng = random.Random(7)
    generations = []
    for _ in range(8):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(trained_demo)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.05, 0.4))
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(10)
        model = TrainedModel.load(model_path_of(trained_demo))
        generations.append(model.meta.get("generation", 0))
        assert read_settings(trained_demo).goal.startswith("generation")
    assert max(generations) > 0  # the writer really was writing when it was killed


def model_path_of(root: Path) -> Path:
    from duetml.project import Project

    return model_path(Project.open(root))


def test_temp_files_of_killed_writes_are_cleared_later(tmp_path: Path) -> None:
    import os

    from duetml import atomic

    target = tmp_path / "settings.toml"
    old = tmp_path / ".settings.toml.abc123.tmp"
    fresh = tmp_path / ".settings.toml.def456.tmp"  # could belong to a writer still running
    for leftover in (old, fresh):
        leftover.write_text("half a file")
    os.utime(old, (0, 0))
    atomic.write_text(target, "whole")
    assert target.read_text() == "whole"
    assert not old.exists() and fresh.exists()
