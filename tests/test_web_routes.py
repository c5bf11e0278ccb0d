"""Every endpoint of `duetml serve` through Litestar's TestClient (no socket), bad inputs too."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers import CATEGORIES, demo_photos, free_port, make_project
from litestar.testing import TestClient
from web_helpers import BASE, PORT, FakeAgents, LiveServer, WebClient, client_for, dead_llm_error

from duetml import locks
from duetml.project import Project
from duetml.settings import AgentLLMChoice
from duetml.training import PHASE_LABELS
from duetml.web import create_app

pytestmark = pytest.mark.project(per_category=6)


def photo_files(
    category: str, count: int, skip: int = 0
) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("files", (p.name, p.read_bytes(), "image/jpeg"))
        for p in demo_photos(category, count, skip)
    ]


def first_image(client: WebClient, category: str = "hat") -> str:
    listing = client.get("/api/categories").json()
    found = next(c for c in listing["categories"] if c["name"] == category)
    return str(found["images"][0]["id"])


# ----- the page and its assets ----------------------------------------------------------------


def test_page_is_served_with_a_strict_policy_and_no_inline_script(client: WebClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "img-src 'self' blob: data:" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    html = response.text
    # Every script is a file of ours; no inline code, no handler attributes, nothing remote.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert "http://" not in html and "https://" not in html
    assert 'id="messages"' in html and 'data-ask="data"' in html and 'data-ask="results"' in html
    assert "<!--agents-->" not in html


def test_every_asset_the_page_names_is_served_from_the_package(client: WebClient) -> None:
    html = client.get("/").text
    names = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert "/static/js/main.js" in names and "/static/style.css" in names
    for name in names:
        response = client.get(name)
        assert response.status_code == 200, name
        assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/js/main.js").headers["content-type"].startswith("text/javascript")
    # The modules import each other: all of them must exist too.
    main = client.get("/static/js/main.js").text
    for module in re.findall(r'from "\./([^"]+)"', main):
        assert client.get(f"/static/js/{module}").status_code == 200, module


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/nothing.js",
        "/static//etc/passwd",
        "/static/js/../../app.py",
    ],
)
def test_static_serves_only_its_own_files(client: WebClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "import" not in response.text


def test_baseline_page_has_no_agent_features(project: Project) -> None:
    app = create_app(project.root, baseline=True, port=PORT)
    with TestClient(app, base_url=BASE) as client:
        html = client.get("/").text
        assert (
            'id="messages"' not in html
            and "data-ask" not in html
            and "Ask the assistant" not in html
        )
        assert client.get("/api/project").json()["baseline"] is True
        for method, path in [
            ("GET", "/api/agents"),
            ("GET", "/api/conversation"),
            ("POST", "/api/chat"),
            ("POST", "/api/agents/proactive"),
            ("POST", "/api/agents/consent"),
        ]:
            assert client.request(method, path, json={}).status_code in (404, 405), path
        # The rest of the page works.
        assert client.get("/api/categories").status_code == 200
        paths = client.get("/schema/openapi.json").json()["paths"]
        assert not [p for p in paths if "agent" in p or "chat" in p or "conversation" in p]


def test_project_info(client: WebClient) -> None:
    info = client.get("/api/project").json()
    assert info["name"] == "proj" and info["baseline"] is False and info["agents"] is True
    assert info["upload_max_bytes"] > 0 and info["upload_max_files"] > 0


# ----- (A) categories -------------------------------------------------------------------------


def test_listing_has_every_photo_with_a_content_version(client: WebClient) -> None:
    listing = client.get("/api/categories").json()
    assert [c["name"] for c in listing["categories"]] == sorted(CATEGORIES)
    hat = listing["categories"][0]
    assert hat["count"] == 6 and len(hat["images"]) == 6
    assert all(i["id"].startswith("train/hat/") and len(i["v"]) == 16 for i in hat["images"])


def test_add_rename_merge_remove_categories(client: WebClient, project: Project) -> None:
    assert client.post("/api/categories/add", json={"name": "  edible "}).json() == {
        "name": "edible"
    }
    assert (project.root / "train" / "edible").is_dir()
    assert client.post("/api/categories/add", json={"name": "edible"}).status_code == 409
    assert (
        client.post("/api/categories/rename", json={"old": "edible", "new": "food"}).status_code
        == 200
    )
    assert (project.root / "train" / "food").is_dir()
    assert (
        client.post("/api/categories/rename", json={"old": "nothing", "new": "x"}).status_code
        == 404
    )
    clash = client.post("/api/categories/rename", json={"old": "hat", "new": "pants"})
    assert clash.status_code == 409 and "Merge…" in clash.json()["error"]
    merged = client.post(
        "/api/categories/merge", json={"sources": ["hat", "shoes"], "target": "accessories"}
    )
    assert merged.status_code == 200 and merged.json()["moved"] == 12
    names = [c.name for c in project.categories()]
    assert "accessories" in names and "hat" not in names and "shoes" not in names
    assert (
        client.post("/api/categories/merge", json={"sources": [], "target": "x"}).status_code == 400
    )
    assert (
        client.post("/api/categories/merge", json={"sources": ["ghost"], "target": "x"}).status_code
        == 404
    )
    assert client.post("/api/categories/remove", json={"name": "food"}).status_code == 200
    assert not (project.root / "train" / "food").exists()
    assert client.post("/api/categories/remove", json={"name": "food"}).status_code == 404
    events = [e["event"] for e in project.log.recent(20) if e["source"] == "web"]
    assert {"add_category", "rename_category", "merge_categories", "remove_category"} <= set(events)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "../evil",
        "a/b",
        "a\\b",
        ".hidden",
        "x" * 101,
        "CON",
        "nul.txt",
        "COM1",
        "a\x00b",
        "tab\there",
        "end.",
        "..",
    ],
)
def test_rejected_category_names_get_400_with_the_reason(
    client: WebClient, project: Project, name: str
) -> None:
    response = client.post("/api/categories/add", json={"name": name})
    assert response.status_code == 400
    reason = response.json()["error"]
    assert reason and len(reason) < 300 and "Traceback" not in reason
    assert sorted(p.name for p in (project.root / "train").iterdir()) == sorted(CATEGORIES)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": 5},
        {"name": None},
        {"name": ["a"]},
        [],
        "text",
        {"sources": "hat", "target": "x"},
    ],
)
def test_malformed_bodies_get_400(client: WebClient, body: object) -> None:
    for path in ("/api/categories/add", "/api/categories/merge", "/api/categories/rename"):
        response = client.post(path, json=body)
        assert response.status_code == 400, (path, body)
        assert "error" in response.json()


def test_hostile_name_is_stored_and_returned_verbatim_as_json(client: WebClient) -> None:
    name = "<img src=x onerror=alert(1)>"
    assert client.post("/api/categories/add", json={"name": name}).status_code == 201
    response = client.get("/api/categories")
    assert response.headers["content-type"].startswith("application/json")
    assert name in [c["name"] for c in response.json()["categories"]]


# ----- (A) photos -------------------------------------------------------------------------------


def test_move_and_remove_photos_then_undo(client: WebClient, project: Project) -> None:
    image = first_image(client)
    moved = client.post("/api/images/move", json={"images": [image], "category": "shoes"}).json()[
        "moved"
    ]
    assert moved[0].startswith("train/shoes/") and (project.root / moved[0]).is_file()
    assert client.post("/api/undo").json()["undone"].startswith("move 1 image")
    assert (project.root / image).is_file()
    assert client.post("/api/images/remove", json={"images": [image]}).json() == {"removed": 1}
    assert not (project.root / image).exists()
    assert client.post("/api/undo").status_code == 200 and (project.root / image).is_file()
    assert (
        client.post("/api/images/move", json={"images": [], "category": "shoes"}).status_code == 400
    )
    assert (
        client.post("/api/images/remove", json={"images": ["train/hat/nothing.jpg"]}).status_code
        == 404
    )
    assert (
        client.post("/api/images/move", json={"images": [image], "category": "../x"}).status_code
        == 400
    )


def test_redo_after_undo_and_the_status_names_it(client: WebClient, project: Project) -> None:
    image = first_image(client)
    moved = client.post("/api/images/move", json={"images": [image], "category": "shoes"}).json()
    client.post("/api/undo")
    assert client.get("/api/status").json()["redo"] == ["move 1 image(s) to 'shoes'"]
    assert client.post("/api/redo").json() == {"redone": "move 1 image(s) to 'shoes'"}
    assert (project.root / moved["moved"][0]).is_file() and not (project.root / image).exists()
    status = client.get("/api/status").json()
    assert status["redo"] == [] and status["undo"][0] == "move 1 image(s) to 'shoes'"
    response = client.post("/api/redo")
    assert response.status_code == 409 and "nothing to redo" in response.json()["error"]


def test_undo_with_nothing_to_undo_is_409(tmp_path: Path) -> None:
    project = make_project(tmp_path / "empty")
    (project.state_dir / "journal.json").unlink(missing_ok=True)
    with TestClient(create_app(project.root, baseline=True, port=PORT), base_url=BASE) as client:
        response = client.post("/api/undo")
        assert (
            response.status_code == 409 and response.json()["error"] == "There is nothing to undo."
        )


def test_upload_reports_added_duplicates_and_rejected_with_reasons(
    client: WebClient, project: Project
) -> None:
    good = photo_files("hat", 3, skip=10)
    truncated = demo_photos("hat", 1, skip=20)[0].read_bytes()[:5000]
    files = good + [
        ("files", ("notes.txt", b"just some text", "text/plain")),
        ("files", ("empty.jpg", b"", "image/jpeg")),
        ("files", ("half.jpg", truncated, "image/jpeg")),
        ("files", ("page.jpg", b"<html><script>alert(1)</script></html>", "image/jpeg")),
        ("files", ("again.jpg", good[0][1][1], "image/jpeg")),
    ]
    response = client.post("/api/upload", params={"category": "hat"}, files=files)
    assert response.status_code == 200
    report = response.json()
    assert len(report["added"]) == 3
    assert [d["source"] for d in report["duplicates"]] == ["again.jpg"]
    rejected = {r["source"]: r["reason"] for r in report["rejected"]}
    assert set(rejected) == {"notes.txt", "empty.jpg", "half.jpg", "page.jpg"}
    assert "empty" in rejected["empty.jpg"] and all(rejected.values())
    # Stored names come from the content, with the extension of the decoded format.
    for rel in report["added"]:
        assert re.fullmatch(r"train/hat/[0-9a-f]{20}\.jpg", rel)
    assert len(list((project.root / "train" / "hat").iterdir())) == 9
    assert project.log.recent(1)[0]["event"] == "add_images"


def test_upload_bad_requests(client: WebClient, project: Project) -> None:
    one = photo_files("hat", 1, skip=10)
    assert client.post("/api/upload", params={"category": "ghost"}, files=one).status_code == 404
    assert (
        client.post("/api/upload", params={"category": "../../etc"}, files=one).status_code == 400
    )
    assert client.post("/api/upload", params={"category": "hat"}, files=[]).status_code == 400
    assert client.post("/api/upload", files=one).status_code == 400  # no category
    not_multipart = client.post("/api/upload", params={"category": "hat"}, json={"files": []})
    assert not_multipart.status_code == 400
    assert not (project.root / "train" / "ghost").exists()


def test_upload_over_the_limit_is_413(client: WebClient, project: Project) -> None:
    from duetml.web.routes_data import UPLOAD_MAX_BYTES

    big = b"\xff" * (UPLOAD_MAX_BYTES + 1024)
    response = client.post(
        "/api/upload", params={"category": "hat"}, files=[("files", ("big.jpg", big, "image/jpeg"))]
    )
    assert response.status_code == 413
    assert "too large" in response.json()["error"]
    assert len(list((project.root / "train" / "hat").iterdir())) == 6


def test_thumbnails_are_made_once_and_cached_by_content(
    client: WebClient, project: Project
) -> None:
    listing = client.get("/api/categories").json()
    image = listing["categories"][0]["images"][0]
    response = client.get("/api/thumb", params={"image": image["id"], "v": image["v"]})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "immutable" in response.headers["cache-control"]
    assert response.content[:3] == b"\xff\xd8\xff" and len(response.content) < 30_000
    cached = list((project.state_dir / "cache" / "thumbs").rglob("*.jpg"))
    assert len(cached) == 1 and cached[0].name.startswith(image["v"])
    stamp = cached[0].stat().st_mtime_ns
    # Moving the photo keeps its thumbnail: the key is the content, not the name.
    moved = client.post(
        "/api/images/move", json={"images": [image["id"]], "category": "shoes"}
    ).json()["moved"][0]
    again = client.get("/api/thumb", params={"image": moved})
    assert again.content == response.content and again.headers["cache-control"] == "no-cache"
    assert cached[0].stat().st_mtime_ns == stamp
    assert len(list((project.state_dir / "cache" / "thumbs").rglob("*.jpg"))) == 1


def test_original_is_served_with_the_type_of_its_decoded_format(
    client: WebClient, project: Project
) -> None:
    from PIL import Image

    png = project.root / "train" / "hat" / "disguised.jpg"
    Image.new("RGB", (8, 8), "red").save(png, "PNG")
    response = client.get("/api/image", params={"image": "train/hat/disguised.jpg"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    html = project.root / "train" / "hat" / "page.jpg"
    html.write_bytes(b"<html><script>alert(1)</script></html>")
    for path in ("/api/image", "/api/thumb"):
        refused = client.get(path, params={"image": "train/hat/page.jpg"})
        assert refused.status_code == 415
        assert "<script>" not in refused.text


def test_status_lists_warnings_model_and_undo(client: WebClient) -> None:
    client.post("/api/categories/add", json={"name": "empty one"})
    status = client.get("/api/status").json()
    assert status["images"] == 24 and status["model"] is None
    assert any(w["kind"] == "empty" for w in status["warnings"])
    assert status["undo"][0] == "add category 'empty one'"


def test_log_download_holds_the_page_operations(client: WebClient) -> None:
    client.post("/api/categories/add", json={"name": "logged"})
    response = client.get("/api/log")
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    events = [json.loads(line) for line in response.text.splitlines()]
    assert events[-1]["event"] == "add_category" and events[-1]["source"] == "web"
    assert events[-1]["category"] == "logged"


# ----- (B) training -----------------------------------------------------------------------------


def test_training_runs_in_the_background_and_reports(client: WebClient) -> None:
    started = client.post("/api/train")
    assert started.status_code == 202 and started.json()["state"] == "running"
    # The app keeps answering while it trains, and a second trainer is told it is busy.
    assert client.get("/api/categories").status_code == 200
    second = client.post("/api/train")
    if second.status_code != 202:  # it may have finished already on a fast machine
        assert second.status_code == 409 and "already training" in second.json()["error"]
    client.web.train.wait(60)
    state = client.get("/api/train/state").json()
    assert state["state"] == "done", state
    assert state["result"]["images"] == 24 and 0 <= state["result"]["cv_accuracy"] <= 1
    assert client.get("/api/status").json()["model"]["categories"] == sorted(CATEGORIES)


def test_training_while_another_process_trains_is_busy(client: WebClient, project: Project) -> None:
    with locks.hold(project.state_dir / "train.lock", 1, "busy"):
        response = client.post("/api/train")
    assert response.status_code == 409
    assert "Another training" in response.json()["error"]
    assert client.get("/api/train/state").json()["state"] == "idle"


def test_training_without_photos_fails_with_a_sentence(tmp_path: Path) -> None:
    project = make_project(tmp_path / "empty")
    app = create_app(project.root, baseline=True, port=PORT)
    with TestClient(app, base_url=BASE) as client:
        assert client.post("/api/train").status_code == 202
        app.state.duetml.train.wait(30)
        state = client.get("/api/train/state").json()
        assert state["state"] == "failed" and "no photos" in state["error"]


# ----- (C) predict and evaluate -----------------------------------------------------------------


def test_predict_without_a_model_says_train_first(client: WebClient) -> None:
    response = client.post("/api/predict", files=photo_files("hat", 1, skip=20))
    assert response.status_code == 409 and "train" in response.json()["error"]


def test_predict_gives_top_categories_and_per_file_errors(trained_client: WebClient) -> None:
    files = photo_files("shoes", 1, skip=1) + [
        ("files", ("junk.jpg", b"not an image", "image/jpeg"))
    ]
    response = trained_client.post("/api/predict", files=files)
    assert response.status_code == 200
    good, bad = response.json()["predictions"]
    assert good["category"] in CATEGORIES and 0 < good["confidence"] <= 1
    assert len(good["top"]) == 3 and good["top"][0]["category"] == good["category"]
    assert bad["image"] == "junk.jpg" and bad["error"]
    assert trained_client.post("/api/predict", files=[]).status_code == 400


@pytest.mark.slow
def test_evaluation_has_per_category_scores_and_the_photos_behind_each_cell(
    trained_client: WebClient,
) -> None:
    report = trained_client.post("/api/evaluation").json()
    assert report["source"] == "test set"
    n = len(report["categories"])
    assert len(report["confusion"]) == n and all(len(row) == n for row in report["confusion"])
    assert {r["category"] for r in report["per_category"]} == set(report["categories"])
    cells = {(c["true"], c["predicted"]): c["images"] for c in report["cells"]}
    for i, true in enumerate(report["categories"]):
        for j, predicted in enumerate(report["categories"]):
            assert len(cells.get((true, predicted), [])) == report["confusion"][i][j]
    photo = next(iter(cells.values()))[0]
    assert trained_client.get("/api/thumb", params={"image": photo}).status_code == 200


def test_evaluation_without_a_model_is_409(client: WebClient) -> None:
    response = client.post("/api/evaluation")
    assert response.status_code == 409 and response.json()["error"]


# ----- (D)-(G) the agents -----------------------------------------------------------------------


def test_agents_describe_providers_without_keys(client: WebClient) -> None:
    info = client.get("/api/agents").json()
    assert info["available"] is True and info["proactive_enabled"] is True
    assert info["agents"]["passive"]["provider"] == "fake"
    assert info["agents"]["proactive"]["model"] == "fake-vision"
    assert "key" not in json.dumps(info).lower().replace("keep", "")


def test_conversation_opens_with_the_greeting(client: WebClient) -> None:
    messages = client.get("/api/conversation").json()["messages"]
    assert messages[0]["content"] == "What kind of AI do you want to make?"
    assert messages[0]["role"] == "assistant"


def test_chat_streams_the_reply_as_json_lines(client: WebClient) -> None:
    client.passive.enqueue("Broader categories may help.")
    response = client.post("/api/chat", json={"message": "I want to sort my clothes"})
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "application/x-ndjson"
    )
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert "".join(line.get("delta", "") for line in lines) == "Broader categories may help."
    assert lines[-1] == {"done": True}
    messages = client.get("/api/conversation").json()["messages"]
    assert [m["role"] for m in messages[-2:]] == ["user", "assistant"]


@pytest.mark.parametrize("about, kind", [("data", "ask_data"), ("results", "ask_results")])
def test_ask_buttons_ask_about_their_part(client: WebClient, about: str, kind: str) -> None:
    client.passive.enqueue("Here is a thought.")
    response = client.post("/api/chat", json={"message": "What do you think?", "about": about})
    assert json.loads(response.text.splitlines()[-1]) == {"done": True}
    user = client.get("/api/conversation").json()["messages"][-2]
    assert user["kind"] == kind and user["content"]


def test_llm_failure_is_one_line_in_the_stream(client: WebClient) -> None:
    client.passive.enqueue(dead_llm_error())
    response = client.post("/api/chat", json={"message": "hello"})
    assert response.status_code == 200
    last = json.loads(response.text.splitlines()[-1])
    # Page words, not a shell command: the page has no shell.
    assert "start the Ollama app" in last["error"] and "\n" not in last["error"]
    assert "ollama serve" not in last["error"]
    assert client.get("/api/conversation").json()["messages"][-1]["kind"] == "error"
    # The rest of the app is unaffected.
    assert client.get("/api/categories").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"message": ""},
        {"message": "   "},
        {"message": "x" * 5000},
        {"message": "hi", "about": "weather"},
        {"about": 3},
        {"message": ["a"]},
    ],
)
def test_bad_chat_requests_are_400(client: WebClient, body: dict[str, object]) -> None:
    response = client.post("/api/chat", json=body)
    assert response.status_code == 400 and response.json()["error"]


def test_proactive_switch_is_saved_and_turning_on_looks_now(
    client: WebClient, project: Project
) -> None:
    off = client.post("/api/agents/proactive", json={"enabled": False}).json()
    assert off["proactive_enabled"] is False
    assert Project.open(project.root).settings.agents.proactive_enabled is False
    client.proactive.enqueue("You have four concrete categories; is that what you want?")
    on = client.post("/api/agents/proactive", json={"enabled": True})
    assert on.json()["proactive_enabled"] is True
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        messages = client.get("/api/conversation").json()["messages"]
        if messages[-1]["kind"] == "proactive":
            break
        time.sleep(0.05)
    assert messages[-1]["kind"] == "proactive" and "four concrete" in messages[-1]["content"]
    assert client.post("/api/agents/proactive", json={"enabled": "maybe"}).status_code == 400


def test_consent_endpoint_refuses_endpoints_nobody_asked_for(client: WebClient) -> None:
    response = client.post("/api/agents/consent", json={"endpoint": "https://evil.example/v1"})
    assert response.status_code == 404


def test_cloud_provider_asks_for_consent_before_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm_fakes import FakeOpenAIServer

    project = make_project(tmp_path / "cloud", per_category=2)
    with FakeOpenAIServer(api_key="sk-test-SECRET-1234567890") as server:
        # A LAN address counts as "off this machine"; the fake listens on loopback, so route it.
        lan = AgentLLMChoice(provider="openai", model="gpt-4o", base_url="http://192.0.2.10:9/v1")
        project.update_settings(lambda s: s.with_agents(lambda a: replace(a, passive=lan)))
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET-1234567890")
        app = create_app(project.root, port=PORT)
        with TestClient(app, base_url=BASE) as client:
            info = client.get("/api/agents").json()
            assert info["consent_needed"] and info["consent_needed"][0]["endpoint"].startswith(
                "http://192.0.2.10"
            )
            response = client.post("/api/chat", json={"message": "hello"})
            assert response.status_code == 428
            body = response.json()
            assert body["consent"]["endpoint"] == info["consent_needed"][0]["endpoint"]
            assert not server.chat_requests
            allowed = client.post(
                "/api/agents/consent", json={"endpoint": body["consent"]["endpoint"]}
            )
            assert allowed.status_code == 200 and not allowed.json()["consent_needed"]
            for path in (
                "/api/agents",
                "/api/conversation",
                "/api/project",
                "/api/status",
                "/api/log",
                "/",
            ):
                assert "SECRET" not in client.get(path).text, path


# ----- the event stream -------------------------------------------------------------------------


def _next_state(lines: Iterable[str]) -> dict[str, Any]:
    event = None
    for line in lines:
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "state":
            state: dict[str, Any] = json.loads(line.split(":", 1)[1])
            return state
    raise AssertionError("the stream ended")


@pytest.mark.slow
def test_event_stream_tells_every_page_about_changes(project: Project, agents: FakeAgents) -> None:
    port = free_port()
    app = create_app(project.root, agents=agents[0], port=port)
    with (
        LiveServer(app, port),
        client_for(port) as http,
        client_for(port) as other,
        http.stream("GET", "/api/events") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        first = _next_state(lines)
        assert set(first) >= {"data", "model", "chat", "train", "settings"}
        other.post("/api/categories/add", json={"name": "from another tab"})
        assert _next_state(lines)["data"] != first["data"]
        # A change made outside the server (the CLI) is seen by the watcher within a second.
        before = time.monotonic()
        Project.open(project.root).add_category("from the cli")
        _next_state(lines)
        assert time.monotonic() - before < 3


@pytest.mark.slow
def test_training_progress_reaches_the_pages(project: Project, agents: FakeAgents) -> None:
    port = free_port()
    app = create_app(project.root, agents=agents[0], port=port)
    with (
        LiveServer(app, port),
        client_for(port) as http,
        client_for(port) as other,
        http.stream("GET", "/api/events") as stream,
    ):
        lines = stream.iter_lines()
        _next_state(lines)
        assert other.post("/api/train").status_code == 202
        seen = []
        while True:
            train = _next_state(lines)["train"]
            seen.append(train)
            if train["state"] != "running":
                break
    assert seen[-1]["state"] == "done" and seen[-1]["result"]["images"] == 24
    running = [s for s in seen if s["state"] == "running" and s.get("total")]
    assert running, seen
    features = [s for s in running if s["phase"] == "features"]
    assert features and features[-1]["total"] == 24 and features[-1]["rate"] > 0
    # Then the classifier's phases, each named for the page.
    assert {s["phase"] for s in running} <= set(PHASE_LABELS)
    assert all(s["label"] == PHASE_LABELS[s["phase"]] for s in running)


def test_a_small_model_context_is_told_once_in_the_stream(client: WebClient) -> None:
    from duetml.llm import window
    from duetml.llm.base import ModelProfile

    client.passive._profile = ModelProfile(3500, window.family_for("qwen2.5vl"))
    client.passive.enqueue("Fine.", "Still fine.")
    lines = [
        json.loads(line)
        for line in client.post("/api/chat", json={"message": "hi"}).text.splitlines()
    ]
    notices = [line["notice"] for line in lines if "notice" in line]
    assert len(notices) == 1 and "Your model's context is small" in notices[0], lines
    assert lines[-1] == {"done": True}
    again = client.post("/api/chat", json={"message": "and?"}).text
    assert '"notice"' not in again  # told once
