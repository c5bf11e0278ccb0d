"""What a newcomer trips over in the shell in their first hour (issue 12)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import run_duetml
from typer.testing import CliRunner

from duetml import __version__
from duetml.cli import app
from duetml.demo import DEMO_DATA
from duetml.errors import EXIT_CODES

runner = CliRunner()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The command in a real process, in a terminal 100 columns wide."""
    return run_duetml(*args, env={"COLUMNS": "100"})


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"duetml {__version__}"


@pytest.mark.slow
def test_help_shows_what_a_person_reads() -> None:
    for command in (["add"], ["categories", "move"], ["predict"], ["ask"], ["serve"]):
        text = run(*command, "--help").stdout
        assert "Usage: duetml" in text
        for typer_internal in ("<bool>", "<str>", "<list[", "<path>", "<int>", "{"):
            assert typer_internal not in text, (command, typer_internal)
    assert "Usage: duetml add [OPTIONS] CATEGORY PATHS..." in run("add", "--help").stdout
    assert "--project  -p      PATH" in run("add", "--help").stdout


@pytest.mark.slow
def test_each_exit_code_has_one_meaning(tmp_path: Path) -> None:
    assert len(set(EXIT_CODES)) == len(EXIT_CODES) == 11
    usage = run("status", "--no-such-option")
    not_project = run("status", "-p", str(tmp_path))
    assert usage.returncode == 2 and not_project.returncode == 9
    run("init", str(tmp_path / "p"))
    typo = run("llm", "use", "passive", "llava", "-p", str(tmp_path / "p"))
    assert typo.returncode == 1 and "Unknown LLM provider 'llava'" in typo.stderr


@pytest.mark.slow
def test_demo_twice_reuses_the_demo_project(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    first = run("demo", str(folder))
    assert first.returncode == 0, first.stderr
    again = run("demo", str(folder))
    assert again.returncode == 0, again.stderr
    assert "Using the demo project already in" in again.stdout
    assert "Evaluation on the test set" in again.stdout
    other = tmp_path / "mine"
    run("init", str(other))
    refused = run("demo", str(other))
    assert refused.returncode == 1 and "duetml demo OTHER_DIR" in refused.stderr
    assert not (other / "train" / "hat").exists()


def test_confusion_matrix_keeps_whole_names() -> None:
    from duetml.cli.model_cmds import confusion_lines

    lines = confusion_lines(["feet", "lower body", "upper body"], [[5, 0, 1], [0, 4, 1], [0, 0, 9]])
    assert lines[0].split() == ["feet", "lower", "body", "upper", "body"]
    assert "lower body     0           4           1" in lines[2]
    long = [f"a rather long category name {i}" for i in range(6)]
    numbered = confusion_lines(long, [[1] * 6 for _ in range(6)])
    assert numbered[1].startswith("1 a rather long category name 0")
    assert all(len(line) <= 100 for line in numbered)
    assert numbered[-1] == "(columns are numbered as the rows)"


@pytest.mark.slow
def test_stale_model_warns_in_predict_and_stops_eval(trained_demo: Path) -> None:
    photo = str(next((DEMO_DATA / "hat").glob("*.jpg")))
    fresh = run("predict", photo, "-p", str(trained_demo))
    assert fresh.returncode == 0 and "Warning" not in fresh.stderr
    renamed = runner.invoke(app, ["categories", "rename", "hat", "cap", "-p", str(trained_demo)])
    assert renamed.exit_code == 0, renamed.output
    stale = run("predict", photo, "-p", str(trained_demo))
    assert stale.returncode == 0
    assert "Warning: The model still knows 'hat'" in stale.stderr
    as_json = json.loads(run("predict", photo, "--json", "-p", str(trained_demo)).stdout)
    assert "'hat'" in as_json[0]["model_warning"]
    evaluation = run("eval", "-p", str(trained_demo))
    assert evaluation.returncode == 3 and "run `duetml train`" in evaluation.stderr
    assert "test/" not in evaluation.stdout  # no list of photos that moved away


@pytest.mark.slow
def test_train_names_the_empty_categories_it_left_out(trained_demo: Path) -> None:
    runner.invoke(app, ["categories", "add", "scarf", "-p", str(trained_demo)])
    result = run("train", "-p", str(trained_demo))
    assert result.returncode == 0, result.stderr
    assert "Left out (no photos): 'scarf'" in result.stdout


@pytest.mark.slow
def test_init_from_suggests_training_next(tmp_path: Path) -> None:
    source = tmp_path / "photos"
    for category in ("hat", "shoes"):
        (source / category).mkdir(parents=True)
        for photo in sorted((DEMO_DATA / category).glob("*.jpg"))[:3]:
            shutil.copy(photo, source / category / photo.name)
    (source / "notes.txt").write_text("not a photo")
    result = run("init", str(tmp_path / "p"), "--from", str(source))
    assert result.returncode == 0, result.stderr
    assert "notes.txt: is a file outside any category folder" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == f"Next: duetml train -p {tmp_path / 'p'}"


def _project_with(tmp_path: Path, *categories: str) -> Path:
    folder = tmp_path / "p"
    run("init", str(folder))
    for category in categories:
        photos = [str(p) for p in sorted((DEMO_DATA / category).glob("*.jpg"))[:3]]
        added = runner.invoke(app, ["add", category, *photos, "-p", str(folder)])
        assert added.exit_code == 0, added.output
    return folder


@pytest.mark.slow
def test_names_differing_only_in_case_are_refused(tmp_path: Path) -> None:
    folder = _project_with(tmp_path, "hat", "shoes")
    runner.invoke(app, ["categories", "rename", "shoes", "upper body", "-p", str(folder)])
    for command in (
        ["categories", "add", "Upper Body"],
        ["categories", "rename", "hat", "UPPER BODY"],
        ["categories", "merge", "hat", "--into", "Upper body", "--new"],
    ):
        result = run(*command, "-p", str(folder))
        assert result.returncode == 1 and "only in case" in result.stderr, command
    assert sorted(p.name for p in (folder / "train").iterdir()) == ["hat", "upper body"]
    # A change of case of the category itself is a rename like any other.
    assert run("categories", "rename", "hat", "Hat", "-p", str(folder)).returncode == 0
    assert sorted(p.name for p in (folder / "train").iterdir()) == ["Hat", "upper body"]


@pytest.mark.slow
def test_a_typo_does_not_make_a_category(tmp_path: Path) -> None:
    folder = _project_with(tmp_path, "t-shirt")
    photo = str(next((DEMO_DATA / "hat").glob("*.jpg")))
    typo = run("add", "tshirt", photo, "-p", str(folder))
    assert typo.returncode == 1 and "did you mean 't-shirt'?" in typo.stderr
    assert "--new" in typo.stderr and not (folder / "train" / "tshirt").exists()
    missing = run("categories", "show", "t-shrit", "-p", str(folder))
    assert missing.returncode == 1 and "did you mean 't-shirt'?" in missing.stderr
    meant = run("add", "tshirt", photo, "--new", "-p", str(folder))
    assert meant.returncode == 0 and (folder / "train" / "tshirt").is_dir()
    other = str(sorted((DEMO_DATA / "pants").glob("*.jpg"))[0])
    unrelated = run("add", "scarf", other, "-p", str(folder))  # close to nothing: no question
    assert unrelated.returncode == 0 and (folder / "train" / "scarf").is_dir()


@pytest.mark.slow
def test_move_takes_a_path_or_a_bare_name_and_undo_removes_the_new_category(
    tmp_path: Path,
) -> None:
    folder = _project_with(tmp_path, "hat", "shoes")
    first, second = sorted((folder / "train" / "hat").iterdir())[:2]
    by_path = run_duetml(
        "categories", "move", first.name, "--to", "shoes", "-p", str(folder), cwd=first.parent
    )
    assert by_path.returncode == 0, by_path.stderr
    assert (folder / "train" / "shoes" / first.name).exists()
    by_stem = run("categories", "move", second.stem, "--to", "caps", "--new", "-p", str(folder))
    assert by_stem.returncode == 0, by_stem.stderr
    assert (folder / "train" / "caps" / second.name).exists()
    assert run("undo", "-p", str(folder)).returncode == 0
    assert (folder / "train" / "hat" / second.name).exists()
    assert not (folder / "train" / "caps").exists()  # the category the move made is gone too
    unknown = run("categories", "move", "nothing-like-it", "--to", "hat", "-p", str(folder))
    assert unknown.returncode == 1 and "There is no photo 'nothing-like-it'" in unknown.stderr


@pytest.mark.slow
def test_iphone_heic_photos_are_added_and_classified(tmp_path: Path, trained_demo: Path) -> None:
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    heic = tmp_path / "IMG_0001.HEIC"
    with Image.open(next((DEMO_DATA / "shoes").glob("*.jpg"))) as photo:
        photo.save(heic, format="HEIF", quality=90)
    assert heic.read_bytes()[4:12] == b"ftypheic"
    added = run("add", "shoes", str(heic), "-p", str(trained_demo))
    assert added.returncode == 0 and "Added 1 photo(s)." in added.stdout, added.stderr
    stored = [p for p in (trained_demo / "train" / "shoes").iterdir() if p.stat().st_size]
    newest = max(stored, key=lambda p: p.stat().st_mtime)
    assert newest.suffix == ".jpg" and newest.read_bytes()[:3] == b"\xff\xd8\xff"
    predicted = json.loads(run("predict", str(heic), "--json", "-p", str(trained_demo)).stdout)
    assert predicted[0]["category"] == "shoes"
    ppm = tmp_path / "scan.ppm"
    Image.new("RGB", (32, 32)).save(ppm)
    refused = run("add", "shoes", str(ppm), "-p", str(trained_demo))
    assert "This is a PPM file, which duetml cannot read" in refused.stdout


@pytest.mark.slow
def test_llm_status_says_a_stopped_ollama_is_unreachable(tmp_path: Path) -> None:
    import socket

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    run("init", str(tmp_path / "p"))
    down = {"OLLAMA_HOST": f"http://127.0.0.1:{port}"}
    result = run_duetml("llm", "status", "-p", str(tmp_path / "p"), env=down, timeout=120)
    endpoint_lines = [line for line in result.stdout.splitlines() if "endpoint" in line]
    assert endpoint_lines and all("NOT REACHABLE" in line for line in endpoint_lines)
    assert "data stays on this machine" not in result.stdout
