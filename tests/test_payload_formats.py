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
