"""The page's export download (GET /api/export) and the live camera's predictions, through
Litestar's TestClient; the page itself is driven in Chromium by tests/test_web_camera.py."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import demo_photos
from web_helpers import WebClient

from duetml.export import EXPORT_FILES
from duetml.project import Project


def _events(root: Path) -> list[dict[str, object]]:
    path = Project.open(root).log.path
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_export_zip_holds_what_duetml_export_writes_and_it_runs_without_duetml(
    trained_client: WebClient, trained_demo: Path, tmp_path: Path
) -> None:
    response = trained_client.get("/api/export")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == 'attachment; filename="demo-model.zip"'
    assert response.headers["cache-control"] == "no-store"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == sorted(f"demo-model/{name}" for name in EXPORT_FILES)
    labels = json.loads(archive.read("demo-model/labels.json"))
    assert labels["categories"] == sorted(p.name for p in (trained_demo / "train").iterdir())
    archive.extractall(tmp_path)

    # The unzipped predict.py, in an isolated interpreter, agrees with the page's own predict.
    photos = sorted((trained_demo / "test").glob("*/*.jpg"))[:6]
    page = trained_client.post(
        "/api/predict", files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    ).json()["predictions"]
    script = tmp_path / "demo-model" / "predict.py"
    result = subprocess.run(
        [sys.executable, "-I", str(script), "--json", *map(str, photos)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["category"] for r in rows] == [p["category"] for p in page]


@pytest.mark.slow
def test_export_without_a_model_says_to_train_in_page_words(client: WebClient) -> None:
    response = client.get("/api/export")
    assert response.status_code == 409
    error = response.json()["error"]
    assert "Train" in error and "`" not in error and "duetml train" not in error


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_export_fetched_by_another_site_is_refused(trained_client: WebClient, site: str) -> None:
    response = trained_client.get("/api/export", headers={"Sec-Fetch-Site": site})
    assert response.status_code == 403
    assert "other sites" in response.json()["error"]
    assert "zip" not in response.headers["content-type"]


@pytest.mark.parametrize("site", ["same-origin", "none"])
def test_export_from_the_page_or_a_typed_address_is_served(
    trained_client: WebClient, site: str
) -> None:
    response = trained_client.get("/api/export", headers={"Sec-Fetch-Site": site})
    assert response.status_code == 200 and response.content[:2] == b"PK"


def test_export_from_a_foreign_host_is_refused(trained_client: WebClient) -> None:
    response = trained_client.get("/api/export", headers={"Host": "evil.example"})
    assert response.status_code == 403 and response.content[:2] != b"PK"


def test_the_camera_is_allowed_for_the_page_only(trained_client: WebClient) -> None:
    for path in ("/", "/api/categories", "/api/nothing"):
        policy = trained_client.get(path).headers["permissions-policy"]
        assert "camera=(self)" in policy and "microphone=()" in policy, path


def test_live_frames_are_logged_in_summary_not_one_line_each(
    trained_client: WebClient, trained_demo: Path
) -> None:
    frame = demo_photos("shoes", 1, skip=2)[0].read_bytes()
    before = len(_events(trained_demo))
    for _ in range(6):
        response = trained_client.post(
            "/api/predict", params={"live": "true"}, files=[("files", ("frame.jpg", frame))]
        )
        assert response.status_code == 200
        (prediction,) = response.json()["predictions"]
        assert prediction["category"] == "shoes" and len(prediction["top"]) == 3
    new = _events(trained_demo)[before:]
    # The first frame is logged at once; the next five fall inside the same 10 s window.
    assert [e["event"] for e in new] == ["predict_live"]
    assert new[0]["frames"] == 1 and re.fullmatch(r"shoes \d+%", str(new[0]["latest"]))
    # An ordinary predict still logs one line per request.
    trained_client.post("/api/predict", files=[("files", ("a.jpg", frame))])
    assert _events(trained_demo)[-1]["event"] == "predict"
