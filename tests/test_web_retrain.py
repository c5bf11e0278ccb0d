"""A quick re-train on the page: its accuracy is named a held-out accuracy with how many photos
were added since, never shown as a fresh cross-validation. In real Chromium, on real photos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import demo_photos
from PIL import Image
from playwright.sync_api import expect
from test_web_browser import open_page, serving
from web_helpers import Watch

from duetml.classifier import selection
from duetml.project import Project

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_page_says_what_a_quick_retrain_accuracy_is_made_of(
    browser: Any, watch: Watch, trained_demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server runs in this process: the demo (84 photos) is treated as a large project.
    monkeypatch.setattr(selection, "REUSE_ABOVE", 0)
    staging = tmp_path / "new"
    staging.mkdir()
    for path in demo_photos("shoes")[:3]:  # mirrored: real photos with new content
        Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(staging / path.name)
    Project.open(trained_demo).add_images("shoes", sorted(staging.iterdir()))
    with serving(trained_demo, baseline=True) as server:
        context, page = open_page(browser, server.url, watch)
        page.click("#train-btn")
        message = page.locator("#train-message.message-success")
        expect(message).to_contain_text("Held-out accuracy")
        text = message.text_content() or ""
        assert "with the 3 photos added since predicted by the model trained before them" in text
        assert "cross-validation of the last full training" in text
        caption = page.locator(".model-caption")
        expect(caption).to_contain_text("3 photos added since")
        page.locator("#train-message").screenshot(path=str(tmp_path / "retrain.png"))
        context.close()
    assert not watch.dialogs and not watch.errors, (watch.dialogs, watch.errors)


def test_a_late_answer_to_train_does_not_empty_the_finished_message(
    browser: Any, watch: Watch, trained_demo: Path
) -> None:
    """On a loaded machine the change signal can bring a training's end before the answer to
    the Train click, which still says "running": that stale answer must not wipe the result
    (it did, and test_web_retrain's first test timed out on CI-like load)."""
    held: list[tuple[Any, Any]] = []

    def hold(route: Any) -> None:  # the real answer, fetched now, handed to the page later
        held.append((route, route.fetch()))

    with serving(trained_demo, baseline=True) as server:
        context, page = open_page(browser, server.url, watch)
        page.route("**/api/train", hold)
        page.click("#train-btn")
        message = page.locator("#train-message.message-success")
        expect(message).to_contain_text("Trained on")  # from the change signal alone
        assert len(held) == 1
        route, answer = held[0]
        assert answer.json()["state"] == "running"
        route.fulfill(response=answer)
        page.wait_for_function("() => !document.querySelector('#train-btn').disabled")
        expect(message).to_contain_text("Trained on")
        context.close()
    assert not watch.dialogs and not watch.errors, (watch.dialogs, watch.errors)
