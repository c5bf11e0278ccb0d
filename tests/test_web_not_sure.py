""" "Not sure" on the page: the prediction card says so plainly, with the closest guess second
and one sentence saying why. In real Chromium, on real photos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import demo_photos, make_project
from playwright.sync_api import expect
from test_web_browser import open_page, serving, show_step
from web_helpers import Watch

from duetml.training import train_project

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_photo_unlike_every_category_is_not_sure_on_the_page(
    browser: Any, watch: Watch, tmp_path: Path
) -> None:
    # 20 photos of each category but shoes; a shoe is unlike all of them.
    project = make_project(tmp_path / "no-shoes", per_category=20, categories=("hat", "pants"))
    train_project(project)
    with serving(project.root, baseline=True) as server:
        context, page = open_page(browser, server.url, watch)
        show_step(page, "try")
        page.set_input_files("#predict-input", str(demo_photos("shoes", 1, skip=20)[0]))
        card = page.locator(".prediction:not(.pending)").first
        expect(card.locator(".predicted")).to_have_text("Not sure")
        closest = card.locator(".prediction-closest").text_content() or ""
        assert closest.startswith("Closest: ") and closest.endswith("%)")
        expect(card.locator(".prediction-why")).to_have_text(
            "This photo is unlike the training photos of every category."
        )
        assert card.locator(".bars li").count() == 2
        # A photo of a category the model knows gets a plain answer.
        page.set_input_files("#predict-input", str(demo_photos("hat", 1, skip=22)[0]))
        own = page.locator(".prediction:not(.pending)").first
        expect(own.locator(".predicted")).to_have_text("hat")
        expect(own.locator(".prediction-why")).to_have_count(0)
        page.locator("#predictions").screenshot(path=str(tmp_path / "not-sure.png"))
        context.close()
    assert not watch.dialogs and not watch.errors, (watch.dialogs, watch.errors)
