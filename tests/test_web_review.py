"""The map of all photos and the data review, through the core and the web routes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from helpers import demo_photos
from PIL import Image
from test_web_browser import open_page, serving
from web_helpers import BASE, PORT, Watch, WebClient, asgi_request

from duetml.datamap import layout_path, place_among, project_to_2d
from duetml.project import Project
from duetml.web import create_app

OK_HOST = f"127.0.0.1:{PORT}"
pytestmark = pytest.mark.app(baseline=True)  # the `client` and `trained_client` fixtures


def ready_map(client: WebClient, timeout: float = 600) -> dict[str, Any]:
    """GET /api/map until the background layout is done (UMAP compiles on first use)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/api/map")
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body: dict[str, Any] = response.json()
        if not body["computing"]:
            return body
        assert time.monotonic() < deadline, "the map was not computed in time"
        time.sleep(0.5)


def positions(body: dict[str, Any]) -> dict[str, tuple[float, float]]:
    return {i: (x, y) for i, x, y in zip(body["ids"], body["x"], body["y"], strict=True)}


# ----- the core ----------------------------------------------------------------------------------


def test_place_among_puts_a_photo_beside_its_most_alike() -> None:
    rng = np.random.default_rng(1)
    centres = np.eye(4, 16, dtype=np.float32)
    known = np.repeat(centres, 10, axis=0) + rng.normal(0, 0.02, (40, 16)).astype(np.float32)
    known /= np.linalg.norm(known, axis=1, keepdims=True)
    coords = np.repeat(np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32), 10, axis=0)
    new = centres[[2, 1]] + 0.01
    placed = place_among(new, known, coords)
    assert np.allclose(placed, [[0, 1], [1, 0]], atol=0.05)


@pytest.mark.slow
def test_projection_is_scaled_and_keeps_groups_apart() -> None:
    rng = np.random.default_rng(0)
    groups = rng.normal(0, 1, (3, 64))
    features = np.concatenate([g + rng.normal(0, 0.05, (40, 64)) for g in groups])
    features = (features / np.linalg.norm(features, axis=1, keepdims=True)).astype(np.float32)
    coords, method = project_to_2d(features)
    assert method == "UMAP" and coords.shape == (120, 2)
    assert coords.min() >= 0 and coords.max() <= 1
    # Each photo's nearest photo on the map is one of its own group.
    labels = np.repeat(np.arange(3), 40)
    distances = np.linalg.norm(coords[:, None] - coords[None], axis=2) + np.eye(120) * 9
    assert (labels[distances.argmin(axis=1)] == labels).mean() > 0.95
    few, method = project_to_2d(features[:5])
    assert method == "PCA" and few.shape == (5, 2)


# ----- the routes --------------------------------------------------------------------------------


def test_map_waits_for_the_first_training_and_says_so(client: WebClient) -> None:
    body = client.get("/api/map").json()
    assert body["state"] == "none" and body["ids"] == [] and not body["computing"]
    assert body["missing"] == 12 and body["categories"] == ["hat", "pants", "shoes", "t-shirt"]
    state = client.project.state_dir / "cache"
    assert not layout_path(client.project).exists()
    assert not list(state.glob("features-*"))  # nothing extracted before training


@pytest.mark.slow
def test_map_places_every_photo_and_follows_moves_and_additions(
    trained_client: WebClient,
) -> None:
    client = trained_client
    project: Project = client.project
    first = client.get("/api/map").json()
    assert first["computing"] and first["state"] == "none"
    body = ready_map(client)
    train = {r.rel: r for r in project.images("train")}
    test = {r.rel: r for r in project.images("test")}
    assert body["state"] == "ready" and body["method"] == "UMAP" and body["missing"] == 0
    assert set(body["ids"]) == set(train) | set(test) and len(body["ids"]) == len(body["x"])
    assert all(0 <= v <= 1 for v in body["x"] + body["y"])
    for rel, category, is_test in zip(body["ids"], body["category"], body["test"], strict=True):
        record = train.get(rel) or test[rel]
        assert body["categories"][category] == record.category
        assert is_test == (record.split == "test")
    assert layout_path(project).is_file()
    again = client.get("/api/map").json()
    assert not again["computing"] and positions(again) == positions(body)

    # A move changes the colour, not the place, and needs no new layout.
    hat = sorted(r for r in train if r.startswith("train/hat/"))[0]
    moved = client.post("/api/images/move", json={"images": [hat], "category": "shoes"}).json()
    after = client.get("/api/map").json()
    assert not after["computing"] and after["state"] == "ready"
    new_id = moved["moved"][0]
    assert positions(after)[new_id] == positions(body)[hat]
    assert after["categories"][after["category"][after["ids"].index(new_id)]] == "shoes"

    # A new photo waits off the map (no features yet) while the layout is redone with it.
    extra = project.root.parent / "mirrored-shoe.jpg"
    with Image.open(demo_photos("shoes", 1)[0]) as photo:
        photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(extra, quality=90)
    assert project.add_images("shoes", [extra]).added
    outdated = client.get("/api/map").json()
    assert outdated["state"] == "outdated" and outdated["computing"] and outdated["missing"] == 1
    final = ready_map(client)
    assert final["state"] == "ready" and final["missing"] == 0
    assert len(final["ids"]) == len(body["ids"]) + 1


def test_map_is_read_only_and_guarded(client: WebClient) -> None:
    app = client.app
    assert client.post("/api/map").status_code == 405
    refused = asgi_request(app, "GET", "/api/map", [("host", "evil.example:8765")])
    assert refused.status == 403 and "not allowed" in refused.json()["error"]
    ok = asgi_request(app, "GET", "/api/map", [("host", OK_HOST)])
    assert ok.status == 200 and ok.headers["content-security-policy"].startswith("default-src")


# ----- the review routes ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def _planted_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The demo project with 5 shoe photos filed under hat (a user's slip) and two copies of
    a hat photo, trained once."""
    from duetml.demo import create_demo_project
    from duetml.training import train_project

    project = create_demo_project(tmp_path_factory.mktemp("planted") / "demo")
    shoes = [r.rel for r in project.images("train", "shoes")][:5]
    planted = project.move_images(shoes, "hat")
    # Two resized, re-encoded copies of one hat photo: a finding of three photos.
    original = project.images("train", "hat")[0]
    with Image.open(original.path) as image:
        for number, scale in enumerate((0.9, 0.8), start=1):
            size = (int(image.width * scale), int(image.height * scale))
            image.convert("RGB").resize(size).save(
                project.category_dir("hat") / f"copy-{number}.jpg", quality=85
            )
    train_project(project)
    return project.root, planted


class PlantedClient(WebClient):
    planted: list[str]  # the shoe photos filed under hat


@pytest.fixture
def planted(_planted_template: tuple[Path, list[str]], tmp_path: Path) -> Iterator[PlantedClient]:
    import shutil

    root = tmp_path / "planted"
    shutil.copytree(_planted_template[0], root, symlinks=True)
    app = create_app(root, baseline=True, port=PORT)
    with PlantedClient(app, base_url=BASE) as test_client:
        test_client.project = Project.open(root)
        test_client.planted = _planted_template[1]
        yield test_client


def files_of(project: Project) -> list[str]:
    return sorted(r.rel for r in project.images("train") + project.images("test"))


def mislabel(body: dict[str, Any], planted: list[str]) -> dict[str, Any]:
    return mislabels(body, planted)[0]


def mislabels(body: dict[str, Any], planted: list[str]) -> list[dict[str, Any]]:
    return [
        f for f in body["findings"] if f["kind"] == "mislabel" and set(f["photos"]) <= set(planted)
    ]


def copies(body: dict[str, Any]) -> dict[str, Any]:
    """The group of the hat photo and its two copies."""
    return next(
        f
        for f in body["findings"]
        if f["kind"] == "near_duplicate" and any(p.endswith("copy-1.jpg") for p in f["photos"])
    )


@pytest.mark.slow
def test_review_lists_the_planted_mislabel_and_reads_only(planted: PlantedClient) -> None:
    project: Project = planted.project
    before = (files_of(project), project.undo_history())
    response = planted.get("/api/review")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json()
    found = mislabels(body, planted.planted)  # one finding per photo
    assert len(found) >= 4 and all(len(f["photos"]) == 1 for f in found)
    for each in found:
        assert each["suggestion"]["to"] == "shoes" and each["message"].endswith(".")
        assert each["suggestion"]["label"].startswith("Move")
    assert body["counts"]["mislabel"] >= 1 and body["stale"] is False
    assert (files_of(project), project.undo_history()) == before  # a GET changes nothing


@pytest.mark.slow
def test_apply_moves_the_photos_in_one_undoable_step(planted: PlantedClient) -> None:
    project: Project = planted.project
    before = files_of(project)
    found = mislabel(planted.get("/api/review").json(), planted.planted)
    response = planted.post("/api/review/apply", json={"id": found["id"]})
    assert response.status_code == 200, response.text
    assert response.json()["message"] == "Moved 1 photo to 'shoes'."
    names = {p.split("/")[-1] for p in found["photos"]}
    assert names <= {r.path.name for r in project.images("train", "shoes")}
    assert not names & {r.path.name for r in project.images("train", "hat")}
    assert planted.post("/api/undo").status_code == 200
    assert files_of(project) == before
    events = (project.state_dir / "events.jsonl").read_text()
    assert '"apply_suggestion"' in events and '"origin": "review"' in events


def test_remove_instead_and_keep_as_is(planted: PlantedClient) -> None:
    project: Project = planted.project
    before = files_of(project)
    body = planted.get("/api/review").json()
    found = mislabel(body, planted.planted)
    removed = planted.post("/api/review/apply", json={"id": found["id"], "action": "remove"})
    assert removed.status_code == 200 and "Removed" in removed.json()["message"]
    assert not set(found["photos"]) & set(files_of(project))
    planted.post("/api/undo")
    assert files_of(project) == before

    version = planted.app.state.duetml.versions["review"]
    kept = planted.post("/api/review/dismiss", json={"ids": [found["id"]]})
    assert kept.status_code == 200 and kept.json()["dismissed"] == 1
    after = planted.get("/api/review").json()
    assert found["id"] not in {f["id"] for f in after["findings"]} and after["dismissed"] >= 1
    assert planted.app.state.duetml.versions["review"] != version  # other tabs hear of it
    assert files_of(project) == before


def test_apply_and_keep_chosen_photos_only_and_undo_a_keep(planted: PlantedClient) -> None:
    project: Project = planted.project
    before = files_of(project)
    found = copies(planted.get("/api/review").json())
    assert len(found["photos"]) == 3
    first, rest = found["photos"][1], [p for p in found["photos"] if p != found["photos"][1]]
    removed = planted.post("/api/review/apply", json={"id": found["id"], "photos": [first]})
    assert removed.json()["message"].startswith("Removed 1 photo")
    now = files_of(project)
    assert first not in now and all(p in now for p in rest)
    planted.post("/api/undo")
    assert files_of(project) == before

    kept = planted.post("/api/review/dismiss", json={"ids": [found["id"]], "photos": [first]})
    assert kept.status_code == 200
    assert kept.json()["message"] == "Kept 1 photo of a finding as it is."
    listed = [f for f in planted.get("/api/review").json()["findings"] if rest[0] in f["photos"]]
    assert listed and first not in listed[0]["photos"]  # the others are still raised
    assert "keep 1 photo of a finding as is" in project.undo_history()[0]
    assert planted.post("/api/undo").status_code == 200  # the keep is undone: raised again
    again = [f for f in planted.get("/api/review").json()["findings"] if f["id"] == found["id"]]
    assert again and set(again[0]["photos"]) == set(found["photos"])
    assert files_of(project) == before


def test_chosen_photos_are_checked(planted: PlantedClient) -> None:
    project: Project = planted.project
    before = (files_of(project), project.undo_history())
    found = mislabel(planted.get("/api/review").json(), planted.planted)
    other = next(p for p in files_of(project) if p not in found["photos"])
    for path, body in (
        ("/api/review/apply", {"id": found["id"], "photos": [other]}),
        ("/api/review/apply", {"id": found["id"], "photos": []}),
        ("/api/review/apply", {"id": found["id"], "photos": ["x"] * 1001}),
        ("/api/review/dismiss", {"ids": [found["id"]], "photos": ["../../duetml.toml"]}),
    ):
        response = planted.post(path, json=body)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert error.endswith(".") and "Traceback" not in error
    assert (
        "is not one of this finding's photos"
        in planted.post("/api/review/apply", json={"id": found["id"], "photos": [other]}).json()[
            "error"
        ]
    )
    assert (files_of(project), project.undo_history()) == before


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/review/apply", {"id": "not a finding"}, 404),
        ("/api/review/apply", {"id": "0123456789"}, 404),
        ("/api/review/apply", {"id": "0123456789", "action": "burn"}, 400),
        ("/api/review/apply", {}, 400),
        ("/api/review/dismiss", {"ids": []}, 400),
        ("/api/review/dismiss", {"ids": ["0123456789"]}, 404),
    ],
)
def test_bad_review_requests_get_one_sentence(
    planted: PlantedClient, path: str, body: dict[str, Any], status: int
) -> None:
    before = files_of(planted.project)
    response = planted.post(path, json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error.endswith(".") and "Traceback" not in error and "/" not in error.split(":")[0]
    assert files_of(planted.project) == before


def test_cross_site_review_writes_are_refused(planted: PlantedClient) -> None:
    found = mislabel(planted.get("/api/review").json(), planted.planted)
    before = files_of(planted.project)
    for extra in ([("origin", "http://evil.example")], [("sec-fetch-site", "cross-site")]):
        response = asgi_request(
            planted.app,
            "POST",
            "/api/review/apply",
            [("host", OK_HOST), ("content-type", "application/json"), *extra],
            [f'{{"id": "{found["id"]}"}}'.encode()],
        )
        assert response.status == 403
    assert files_of(planted.project) == before


# ----- the page, in headless Chromium -------------------------------------------------------------


def until(condition: Any, timeout: float = 60.0, what: str = "the page") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen in time"
        time.sleep(0.2)


@pytest.fixture
def planted_root(_planted_template: tuple[Path, list[str]], tmp_path: Path) -> Path:
    import shutil

    root = tmp_path / "planted"
    shutil.copytree(_planted_template[0], root, symlinks=True)
    return root


@pytest.mark.slow
@pytest.mark.browser
def test_review_panel_moves_the_planted_photos_and_undo_puts_them_back(
    browser: Any, watch: Watch, planted_root: Path
) -> None:
    project = Project.open(planted_root)
    before = files_of(project)
    with serving(planted_root, baseline=True) as server:
        context, page = open_page(browser, server.url, watch)
        flagged = page.locator("#findings li[data-kind=mislabel]").filter(
            has_text="looks like 'shoes'"
        )
        flagged.first.wait_for()
        count = flagged.count()
        assert count >= 4  # one finding per planted photo, each with its own button
        finding = flagged.first
        photo = finding.locator(".finding-photo-row").get_attribute("data-photo")
        shoes = len(project.images("train", "shoes"))
        finding.get_by_role("button", name="Move to shoes").click()
        page.locator(".toast", has_text="Moved 1 photo to 'shoes'").wait_for()
        until(lambda: len(project.images("train", "shoes")) == shoes + 1, what="the move")
        page.locator(f".finding-photo-row[data-photo='{photo}']").wait_for(state="detached")
        until(lambda: flagged.count() == count - 1, what="the new listing")
        page.click("#undo-btn")
        page.locator(".toast", has_text="Undone").wait_for()
        until(lambda: files_of(project) == before, what="the undo")
        page.locator(f".finding-photo-row[data-photo='{photo}']").wait_for()
        context.close()
    assert not watch.errors and not watch.dialogs


@pytest.mark.slow
@pytest.mark.browser
def test_map_draws_every_photo_shows_it_on_hover_and_moves_a_drawn_selection(
    browser: Any, watch: Watch, planted_root: Path
) -> None:
    project = Project.open(planted_root)
    every = files_of(project)
    with serving(planted_root, baseline=True) as server:
        context, page = open_page(browser, server.url, watch)
        canvas = page.locator("#map-canvas")
        until(
            lambda: (
                canvas.get_attribute("data-points") == str(len(every))
                and not page.evaluate("window.duetmlMap.data.computing")
            ),
            timeout=900,
            what="the map",
        )
        ids = page.evaluate("window.duetmlMap.data.ids")
        assert sorted(ids) == every
        # Something was really drawn: the canvas has coloured pixels.
        inked = page.evaluate(
            "(() => { const c = document.querySelector('#map-canvas');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()"
        )
        assert inked > len(every) * 10
        # The flagged photos are ringed and listed by the legend.
        flagged = page.evaluate("window.duetmlMap.data.flag.filter((f) => f >= 0).length")
        assert flagged >= 4 and "flagged" in page.locator("#map-legend").inner_text()

        box = canvas.bounding_box()
        screen = page.evaluate(
            "Array.from(window.duetmlMap.sx).map((x, i) => [x, window.duetmlMap.sy[i]])"
        )
        target = next(i for i, rel in enumerate(ids) if rel.startswith("train/pants/"))
        x, y = screen[target]
        page.mouse.move(box["x"] + x, box["y"] + y)
        tip = page.locator("#map-tip")
        tip.wait_for()
        src = tip.locator("img").get_attribute("src")
        hovered = page.evaluate("window.duetmlMap.data.ids[window.duetmlMap.hover]")
        assert f"image={quote(hovered, safe='')}" in src
        until(lambda: tip.locator("img").evaluate("(img) => img.naturalWidth") > 0)
        assert "pants" in tip.inner_text()

        # A click opens the photo.
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.locator("#viewer[open]").wait_for()
        assert quote(hovered, safe="") in page.locator("#viewer-img").get_attribute("src")
        page.keyboard.press("Escape")

        # Draw a rectangle around the training photos nearest to it; move them to "shoes".
        near = sorted(
            (i for i, rel in enumerate(ids) if rel.startswith("train/")),
            key=lambda i: (screen[i][0] - x) ** 2 + (screen[i][1] - y) ** 2,
        )[:3]
        left = min(screen[i][0] for i in near) - 3
        right = max(screen[i][0] for i in near) + 3
        top = min(screen[i][1] for i in near) - 3
        bottom = max(screen[i][1] for i in near) + 3
        inside = [
            ids[i]
            for i, (px, py) in enumerate(screen)
            if left <= px <= right and top <= py <= bottom
        ]
        corners = [(left, top), (right, top), (right, bottom), (left, bottom)]
        page.mouse.move(box["x"] + left, box["y"] + top)
        page.mouse.down()
        for cx, cy in corners[1:] + corners[:1]:
            page.mouse.move(box["x"] + cx, box["y"] + cy, steps=8)
        page.mouse.up()
        bar = page.locator("#map-selection")
        bar.wait_for()
        word = "photo" if len(inside) == 1 else "photos"
        assert bar.inner_text().startswith(f"{len(inside)} {word} selected")
        page.select_option("#map-move-target", "shoes")
        page.click("#map-move")
        page.locator(".toast", has_text="to “shoes”").wait_for()
        names = {rel.split("/")[-1] for rel in inside}
        until(
            lambda: (
                names
                <= {r.path.name for r in project.images("train", "shoes")}
                | {r.path.name for r in project.images("test", "shoes")}
            ),
            what="the move",
        )
        page.click("#undo-btn")
        until(lambda: files_of(project) == every, what="the undo")
        context.close()
    assert not watch.errors and not watch.dialogs


@pytest.mark.slow  # over 1.5 s here (subprocesses or a browser)
@pytest.mark.browser
def test_review_panel_removes_one_copy_and_undo_brings_back_a_kept_finding(
    browser: Any, watch: Watch, planted_root: Path
) -> None:
    from duetml.review import review_project

    project = Project.open(planted_root)
    group = next(
        f
        for f in review_project(project).findings
        if f.kind == "near_duplicate" and any(p.endswith("copy-1.jpg") for p in f.photos)
    )
    assert len(group.photos) == 3
    copy = next(p for p in group.photos if p.endswith("copy-1.jpg"))
    others = [p for p in group.photos if p != copy]
    with serving(planted_root, baseline=True) as server:
        context, page = open_page(browser, server.url, watch)
        finding = page.locator(f"#findings li[data-finding='{group.id}']")
        finding.wait_for()
        assert finding.locator(".finding-photo-row").count() == 3
        row = finding.locator(f".finding-photo-row[data-photo='{copy}']")
        row.get_by_role("button", name="Remove").click()
        page.locator(".toast", has_text="Removed 1 photo").wait_for()
        until(lambda: copy not in files_of(project), what="the removal")
        assert all(p in files_of(project) for p in others)  # the other copies stay
        rest = page.locator("#findings li[data-kind=near_duplicate]").filter(
            has=page.locator(f".finding-photo-row[data-photo='{others[0]}']")
        )
        until(lambda: rest.locator(".finding-photo-row").count() == 2, what="the new listing")
        page.screenshot(path=str(planted_root.parent / "review-panel.png"))
        rest.get_by_role("button", name="Keep all as they are").click()
        page.locator(".toast", has_text="Kept as it is").wait_for()
        rest.wait_for(state="detached")
        page.click("#undo-btn")
        page.locator(".toast", has_text="Undone").wait_for()
        rest.wait_for()  # the kept finding is back
        assert rest.locator(".finding-photo-row").count() == 2
        context.close()
    assert not watch.errors and not watch.dialogs
