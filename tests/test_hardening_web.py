"""The web UI under issue 7 (items 2, 4, 5, 6): a planted thumbnail link is refused, a damaged
journal or a deeply nested body gets a sentence, a read-only project still shows its photos,
and photos named by hand with odd characters show working thumbnails."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import demo_photos, free_port, make_project, read_only_view
from litestar.testing import TestClient
from web_helpers import LiveServer, fake_agents

from duetml.project import Project
from duetml.web import create_app

PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"
JPEG_START = b"\xff\xd8"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "proj", per_category=3)


def _client(root: Path) -> TestClient:
    return TestClient(create_app(root, agents=fake_agents()[0], port=PORT), base_url=BASE)


def test_a_symlink_planted_in_the_thumbnail_cache_is_not_served(
    project: Project, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the contents of a file outside the project")
    record = project.images("train", "hat")[0]
    digest = project.hashes([record])[record.rel]
    with _client(project.root) as client:
        cached = client.app.state.duetml.thumbs.path_for(digest)
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.symlink_to(secret)
        response = client.get("/api/thumb", params={"image": record.rel})
        assert response.status_code == 400
        assert "symbolic link" in response.json()["error"]
        assert b"outside the project" not in response.content
        # A link on the way (the two-letter folder) is refused the same way.
        cached.unlink()
        cached.parent.rmdir()
        cached.parent.symlink_to(tmp_path)
        response = client.get("/api/thumb", params={"image": record.rel})
        assert response.status_code == 400
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj", "secret.txt"]


@pytest.mark.parametrize(
    "damage", [[5, "x"], [{"summary": "m", "moves": [["a", "b", "c"]]}], {"removed_dirs": 5}]
)
def test_a_damaged_journal_gives_sentences_not_500s(project: Project, damage: object) -> None:
    project.journal.path.write_text(json.dumps(damage))
    with _client(project.root) as client:
        status = client.get("/api/status")
        assert status.status_code == 200
        assert status.json()["undo"] and all(isinstance(x, str) for x in status.json()["undo"])
        undo = client.post("/api/undo")
        assert 400 <= undo.status_code < 500
        error = undo.json()["error"]
        assert error.count(".") <= 3 and "Traceback" not in error
        assert "cannot be undone" in error or "could not be read" in error


def test_json_nested_200000_levels_deep_is_a_400(project: Project) -> None:
    body = "[" * 200_000 + "]" * 200_000
    with _client(project.root) as client:
        for path in ("/api/categories/add", "/api/images/move", "/api/categories/merge"):
            response = client.post(path, content=body, headers={"content-type": "application/json"})
            assert response.status_code == 400, path
            assert "nested too deeply" in response.json()["error"]
        assert client.get("/api/categories").status_code == 200  # the server carries on


@pytest.fixture
def read_only(project: Project, tmp_path: Path) -> Iterator[Path]:
    """The project seen through a read-only bind mount (root can write anything otherwise)."""
    with read_only_view(project.root, tmp_path) as view:
        yield view


def test_a_read_only_project_still_shows_thumbnails(read_only: Path) -> None:
    with _client(read_only) as client:
        listing = client.get("/api/categories").json()
        ids = [i["id"] for c in listing["categories"] for i in c["images"]]
        assert len(ids) == 12  # four categories of three
        for image_id in ids[:3]:
            response = client.get("/api/thumb", params={"image": image_id})
            assert response.status_code == 200 and response.content.startswith(JPEG_START)
        assert client.get("/api/status").status_code == 200
        refused = client.post("/api/categories/add", json={"name": "new"})
        assert refused.status_code >= 400 and "error" in refused.json()


ODD_NAMES = [
    'colon: question? "quoted".jpg',
    "tab\there.jpg",
    "percent %41 plus+hash#.jpg",
    "long " + "x" * 240 + ".jpg",
]


def test_photos_named_by_hand_with_odd_characters_have_thumbnails(project: Project) -> None:
    folder = project.root / "train" / "hat"
    for name, photo in zip(ODD_NAMES, demo_photos("hat", 4, skip=10), strict=True):
        shutil.copy(photo, folder / name)
    with _client(project.root) as client:
        listing = client.get("/api/categories").json()
        ids = {i["id"] for c in listing["categories"] for i in c["images"]}
        for name in ODD_NAMES:
            assert f"train/hat/{name}" in ids
            # Exactly the URL the page builds (encodeURIComponent).
            url = f"/api/thumb?image={quote(f'train/hat/{name}', safe='')}"
            response = client.get(url)
            assert response.status_code == 200, (name, response.text)
            assert response.content.startswith(JPEG_START)
        moved = client.post(
            "/api/images/move", json={"images": [f"train/hat/{ODD_NAMES[0]}"], "category": "shoes"}
        )
        assert moved.status_code == 200, moved.text


@pytest.mark.slow
@pytest.mark.browser
def test_odd_names_show_working_thumbnails_on_the_page(project: Project) -> None:
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip(f"{chromium} is missing: install Debian's `chromium` package")
    from playwright.sync_api import sync_playwright

    folder = project.root / "train" / "hat"
    for name, photo in zip(ODD_NAMES, demo_photos("hat", 4, skip=10), strict=True):
        shutil.copy(photo, folder / name)
    port = free_port()
    app = create_app(project.root, agents=fake_agents()[0], port=port)
    with LiveServer(app, port) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1440, "height": 1400})
        page.set_default_timeout(30_000)
        page.goto(server.url)
        page.wait_for_selector("body[data-ready=true]")
        for name in ODD_NAMES:
            page.wait_for_function(
                """(id) => {
                    const node = [...document.querySelectorAll(".thumb")]
                        .find((n) => n.dataset.id === id);
                    if (!node) return false;
                    node.scrollIntoView();
                    const img = node.querySelector("img");
                    return img.complete && img.naturalWidth > 0;
                }""",
                arg=f"train/hat/{name}",
            )
        page.screenshot(path=str(Path(os.environ.get("TMPDIR", "/tmp")) / "duetml-odd-names.png"))
        browser.close()
