"""Each threshold the page shares with the core is defined once, in the core, and reaches the
page through GET /api/project: the page's scripts hold no copy of it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from helpers import CATEGORIES, demo_photos, free_port, make_project
from litestar.testing import TestClient
from web_helpers import LiveServer

from duetml import health
from duetml.backbones import INPUT_SIZE
from duetml.health import TINY_CATEGORY
from duetml.web import create_app
from duetml.web.routes_data import UPLOAD_MAX_BYTES, UPLOAD_MAX_FILES
from duetml.web.routes_model import PREDICT_MAX_FILES

STATIC_JS = Path(__file__).resolve().parent.parent / "duetml" / "web" / "static" / "js"
CHROMIUM = "/usr/bin/chromium"

# What /api/project sends -> the core's value, and the copies the page's scripts once held.
SHARED = {
    "tiny_category": (TINY_CATEGORY, [r"TINY_CATEGORY\s*="]),
    "predict_max_files": (PREDICT_MAX_FILES, [r"\.slice\(0,\s*50\)"]),
    "model_input_side": (INPUT_SIZE, [r"\b224\b"]),
    "upload_max_bytes": (UPLOAD_MAX_BYTES, [r"64\s*\*\s*1024\s*\*\s*1024"]),
    "upload_max_files": (UPLOAD_MAX_FILES, []),
}


def test_the_page_gets_the_cores_thresholds(tmp_path: Path, clean_env: None) -> None:
    project = make_project(tmp_path / "p")
    port = 8765
    with TestClient(create_app(project.root, port=port), f"http://127.0.0.1:{port}") as client:
        info = client.get("/api/project").json()
    for key, (value, _) in SHARED.items():
        assert info[key] == value, key


def test_the_scripts_read_the_thresholds_and_hold_no_copy() -> None:
    scripts = {path.name: path.read_text(encoding="utf-8") for path in STATIC_JS.glob("*.js")}
    everything = "\n".join(scripts.values())
    for key, (_, copies) in SHARED.items():
        assert f"store.project.{key}" in everything, f"the page does not read {key}"
        for copy in copies:
            found = [name for name, text in scripts.items() if re.search(copy, text)]
            assert not found, f"{found} hold a copy of {key} ({copy})"


def _overview(page: Any) -> dict[str, bool]:
    """Category -> whether the overview warns about it (hidden text ", too few photos")."""
    page.wait_for_selector("#overview:not([hidden]) .overview-item")
    items = page.locator("#overview-list .overview-item")
    return {
        items.nth(i).locator(".overview-name").inner_text(): "too few photos"
        in (items.nth(i).get_attribute("title") or "")
        for i in range(items.count())
    }


@pytest.mark.browser
@pytest.mark.slow
def test_the_overview_warns_by_the_cores_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    """Nine categories (the overview shows past eight), of 3, 5 and 6 photos: the page's
    overview and the review warn below the core's TINY_CATEGORY, and follow it when it
    changes."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's `chromium` package")
    from playwright.sync_api import sync_playwright

    project = make_project(tmp_path / "p", categories=())
    photos = [p for c in CATEGORIES for p in demo_photos(c)]
    sizes = {"few": 3, "five": 5, **{f"six{i}": 6 for i in range(7)}}
    for name, size in sizes.items():
        project.add_images(name, photos[:size])
        photos = photos[size:]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for tiny in (TINY_CATEGORY, 6):
                monkeypatch.setattr(health, "TINY_CATEGORY", tiny)
                port = free_port()
                with LiveServer(create_app(project.root, port=port), port) as server:
                    page = browser.new_page()
                    page.goto(server.url)
                    page.wait_for_selector("body[data-ready=true]")
                    warned = _overview(page)
                    # The review's card for the tiny category: its text, and no "null" left
                    # by the parts a category finding lacks (it has no photos to list).
                    card = page.locator("#review .finding", has_text="'few' has only 3")
                    assert "null" not in card.inner_text()
                    if tiny == TINY_CATEGORY:  # the review is cached: its first look
                        assert f"add at least {tiny}." in card.inner_text()
                    page.screenshot(path=str(tmp_path / f"overview-{tiny}.png"))
                    page.close()
                assert warned == {name: size < tiny for name, size in sizes.items()}, tiny
        finally:
            browser.close()
