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
from helpers import demo_photos, free_port, read_only_view
from web_helpers import BASE, PORT, LiveServer, WebClient, fake_agents

from duetml.project import ImageRecord, Project
from duetml.web import create_app

JPEG_START = b"\xff\xd8"


def _client(root: Path) -> WebClient:
    """A client on the app for ``root``, started by the test once the project is as it wants
    (conftest's `client` starts before the test body)."""
    return WebClient(create_app(root, agents=fake_agents()[0], port=PORT), base_url=BASE)


def _secret_file(tmp_path: Path) -> Path:
    """A file outside the project that a planted link points at."""
    secret = tmp_path / "secret.txt"
    secret.write_text("the contents of a file outside the project")
    return secret


def _thumbnail_place(client: WebClient, project: Project, record: ImageRecord) -> Path:
    """Where the thumbnail cache keeps the photo's thumbnail, its folder made (nothing in it)."""
    digest = project.hashes([record])[record.rel]
    cached: Path = client.app.state.duetml.thumbs.path_for(digest)
    cached.parent.mkdir(parents=True, exist_ok=True)
    return cached


def test_a_symlink_planted_in_the_thumbnail_cache_is_not_served(
    project: Project, tmp_path: Path
) -> None:
    secret = _secret_file(tmp_path)
    record = project.images("train", "hat")[0]
    with _client(project.root) as client:
        cached = _thumbnail_place(client, project, record)
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


def test_a_webp_bomb_in_the_project_is_a_sentence_on_every_route(
    project: Project, tmp_path: Path
) -> None:
    """Issue 17, item 4: a 3.5 KB lossless WebP of 9450x9450 put in a category by hand cost
    1.44 GB per /api/image or thumbnail; now it is refused from its header, with a sentence."""
    from PIL import Image

    bomb = project.root / "train" / "hat" / "bomb.webp"
    Image.new("RGB", (9450, 9450), (200, 30, 30)).save(bomb, "WEBP", lossless=True)
    assert bomb.stat().st_size < 10_000
    record = next(r for r in project.images("train", "hat") if r.path.name == "bomb.webp")
    with _client(project.root) as client:
        for route in ("/api/image", "/api/thumb"):
            response = client.get(route, params={"image": record.rel})
            assert response.status_code == 415, route  # as every photo duetml cannot decode
            assert "MB of memory to decode" in response.json()["error"], route
        upload = client.post(
            "/api/upload?category=hat",
            files=[("files", ("bomb.webp", bomb.read_bytes(), "image/webp"))],
        )
        assert upload.status_code in (200, 400), upload.text
        assert "MB of memory to decode" in upload.text


@pytest.mark.parametrize("kind", ["zTXt", "iCCP"])
def test_an_upload_with_an_oversized_png_chunk_is_a_rejected_file_not_a_500(
    project: Project, kind: str
) -> None:
    from test_hardening_cli import _png_with_huge_chunk

    before = len(project.images("train", "hat"))
    good = demo_photos("shoes")[10].read_bytes()  # not in the project yet
    with _client(project.root) as client:
        response = client.post(
            "/api/upload?category=hat",
            files=[
                ("files", ("odd.png", _png_with_huge_chunk(kind), "image/png")),
                ("files", ("good.jpg", good, "image/jpeg")),
            ],
        )
    assert response.status_code == 200, response.text
    assert "could not be read" in response.text
    assert len(project.images("train", "hat")) == before + 1


def test_a_hard_link_planted_in_the_thumbnail_cache_is_not_served(
    project: Project, tmp_path: Path
) -> None:
    """Issue 17, item 7: a hard link is another name of the file itself, so the symbolic-link
    checks never see it; the thumbnail is made again instead, and the linked file untouched."""
    secret = _secret_file(tmp_path)
    record = project.images("train", "hat")[0]
    with _client(project.root) as client:
        cached = _thumbnail_place(client, project, record)
        os.link(secret, cached)
        response = client.get("/api/thumb", params={"image": record.rel})
        assert response.status_code == 200
        assert response.content.startswith(JPEG_START)
        assert b"outside the project" not in response.content
    assert secret.read_text() == "the contents of a file outside the project"
    assert cached.read_bytes().startswith(JPEG_START)  # the link replaced by a real thumbnail


@pytest.mark.slow  # over 1.5 s here (subprocesses or a browser)
@pytest.mark.browser
def test_the_page_takes_the_token_out_of_the_address_bar(project: Project) -> None:
    """Issue 17, item 7: the access token stayed in the address bar (history, a shared
    screen); the cookie the first answer set carries it from then on."""
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip(f"{chromium} is missing: install Debian's `chromium` package")
    from playwright.sync_api import sync_playwright

    token = "a-token-only-this-terminal-has-seen-0123"
    port = free_port()
    app = create_app(project.root, agents=fake_agents()[0], port=port, token=token)
    with LiveServer(app, port) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{server.url}?token={token}#data")
        page.wait_for_selector("body[data-ready=true]")
        assert token not in page.url and page.url.endswith("/#data")
        assert page.evaluate("window.history.length") >= 1
        # The page still works on the cookie: its listing shows the project's categories.
        page.wait_for_function("document.querySelectorAll('.thumb').length > 0")
        page.reload()
        page.wait_for_selector("body[data-ready=true]")
        assert token not in page.url
        browser.close()
