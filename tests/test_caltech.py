"""End to end on real Caltech-101 photos from ../shared/data (skipped where it is absent).

Caltech 101: Fei-Fei, Fergus & Perona (2004); CaltechDATA doi:10.22002/D1.20086.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import CALTECH
from typer.testing import CliRunner

from duetml.cli import app

pytestmark = pytest.mark.skipif(
    not CALTECH.is_dir(), reason=f"the Caltech-101 subset is not at {CALTECH} (CI has it)"
)
CLASSES = [
    "accordion",
    "airplanes",
    "bonsai",
    "dalmatian",
    "ferry",
    "grand_piano",
    "lotus",
    "pizza",
    "sunflower",
    "wheelchair",
]


@pytest.mark.slow
def test_ten_caltech_classes_from_the_shell(tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    for split, part in (("train", slice(0, 20)), ("test", slice(20, 30))):
        for name in CLASSES:
            (dataset / split / name).mkdir(parents=True)
            for photo in sorted((CALTECH / name).glob("*.jpg"))[part]:
                shutil.copy(photo, dataset / split / name / photo.name)
    runner = CliRunner()
    project = str(tmp_path / "caltech")
    result = runner.invoke(app, ["init", project, "--from", str(dataset), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["import"]["added"]) == 300
    trained = json.loads(runner.invoke(app, ["train", "-p", project, "--json"]).output)
    assert trained["cv_accuracy"] > 0.85  # chance is 0.1
    report = json.loads(runner.invoke(app, ["eval", "-p", project, "--json"]).output)
    assert report["source"] == "test set" and report["accuracy"] > 0.85
    assert sum(map(sum, report["confusion"])) == 100
