"""The `duetml` command as a shell user drives it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DEMO_DATA, demo_photos, invoke_duetml, run_duetml
from typer.testing import CliRunner

from duetml.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_help_is_instant_and_imports_nothing_heavy() -> None:
    code = (
        "import sys; import duetml.cli; "
        "heavy = [m for m in ('torch','torchvision','sklearn','onnxruntime','numpy','openai',"
        "'ollama','PIL') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    result = run_duetml("--help")
    assert result.returncode == 0 and "train" in result.stdout and "predict" in result.stdout


@pytest.mark.slow
def test_shell_workflow_init_add_train_eval_predict(tmp_path: Path) -> None:
    proj = str(tmp_path / "clothes")
    assert invoke_duetml("init", proj, "--goal", "sort clothes").exit_code == 0
    for category in ("hat", "shoes", "pants"):
        result = invoke_duetml("add", category, str(DEMO_DATA / category), "-p", proj)
        assert result.exit_code == 0 and "Added 25 photo(s)" in result.output
    status = json.loads(invoke_duetml("status", "-p", proj, "--json").output)
    assert [c["images"] for c in status["categories"]] == [25, 25, 25]
    result = invoke_duetml("train", "-p", proj, "--json")
    assert result.exit_code == 0, result.output
    trained = json.loads(result.output)
    assert trained["images"] == 75 and trained["cv_accuracy"] > 0.85
    result = invoke_duetml("eval", "-p", proj)
    assert "cross-validation" in result.output and "precision" in result.output
    assert "Confusion matrix" in result.output
    result = invoke_duetml("predict", str(demo_photos("shoes")[0]), "-p", proj, "--json")
    rows = json.loads(result.output)
    assert rows[0]["category"] == "shoes" and rows[0]["top"][0]["probability"] > 0.5
    result = invoke_duetml("predict", str(demo_photos("hat")[0]), "-p", proj, "--csv")
    assert result.output.splitlines()[0] == "image,category,confidence,error,not_sure"
    assert ",hat," in result.output.splitlines()[1]


@pytest.mark.slow
def test_categories_commands_and_undo(tmp_path: Path) -> None:
    proj = str(tmp_path / "p")
    invoke_duetml("init", proj)
    invoke_duetml("add", "carrot", *map(str, demo_photos("hat")[:3]), "-p", proj)
    invoke_duetml("add", "tomato", *map(str, demo_photos("pants")[:2]), "-p", proj)
    assert invoke_duetml("categories", "add", "rose", "-p", proj).exit_code == 0
    assert invoke_duetml("categories", "rename", "rose", "flower", "-p", proj).exit_code == 0
    result = invoke_duetml(
        "categories", "merge", "carrot", "tomato", "--into", "edible", "-p", proj
    )
    assert "5 photo(s) moved" in result.output
    listing = json.loads(invoke_duetml("categories", "-p", proj, "--json").output)
    assert [(c["name"], c["images"]) for c in listing] == [("edible", 5), ("flower", 0)]
    photo = invoke_duetml("categories", "show", "edible", "-p", proj).output.split()[0]
    assert invoke_duetml("categories", "move", photo, "--to", "flower", "-p", proj).exit_code == 0
    assert invoke_duetml("categories", "remove", "flower", "-p", proj).exit_code == 0
    assert "remove category" in invoke_duetml("undo", "--list", "-p", proj).output
    for _ in range(3):
        assert invoke_duetml("undo", "-p", proj).exit_code == 0
    listing = json.loads(invoke_duetml("categories", "list", "-p", proj, "--json").output)
    assert [(c["name"], c["images"]) for c in listing] == [
        ("carrot", 3),
        ("flower", 0),
        ("tomato", 2),
    ]


@pytest.mark.slow
def test_errors_are_one_line_with_an_exit_code(tmp_path: Path) -> None:
    result = run_duetml("status", "-p", str(tmp_path))
    assert result.returncode == 9 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and "not a duetml project" in result.stderr
    run_duetml("init", str(tmp_path / "p"))
    result = run_duetml("predict", str(demo_photos("hat")[0]), "-p", str(tmp_path / "p"))
    assert result.returncode == 3 and "run `duetml train`" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_duetml("categories", "add", "../escape", "-p", str(tmp_path / "p"))
    assert result.returncode == 1 and "cannot contain '/'" in result.stderr
    result = run_duetml("categories", "add", "..", "-p", str(tmp_path / "p"))
    assert result.returncode == 1 and "cannot start with a dot" in result.stderr
    result = run_duetml("categories", "add", "a/b", "-p", str(tmp_path / "p"))
    assert (
        result.returncode == 1
        and "cannot contain '/'" in result.stderr
        and "Traceback" not in result.stderr
    )
    result = run_duetml("categories", "add", "x" * 300, "-p", str(tmp_path / "p"))
    assert "at most 60" in result.stderr


@pytest.mark.slow
def test_predict_exit_code_when_some_photos_are_unreadable(
    trained_demo: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really")
    result = run_duetml("predict", str(demo_photos("pants")[0]), str(bad), "-p", str(trained_demo))
    assert result.returncode == 8
    lines = result.stdout.splitlines()
    assert "pants" in lines[0] and "cannot classify" in lines[1]


@pytest.mark.slow
def test_project_from_the_environment_and_current_folder(trained_demo: Path) -> None:
    result = run_duetml("status", cwd=trained_demo)
    assert (
        result.returncode == 0
        and "hat" in result.stdout
        and "Model: efficientnet-lite0" in result.stdout
    )


def test_backbones_listing() -> None:
    rows = json.loads(invoke_duetml("backbones", "--json").output)
    ready = {r["name"]: r["ready"] for r in rows}
    assert ready["efficientnet-lite0"] is True and set(ready) == {
        "efficientnet-lite0",
        "mobilenet-v3-large",
        "mobilenet-v3-small",
    }
    text = invoke_duetml("backbones").output
    assert "duetml backbones pull" in text or all(ready.values())


@pytest.mark.slow
def test_demo_runs_the_main_job(tmp_path: Path) -> None:
    result = run_duetml("demo", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    assert (
        "Cross-validated accuracy" in result.stdout
        and "Evaluation on the test set" in result.stdout
    )
    assert "duetml predict" in result.stdout
    assert (tmp_path / "demo" / "CREDITS.txt").read_text().count("CC0") >= 1


@pytest.mark.slow
def test_backbones_use_needs_the_weights(
    trained_demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    result = run_duetml("backbones", "use", "mobilenet-v3-large", "-p", str(trained_demo))
    assert result.returncode == 6 and "backbones pull" in result.stderr


@pytest.mark.slow
def test_train_names_an_extended_cross_validation_and_full_redoes_it(
    trained_demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    from duetml.classifier import selection

    monkeypatch.setattr(selection, "REUSE_ABOVE", 0)  # the demo is small; 5,000 photos are not
    staging = tmp_path / "new"
    staging.mkdir()
    for path in demo_photos("hat")[:2]:  # mirrored: real photos with new content
        Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(staging / path.name)
    assert invoke_duetml("add", "hat", str(staging), "-p", str(trained_demo)).exit_code == 0
    quick = invoke_duetml("train", "-p", str(trained_demo))
    assert quick.exit_code == 0, quick.output
    # Not presented as a fresh cross-validation: what the figure is made of, and how to redo it.
    assert "Held-out accuracy" in quick.output and "Cross-validated" not in quick.output
    assert "2 photo(s) added since" in quick.output and "--full" in quick.output
    assert "held-out accuracy" in invoke_duetml("status", "-p", str(trained_demo)).output
    full = invoke_duetml("train", "--full", "-p", str(trained_demo))
    assert full.exit_code == 0 and "Cross-validated accuracy" in full.output
    assert "Held-out" not in full.output
    assert "cross-validated accuracy" in invoke_duetml("status", "-p", str(trained_demo)).output


@pytest.mark.slow
def test_predict_imports_only_its_module_and_prints_what_the_whole_app_prints(
    trained_demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`duetml predict` runs Typer's one definition of the command, importing only the module
    that defines it and converting its values without pydantic: the same output, exit codes
    and messages as the whole application converting with pydantic (Typer's own way)."""
    photos = [str(p) for p in demo_photos("hat")[:2]] + [str(trained_demo / "missing.jpg")]
    for extra in ([], ["--json"], ["--csv"], ["--top", "1", "--no-abstain"], ["--top=2"]):
        alone = run_duetml("predict", *photos, "-p", str(trained_demo), *extra)
        whole = runner.invoke(app, ["predict", *photos, "-p", str(trained_demo), *extra])
        assert alone.returncode == whole.exit_code == 8  # one photo is missing
        assert alone.stdout == whole.stdout and "hat" in alone.stdout
    code = (
        "import os, sys; from duetml.cli import main\n"
        # predict ends the process with os._exit (no teardown): here it raises instead
        "def stop(code):\n    raise SystemExit(code)\n"
        "os._exit = stop\n"
        f"sys.argv = ['duetml', 'predict', {photos[0]!r}]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\n"
        "loaded = ('pydantic', 'sklearn', 'openai', 'litestar', 'duetml.cli.serve_cmd')\n"
        "print(code, sorted(m for m in loaded if m in sys.modules))"
    )
    monkeypatch.setenv(
        "DUETML_PROJECT", str(trained_demo)
    )  # the option's envvar, as Typer reads it
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 []"
    assert "hat" in out.stdout
    # A value that is not plainly valid gets Typer's own message.
    for wrong_top in ("0", "x", "-1"):
        alone = run_duetml("predict", photos[0], "-p", str(trained_demo), "--top", wrong_top)
        whole = runner.invoke(
            app, ["predict", photos[0], "-p", str(trained_demo), "--top", wrong_top]
        )
        assert alone.returncode == whole.exit_code == 2 and "--top" in alone.stderr
        assert alone.stderr.split("Error")[-1] == whole.stderr.split("Error")[-1]


def test_each_command_is_found_in_the_module_main_imports_for_it() -> None:
    import typer

    from duetml.cli import COMMAND_MODULES

    found = {}
    for info in app.registered_commands:
        assert info.callback is not None
        name = info.name or info.callback.__name__.replace("_", "-")
        found[name] = info.callback.__module__
    for group in app.registered_groups:
        sub = group.typer_instance
        assert isinstance(sub, typer.Typer)
        first = sub.registered_callback or sub.registered_commands[0]
        assert group.name is not None and first.callback is not None
        found[group.name] = first.callback.__module__
    assert found == {name: f"duetml.cli.{module}" for name, module in COMMAND_MODULES.items()}
