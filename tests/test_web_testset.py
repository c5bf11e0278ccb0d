"""Issue 10 part 3 through the core and the routes: test photos on the page (add, list, move
between the training and the test set), and the photo facts the viewer shows."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from helpers import demo_photos, run_duetml
from litestar import Litestar
from web_helpers import PORT, WebClient

from duetml.photo_facts import photo_facts
from duetml.prediction import load_model
from duetml.project import Project

pytestmark = [
    pytest.mark.project(per_category=4, categories=("hat", "shoes")),
    pytest.mark.app(baseline=True),
]


def listing(client: WebClient, name: str) -> dict[str, Any]:
    categories = client.get("/api/categories").json()["categories"]
    return next(c for c in categories if c["name"] == name)


# ----- the core ---------------------------------------------------------------------------------


def test_move_to_split_keeps_the_category_and_undo_puts_it_back(project: Project) -> None:
    first, second = (r.rel for r in project.images("train", "hat")[:2])
    moved = project.move_to_split([first, second], "test")
    assert moved == [first.replace("train/", "test/", 1), second.replace("train/", "test/", 1)]
    assert [r.rel for r in project.images("test", "hat")] == sorted(moved)
    assert len(project.images("train", "hat")) == 2
    assert project.undo_history()[0] == "move 2 photos to the test set"
    # Back again, then undo that: the photo is in the test set once more.
    assert project.move_to_split([moved[0]], "train") == [first]
    assert project.undo_history()[0] == "move 1 photo to the training set"
    assert project.undo() == "move 1 photo to the training set"
    assert {r.rel for r in project.images("test", "hat")} == set(moved)
    assert project.undo() == "move 2 photos to the test set"
    assert project.images("test") == [] and len(project.images("train", "hat")) == 4
    # The test folder the first move made is gone with the undo.
    assert not (project.root / "test" / "hat").exists()


def test_move_to_split_leaves_photos_already_there_and_refuses_other_splits(
    project: Project,
) -> None:
    rel = project.images("train", "shoes")[0].rel
    assert project.move_to_split([rel], "train") == []
    with pytest.raises(Exception, match="Unknown split"):
        project.move_to_split([rel], "validation")
    assert project.images("train", "shoes")[0].rel == rel


def test_test_photos_upload_into_an_existing_category_only(project: Project) -> None:
    photo = demo_photos("hat", 1, skip=10)[0]
    report = project.add_image_bytes("hat", [(photo.name, photo.read_bytes())], split="test")
    assert report.added == [r.rel for r in project.images("test", "hat")]
    with pytest.raises(Exception, match="There is no category 'cap'"):
        project.add_image_bytes("cap", [(photo.name, photo.read_bytes())], split="test")
    assert not (project.root / "test" / "cap").exists()


def test_facts_without_a_model_say_how_to_get_a_prediction(project: Project) -> None:
    record = project.images("train", "hat")[0]
    before = time.time()
    facts = msgspec.to_builtins(photo_facts(project, record.rel))
    assert facts["category"] == "hat" and facts["split"] == "train"
    assert facts["prediction"] is None and "train one" in facts["no_prediction"]
    assert facts["width"] > 0 and facts["height"] > 0
    assert facts["size_bytes"] == record.path.stat().st_size
    assert before - 3600 < facts["added_at"] <= before + 1


def test_facts_give_the_cross_validated_answer_for_training_photos(trained_demo: Path) -> None:
    project = Project.open(trained_demo)
    model = load_model(project)
    held_out = {row[0]: row for row in model.meta["cv_results"]}
    rel = next(iter(held_out))
    facts = msgspec.to_builtins(photo_facts(project, rel))
    assert facts["prediction"]["source"] == "cross-validation"
    assert facts["prediction"]["category"] == held_out[rel][2]
    assert facts["prediction"]["confidence"] == pytest.approx(held_out[rel][3], abs=1e-4)
    assert "without this photo" in facts["prediction"]["note"]
    # A test photo gets the trained model's answer, labelled as such.
    test_rel = project.images("test")[0].rel
    test_facts = msgspec.to_builtins(photo_facts(project, test_rel))
    assert test_facts["split"] == "test"
    assert test_facts["prediction"]["source"] == "model"
    assert "never used for training" in test_facts["prediction"]["note"]
    top = test_facts["prediction"]["top"]
    assert len(top) == 3 and top[0]["probability"] >= top[1]["probability"]
    # Moved into the training set after training: no held-out answer exists for it.
    (moved,) = project.move_to_split([test_rel], "train")
    moved_facts = msgspec.to_builtins(photo_facts(project, moved))
    assert moved_facts["prediction"]["source"] == "model"
    assert "after the last training" in moved_facts["prediction"]["note"]
    assert moved_facts["prediction"]["category"] == test_facts["prediction"]["category"]


@pytest.mark.slow
def test_the_cli_moves_photos_between_the_sets(project: Project) -> None:
    record = project.images("train", "hat")[0]
    done = run_duetml(
        "categories", "move-set", record.path.name, "--to", "test", "-p", str(project.root)
    )
    assert done.returncode == 0 and "Moved 1 photo(s) to the test set." in done.stdout, done.stderr
    assert (project.root / "test" / "hat" / record.path.name).is_file()
    shown = run_duetml("categories", "show", "hat", "--test", "-p", str(project.root))
    assert shown.stdout.split() == [f"test/hat/{record.path.name}"]
    wrong = run_duetml(
        "categories", "move-set", record.path.name, "--to", "tests", "-p", str(project.root)
    )
    assert wrong.returncode == 1 and "use `train` or `test`" in wrong.stderr
    undone = run_duetml("undo", "-p", str(project.root))
    assert "Undone: move 1 photo to the test set" in undone.stdout, undone.stderr
    assert (project.root / record.rel).is_file()


# ----- the routes -------------------------------------------------------------------------------


def test_listing_has_each_categorys_test_photos_apart(client: WebClient, project: Project) -> None:
    project.move_to_split([project.images("train", "hat")[0].rel], "test")
    hat = listing(client, "hat")
    assert hat["count"] == 3 and hat["test_count"] == 1
    assert [i["id"] for i in hat["test_images"]] == [r.rel for r in project.images("test", "hat")]
    assert all(i["id"].startswith("train/") for i in hat["images"])
    assert listing(client, "shoes")["test_images"] == []


def test_upload_to_the_test_set_then_undo(client: WebClient, project: Project) -> None:
    files = [
        ("files", (p.name, p.read_bytes(), "image/jpeg")) for p in demo_photos("hat", 2, skip=10)
    ]
    response = client.post("/api/upload", params={"category": "hat", "split": "test"}, files=files)
    assert response.status_code == 200, response.text
    added = response.json()["added"]
    assert len(added) == 2 and all(a.startswith("test/hat/") for a in added)
    assert listing(client, "hat")["test_count"] == 2
    assert client.get("/api/status").json()["undo"][0] == "add 2 image(s) to 'hat'"
    assert client.post("/api/undo").json()["undone"] == "add 2 image(s) to 'hat'"
    assert project.images("test") == []
    bad = client.post("/api/upload", params={"category": "hat", "split": "tests"}, files=files)
    assert bad.status_code == 400
    missing = client.post("/api/upload", params={"category": "cap", "split": "test"}, files=files)
    assert missing.status_code == 404 and "no category 'cap'" in missing.json()["error"]


def test_move_between_sets_then_undo(client: WebClient, project: Project) -> None:
    rel = project.images("train", "shoes")[1].rel
    response = client.post("/api/images/split", json={"images": [rel], "split": "test"})
    assert response.status_code == 200, response.text
    (moved,) = response.json()["moved"]
    assert moved == rel.replace("train/", "test/", 1) and (project.root / moved).is_file()
    assert client.get("/api/status").json()["undo"][0] == "move 1 photo to the test set"
    assert client.post("/api/undo").json()["undone"] == "move 1 photo to the test set"
    assert (project.root / rel).is_file() and not (project.root / moved).exists()
    for body, status in [
        ({"images": [rel], "split": "validation"}, 400),
        ({"images": [], "split": "test"}, 400),
        ({"images": ["train/shoes/nope.jpg"], "split": "test"}, 404),
        ({"images": ["../duetml.toml"], "split": "test"}, 400),
    ]:
        assert client.post("/api/images/split", json=body).status_code == status, body


def test_facts_route(client: WebClient, project: Project) -> None:
    rel = project.images("train", "hat")[0].rel
    facts = client.post("/api/images/facts", json={"image": rel}).json()
    assert facts["image"] == rel and facts["category"] == "hat" and facts["split"] == "train"
    assert facts["prediction"] is None and facts["no_prediction"]
    missing = client.post("/api/images/facts", json={"image": "train/hat/nope.jpg"})
    assert missing.status_code == 404
    assert client.post("/api/images/facts", json={"image": "/etc/passwd"}).status_code == 400
    # A GET (which another site could make the browser send) is not how facts are asked for.
    assert client.get("/api/images/facts", params={"image": rel}).status_code == 405


@pytest.mark.slow
def test_cross_site_set_moves_and_test_uploads_are_refused(project: Project, app: Litestar) -> None:
    from web_helpers import asgi_request

    rel = project.images("train", "hat")[0].rel
    before = sorted(p.relative_to(project.root).as_posix() for p in project.root.rglob("*.jpg"))
    for extra in ([("origin", "http://evil.example")], [("sec-fetch-site", "cross-site")]):
        for path, body in [
            ("/api/images/split", f'{{"images": ["{rel}"], "split": "test"}}'),
            ("/api/images/facts", f'{{"image": "{rel}"}}'),
        ]:
            response = asgi_request(
                app,
                "POST",
                path,
                [("host", f"127.0.0.1:{PORT}"), ("content-type", "application/json"), *extra],
                [body.encode()],
            )
            assert response.status == 403, (path, extra)
    after = sorted(p.relative_to(project.root).as_posix() for p in project.root.rglob("*.jpg"))
    assert after == before
