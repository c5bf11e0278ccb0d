"""Sentences, not tracebacks (issue 7, item 5): a malformed format setting, and a read-only
project on which reading commands still work and say the log was not written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import demo_photos, read_only_view, run_duetml

from duetml.errors import DuetmlError, ProjectTooNewError
from duetml.project import Project


@pytest.mark.parametrize("value", ['"1"', "true", "0", "1.5", "[1]"])
def test_a_malformed_format_is_a_malformed_setting_not_a_newer_duetml(
    new_project: Project, value: str
) -> None:
    settings = new_project.root / "duetml.toml"
    text = settings.read_text()
    settings.write_text(text.replace("format = 1", f"format = {value}"))
    with pytest.raises(DuetmlError, match="malformed setting: format") as caught:
        Project.open(new_project.root)
    assert not isinstance(caught.value, ProjectTooNewError)
    assert "newer" not in str(caught.value)


def test_a_newer_format_is_still_a_newer_duetml(new_project: Project) -> None:
    settings = new_project.root / "duetml.toml"
    settings.write_text(settings.read_text().replace("format = 1", "format = 2"))
    with pytest.raises(ProjectTooNewError, match="newer duetml"):
        Project.open(new_project.root)


@pytest.fixture
def read_only_demo(trained_demo: Path, tmp_path: Path) -> Iterator[Path]:
    """The trained demo project through a read-only bind mount (root writes anything else)."""
    with read_only_view(trained_demo, tmp_path) as view:
        yield view


@pytest.mark.slow
def test_predict_and_eval_work_on_a_read_only_project(read_only_demo: Path) -> None:
    log = read_only_demo / ".duetml" / "events.jsonl"
    before = log.read_bytes()
    photo = str(demo_photos("hat")[-1])
    predicted = run_duetml("predict", photo, "-p", str(read_only_demo))
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.startswith(photo) and "%" in predicted.stdout
    evaluated = run_duetml("eval", "-p", str(read_only_demo))
    assert evaluated.returncode == 0, evaluated.stderr
    assert "ccuracy" in evaluated.stdout
    for result in (predicted, evaluated):
        assert "interaction log was not written" in result.stderr
        assert "Traceback" not in result.stderr
    assert log.read_bytes() == before
    changed = run_duetml("categories", "add", "new", "-p", str(read_only_demo))
    assert changed.returncode != 0 and "Traceback" not in changed.stderr
    assert "read-only" in changed.stderr.lower()


# ----- issue 17, item 5: any decoder error is one rejected file -----------------------------
def _png_with_huge_chunk(kind: str) -> bytes:
    """A 2 KB PNG whose zTXt or iCCP chunk inflates past Pillow's MAX_TEXT_CHUNK."""
    import io

    from PIL import Image, PngImagePlugin

    out = io.BytesIO()
    image = Image.new("RGB", (32, 32), (1, 2, 3))
    if kind == "zTXt":
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "a" * 2_000_000, zip=True)
        image.save(out, "PNG", pnginfo=info)
    else:
        image.save(out, "PNG", icc_profile=b"\0" * 2_000_000)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["zTXt", "iCCP"])
def test_a_png_with_an_oversized_chunk_is_one_rejected_file(
    new_project: Project, tmp_path: Path, kind: str
) -> None:
    odd = tmp_path / "odd.png"
    odd.write_bytes(_png_with_huge_chunk(kind))
    good = demo_photos("hat")[0]
    result = run_duetml("add", "hat", str(odd), str(good), "-p", str(new_project.root))
    said = result.stdout + result.stderr
    assert "Traceback" not in said
    assert "odd.png" in said and "could not be read" in said
    assert result.returncode == 0, said  # as for any rejected file: the rest was added
    assert len(Project.open(new_project.root).images("train", "hat")) == 1


# ----- issue 17, item 6: caches and approvals of the wrong JSON type ------------------------
DEEP = "[" * 100_000 + "]" * 100_000
WRONG_JSON = ["[]", '"x"', "1e999", "null", DEEP, '{"train/hat/a.jpg": 5}', '{"x": [1, 2]}']


@pytest.mark.parametrize("text", WRONG_JSON, ids=range(len(WRONG_JSON)))
def test_a_hash_cache_of_the_wrong_json_type_is_read_as_absent(tmp_path: Path, text: str) -> None:
    from helpers import make_project

    project = make_project(tmp_path / "p", per_category=3, categories=["hat", "shoes"])
    records = project.images("train")
    expected = project.hashes(records)
    index = project.state_dir / "cache" / "hashes.json"
    index.write_text(text)
    assert Project.open(project.root).hashes(records) == expected
    result = run_duetml("status", "-p", str(project.root))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    # Rewritten whole, so the next reader gets a good cache.
    assert expected.keys() <= json.loads(index.read_text()).keys()


@pytest.mark.slow  # over 1.5 s here (subprocesses or a browser)
def test_training_survives_a_deeply_nested_hash_cache(tmp_path: Path) -> None:
    from helpers import make_project

    project = make_project(tmp_path / "p", per_category=4, categories=["hat", "shoes"])
    (project.state_dir / "cache" / "hashes.json").write_text(DEEP)
    result = run_duetml("train", "-p", str(project.root))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "text",
    [*WRONG_JSON, '{"approvals": 5}', '{"approvals": [' + DEEP + "]}"],
    ids=range(len(WRONG_JSON) + 2),
)
@pytest.mark.slow  # over 1.5 s here (subprocesses or a browser)
def test_an_approvals_file_of_the_wrong_json_type_approves_nothing_and_crashes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    from helpers import make_project
    from llm_fakes import FakeOpenAIServer

    home = tmp_path / "home"
    home.mkdir()
    (home / "approved-endpoints.json").write_text(text)
    monkeypatch.setenv("DUETML_HOME", str(home))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-user-own-key-0123456789abcdefXYZ")
    for name in ("DUETML_PASSIVE_LLM", "DUETML_PROACTIVE_LLM", "OLLAMA_HOST"):
        monkeypatch.delenv(name, raising=False)
    project = make_project(tmp_path / "p", per_category=2, categories=["hat"])
    with FakeOpenAIServer(models=["gpt-4o"]) as server:
        settings = project.root / "duetml.toml"
        settings.write_text(
            settings.read_text()
            + '\n[agents.passive]\nprovider = "openai"\nmodel = "gpt-4o"\n'
            + f'base_url = "{server.url}"\n'
        )
        status = run_duetml("llm", "status", "-p", str(project.root))
        assert status.returncode == 0, status.stderr
        asked = run_duetml("ask", "hello", "-p", str(project.root))
        assert asked.returncode == 7, asked.stderr  # waits for approval: nothing approved
        assert server.requests == []
        approved = run_duetml("llm", "approve", "-p", str(project.root))
        assert approved.returncode == 0, approved.stderr
        server.queue_reply("hello back")
        asked = run_duetml("ask", "hello", "-p", str(project.root))
        assert asked.returncode == 0, asked.stderr
        assert asked.stdout == "hello back\n"
    for result in (status, approved, asked):
        assert "Traceback" not in result.stderr


def test_the_event_log_is_private_like_the_rest_of_the_state(new_project: Project) -> None:
    """Issue 17, item 7: events.jsonl was 0644 where other state is 0600."""
    import stat

    log = new_project.state_dir / "events.jsonl"
    new_project.add_images("hat", demo_photos("hat", 1))
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    log.chmod(0o644)  # as an older duetml left it
    Project.open(new_project.root).log.record("test")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
