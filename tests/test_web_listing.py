"""Issue 12: the server at 26,000 photos. The listing the page loads first is kept per project
state and re-read per changed folder, so it must still show every change made anywhere (the
page, the CLI, a file manager) at once, and a repeated request must not touch every photo.
(Its speed is measured in bench/bench_web_load.py --scale, not here.)"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import demo_photos, run_duetml
from web_helpers import WebClient

from duetml.project import Project

pytestmark = [pytest.mark.project(per_category=4), pytest.mark.app(baseline=True)]


def _listed(client: WebClient) -> dict[str, list[str]]:
    listing = client.get("/api/categories").json()
    return {c["name"]: [i["id"] for i in c["images"]] for c in listing["categories"]}


def _cli(*args: str) -> None:
    result = run_duetml(*args)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_the_listing_shows_every_change_made_anywhere_at_once(
    client: WebClient, project: Project
) -> None:
    before = _listed(client)
    assert before == {
        c.name: sorted(r.rel for r in project.images("train", c.name)) for c in project.categories()
    }
    root = str(project.root)
    # The CLI (another process): a rename, then an undo and a redo.
    _cli("categories", "rename", "hat", "cap", "-p", root)
    assert "cap" in _listed(client) and "hat" not in _listed(client)
    _cli("undo", "-p", root)
    assert _listed(client) == before
    _cli("redo", "-p", root)
    assert sorted(_listed(client)) == sorted(["cap", *(n for n in before if n != "hat")])
    _cli("undo", "-p", root)
    # A file manager: a photo copied in, one deleted, one moved between folders.
    shutil.copy(demo_photos("hat", 1, skip=20)[0], project.root / "train" / "hat" / "new.jpg")
    (project.root / before["shoes"][0]).unlink()
    moved = Path(before["pants"][0]).name
    os.replace(project.root / before["pants"][0], project.root / "train" / "t-shirt" / moved)
    now = _listed(client)
    assert "train/hat/new.jpg" in now["hat"] and len(now["hat"]) == 5
    assert before["shoes"][0] not in now["shoes"] and len(now["shoes"]) == 3
    assert f"train/t-shirt/{moved}" in now["t-shirt"] and len(now["pants"]) == 3
    # The status follows too (counts, and what Undo would undo).
    status = client.get("/api/status").json()
    counts = {c["name"]: c["images"] for c in status["categories"]}
    assert counts["hat"] == 5 and counts["shoes"] == 3 and counts["t-shirt"] == 5
    client.post("/api/categories/add", json={"name": "bags"})
    assert client.get("/api/status").json()["undo"][0] == "add category 'bags'"
    assert _listed(client)["bags"] == []


def test_a_repeated_listing_does_not_stat_every_photo(
    client: WebClient, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = len(project.images("train"))
    client.get("/api/categories")
    client.get("/api/status")
    touched: list[Any] = []
    real_stat = os.stat

    def counting_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if str(path).lower().endswith(".jpg"):
            touched.append(path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    for _ in range(3):
        assert sum(len(v) for v in _listed(client).values()) == photos
        client.get("/api/status")
    assert touched == []
    # One photo added: only its folder is read again.
    project.add_images("hat", demo_photos("hat", 1, skip=20))
    touched.clear()
    assert len(_listed(client)["hat"]) == 5
    assert 0 < len(touched) <= 5
    assert all("/train/hat/" in str(path) for path in touched)


def test_the_review_is_kept_per_state_and_follows_changes(
    client: WebClient, project: Project
) -> None:
    def few(review: dict[str, Any]) -> set[str]:
        return {
            name
            for f in review["findings"]
            for name in f.get("categories", [])
            if "only" in f["message"]
        }

    first = client.get("/api/review").json()
    assert client.get("/api/review").json() == first  # the same answer, from the cache
    assert "hat" in few(first)
    for photo in demo_photos("hat", 3, skip=20):  # by hand: a file manager
        shutil.copy(photo, project.root / "train" / "hat" / photo.name)
    assert "hat" not in few(client.get("/api/review").json())
