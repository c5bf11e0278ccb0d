"""The map of all photos and the data review, through the core and the web routes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import demo_photos, make_project
from litestar.testing import TestClient
from PIL import Image
from web_helpers import asgi_request

from duetml.datamap import layout_path, place_among, project_to_2d
from duetml.project import Project
from duetml.web import create_app

PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"
OK_HOST = f"127.0.0.1:{PORT}"


def ready_map(client: TestClient, timeout: float = 600) -> dict[str, Any]:
    """GET /api/map until the background layout is done (UMAP compiles on first use)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/api/map")
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
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


def test_projection_is_scaled_deterministic_and_keeps_groups_apart() -> None:
    rng = np.random.default_rng(0)
    groups = rng.normal(0, 1, (3, 64))
    features = np.concatenate([g + rng.normal(0, 0.05, (40, 64)) for g in groups])
    features = (features / np.linalg.norm(features, axis=1, keepdims=True)).astype(np.float32)
    coords, method = project_to_2d(features)
    again, _ = project_to_2d(features)
    assert method == "UMAP" and coords.shape == (120, 2)
    assert coords.min() >= 0 and coords.max() <= 1 and np.allclose(coords, again)
    # Each photo's nearest photo on the map is one of its own group.
    labels = np.repeat(np.arange(3), 40)
    distances = np.linalg.norm(coords[:, None] - coords[None], axis=2) + np.eye(120) * 9
    assert (labels[distances.argmin(axis=1)] == labels).mean() > 0.95
    few, method = project_to_2d(features[:5])
    assert method == "PCA" and few.shape == (5, 2)


# ----- the routes --------------------------------------------------------------------------------


@pytest.fixture
def client(tmp_path: Path):
    project = make_project(tmp_path / "proj", per_category=3)
    app = create_app(project.root, baseline=True, port=PORT)
    with TestClient(app, base_url=BASE) as test_client:
        test_client.project = project
        yield test_client


@pytest.fixture
def trained_client(trained_demo: Path):
    app = create_app(trained_demo, baseline=True, port=PORT)
    with TestClient(app, base_url=BASE) as test_client:
        test_client.project = Project.open(trained_demo)
        yield test_client


def test_map_waits_for_the_first_training_and_says_so(client: TestClient) -> None:
    body = client.get("/api/map").json()
    assert body["state"] == "none" and body["ids"] == [] and not body["computing"]
    assert body["missing"] == 12 and body["categories"] == ["hat", "pants", "shoes", "t-shirt"]
    state = client.project.state_dir / "cache"
    assert not layout_path(client.project).exists()
    assert not list(state.glob("features-*"))  # nothing extracted before training


def test_map_places_every_photo_and_follows_moves_and_additions(
    trained_client: TestClient,
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


def test_map_is_read_only_and_guarded(client: TestClient) -> None:
    app = client.app
    assert client.post("/api/map").status_code == 405
    refused = asgi_request(app, "GET", "/api/map", [("host", "evil.example:8765")])
    assert refused.status == 403 and "not allowed" in refused.json()["error"]
    ok = asgi_request(app, "GET", "/api/map", [("host", OK_HOST)])
    assert ok.status == 200 and ok.headers["content-security-policy"].startswith("default-src")
