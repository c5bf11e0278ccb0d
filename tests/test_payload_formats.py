"""Files an earlier duetml wrote still load into the declared payload types, and what the
types write now reads back the same (tests/fixtures/old_formats holds files written by the
code before the payloads became msgspec Structs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgspec

from duetml.project import Project
from duetml.review import Finding, Suggestion
from duetml.review.cache import CACHE_FILE, read_cache, write_cache

OLD = Path(__file__).parent / "fixtures" / "old_formats"


def test_a_review_cache_written_before_the_structs_still_loads(demo_project: Project) -> None:
    old = json.loads((OLD / "review.json").read_text("utf-8"))
    (demo_project.state_dir / "cache").mkdir(parents=True, exist_ok=True)
    shutil.copy(OLD / "review.json", demo_project.state_dir / CACHE_FILE)
    assert read_cache(demo_project, "another key") is None
    cached = read_cache(demo_project, old["key"])
    assert cached is not None
    findings, unreviewed, hidden = cached
    assert (unreviewed, hidden) == (old["unreviewed"], old["hidden"])
    assert [f.id for f in findings] == [f["id"] for f in old["findings"]]
    first = findings[0]
    assert first.kind == "mislabel" and isinstance(first.suggestion, Suggestion)
    assert first.suggestion.action == "move" and first.suggestion.to == "hat"
    assert first.photos == tuple(old["findings"][0]["photos"])
    assert first.details["label_quality"] == old["findings"][0]["details"]["label_quality"]
    # Written again, the file says exactly what the old one said.
    write_cache(demo_project, old["key"], findings, unreviewed, hidden)
    assert json.loads((demo_project.state_dir / CACHE_FILE).read_text("utf-8")) == old


def test_a_cached_finding_of_an_unknown_kind_or_shape_is_recomputed(
    demo_project: Project,
) -> None:
    old = json.loads((OLD / "review.json").read_text("utf-8"))
    (demo_project.state_dir / "cache").mkdir(parents=True, exist_ok=True)
    path = demo_project.state_dir / CACHE_FILE
    for change in (
        {"kind": "sideways"},
        {"photos": "train/hat/x.jpg"},
        {"suggestion": {"action": "burn"}},
        {"score": "high"},
    ):
        damaged = {**old, "findings": [{**old["findings"][0], **change}]}
        path.write_text(json.dumps(damaged), "utf-8")
        assert read_cache(demo_project, old["key"]) is None, change


def test_the_review_json_keeps_its_field_names() -> None:
    """The page (duetml/web/static/js) and `duetml review --json` read these names."""
    finding = msgspec.convert(
        json.loads((OLD / "review.json").read_text("utf-8"))["findings"][0], Finding
    )
    data = msgspec.to_builtins(finding)
    assert set(data) == {
        "id",
        "kind",
        "photos",
        "categories",
        "score",
        "message",
        "suggestion",
        "details",
    }
    assert set(data["suggestion"]) == {"action", "photos", "to", "categories", "label"}


def test_a_journal_written_before_still_undoes_and_redoes(tmp_path: Path) -> None:
    """journal.json as the previous code wrote it (an import, a move, a keep's redo entry):
    its move is undone on the demo, whose photo names are their content's hash."""
    from duetml.demo import create_demo_project

    project = create_demo_project(tmp_path / "demo")
    old = json.loads((OLD / "journal.json").read_text("utf-8"))
    move = next(e for e in old if e["kind"] == "move")
    for source, destination in move["moves"]:  # as the move left them
        (project.root / destination).parent.mkdir(parents=True, exist_ok=True)
        (project.root / source).rename(project.root / destination)
    shutil.copy(OLD / "journal.json", project.state_dir / "journal.json")
    assert project.undo_history()[:2] == [move["summary"], old[0]["summary"]]
    assert project.redo_history() == ["keep a finding as is"]
    project.undo_once()
    for source, destination in move["moves"]:
        assert (project.root / source).is_file() and not (project.root / destination).exists()
    assert project.redo_history()[0] == move["summary"]
    project.redo()
    for source, destination in move["moves"]:
        assert (project.root / destination).is_file() and not (project.root / source).exists()


def test_a_kept_finding_file_written_before_still_hides_it(demo_project: Project) -> None:
    from duetml.review.fixes import KEPT_DIR, read_dismissed

    old = json.loads((OLD / "review-kept.json").read_text("utf-8"))
    (demo_project.state_dir / KEPT_DIR).mkdir(parents=True)
    shutil.copy(OLD / "review-kept.json", demo_project.state_dir / KEPT_DIR / "1-ab.json")
    kept = read_dismissed(demo_project)
    assert kept.ids == old["ids"] and kept.photos == old["photos"]
    # A damaged file keeps nothing, and the others still count.
    (demo_project.state_dir / KEPT_DIR / "2-cd.json").write_text('{"ids": [1, 2]}')
    assert read_dismissed(demo_project).ids == old["ids"]


def test_a_conversation_written_before_still_loads(tmp_path: Path) -> None:
    from duetml.agents.conversation import ConversationStore
    from duetml.review import suggestion_from

    (tmp_path / "conversation.jsonl").write_text(
        (OLD / "conversation.jsonl").read_text("utf-8") + "not json\n", "utf-8"
    )
    store = ConversationStore(tmp_path)
    messages = store.messages()
    assert [(m["role"], m["kind"]) for m in messages] == [
        ("assistant", "greeting"),
        ("user", "chat"),
        ("assistant", "chat"),
        ("assistant", "proactive"),
    ]
    stored = messages[2]["proposals"][0]
    suggestion = suggestion_from(stored["suggestion"])
    assert suggestion.action == "move" and suggestion.to == "hat"
    assert suggestion.photos == ("train/pants/x.jpg",)
    store.append(("user", "chat", "and now?"))
    assert len(store.messages()) == 5 and store.messages()[2] == messages[2]


def test_a_stored_suggestion_of_the_wrong_shape_is_one_sentence() -> None:
    import pytest

    from duetml.errors import DuetmlError
    from duetml.review import suggestion_from

    for bad in ({"action": "burn"}, {"action": "move", "photos": [1]}, "move", None):
        with pytest.raises(DuetmlError, match="A suggestion needs an action"):
            suggestion_from(bad)


def test_a_finding_with_numpy_figures_is_written_and_read_back(demo_project: Project) -> None:
    """The detectors compute with numpy: its float64 reaches a finding's details."""
    import numpy as np

    from duetml.review import make_finding

    finding = make_finding(
        "mislabel",
        ["train/hat/a.jpg"],
        ["hat", "pants"],
        np.float64(0.51234567),
        "m",
        Suggestion("move", ("train/hat/a.jpg",), "pants"),
        # numpy scalars, as the detectors compute them (what this test is about)
        {"label_quality": np.float64(0.25), "margin": np.float32(0.5), "note": "x"},  # type: ignore[dict-item]
    )
    write_cache(demo_project, "k", [finding], 0, 0)
    cached = read_cache(demo_project, "k")
    assert cached is not None and cached[0] == [finding]
    assert cached[0][0].details == {"label_quality": 0.25, "margin": 0.5, "note": "x"}
    assert cached[0][0].score == 0.5123
