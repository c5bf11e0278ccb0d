"""Issue 12, the page in a newcomer's first hour: phones, wide screens, what Undo says.

Real Chromium (Debian's) at phone and desktop widths, against a live server with real photos.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import test_web_browser
from test_web_browser import Watch, open_page, panel, serving, wait_count
from web_helpers import fake_agents, make_project

pytestmark = pytest.mark.browser

# The browser and the page watcher, shared with the main browser tests.
browser = test_web_browser.browser
watch = test_web_browser.watch

# What a newcomer must be able to see and reach without scrolling sideways.
KEY_CONTROLS = (
    "#project-name",
    "#undo-btn",
    "#log-link",
    "#new-category",
    "#add-category-form button",
)


def sideways_overflow(page: Any) -> int:
    return int(
        page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    )


def fully_in_view_horizontally(page: Any, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    width = page.evaluate("document.documentElement.clientWidth")
    return (
        box is not None
        and box["width"] > 0
        and box["x"] >= 0
        and box["x"] + box["width"] <= width + 0.5
    )


def covered(page: Any, selector: str) -> bool:
    """True when the control's centre is under some other element (the header's Undo over
    the project name was the bug)."""
    return bool(
        page.locator(selector).first.evaluate(
            """(el) => {
                const r = el.getBoundingClientRect();
                const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
                return !(top && (top === el || el.contains(top) || top.contains(el)));
            }"""
        )
    )


@pytest.mark.parametrize("width", [360, 390, 1440])
def test_no_sideways_scroll_and_key_controls_visible(
    browser: Any, watch: Watch, tmp_path: Path, width: int
) -> None:
    project = make_project(
        tmp_path / "p", per_category=4, goal="Sort the clothes photos of my shop"
    )
    factory, _, _ = fake_agents("Hello")
    with serving(project.root, agents=factory) as server:
        context, page = open_page(browser, server.url, watch, viewport=(width, 800))
        wait_count(page, "hat", 4)
        assert sideways_overflow(page) == 0, f"the page scrolls sideways at {width} px"
        for selector in KEY_CONTROLS:
            assert fully_in_view_horizontally(page, selector), f"{selector} is clipped at {width}"
            assert not covered(page, selector), f"{selector} is covered at {width} px"
        # Every category's buttons stay inside its panel.
        for button in page.locator("article.category button").all():
            box = button.bounding_box()
            assert box is None or box["x"] + box["width"] <= width, "a category button is clipped"
        # The assistant is one tap away, wherever it sits.
        if width <= 1000:
            assert page.locator("#chat-jump").is_visible()
            page.click("#chat-jump")
        page.locator("#chat-input").wait_for()
        page.wait_for_function(
            """() => { const r = document.querySelector('#chat-input').getBoundingClientRect();
                       return r.top >= 0 && r.bottom <= window.innerHeight; }"""
        )
        context.close()
    assert not watch.dialogs, watch.dialogs


def test_wide_screen_panels_use_the_width(browser: Any, watch: Watch, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", per_category=8)
    factory, _, _ = fake_agents("Hello")
    with serving(project.root, agents=factory) as server:
        context, page = open_page(browser, server.url, watch, viewport=(2560, 1200))
        wait_count(page, "hat", 8)
        area = page.locator("#categories").bounding_box()
        panels = [p.bounding_box() for p in page.locator("article.category").all()]
        used = sum(box["width"] for box in panels if box) / area["width"]
        assert used > 0.9, f"the category panels fill only {used:.0%} of the data area"
        # More than the old three thumbnails a row.
        tops = (
            panel(page, "hat")
            .locator(".thumb")
            .evaluate_all("(els) => els.map((e) => Math.round(e.getBoundingClientRect().top))")
        )
        assert tops.count(tops[0]) > 3
        context.close()


def test_undo_says_what_it_will_undo(browser: Any, watch: Watch, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", per_category=3, categories=("hat", "shoes"))
    with serving(project.root, baseline=True) as server:
        context, page = open_page(browser, server.url, watch, viewport=(390, 800))
        wait_count(page, "hat", 3)
        page.fill("#new-category", "bags")
        page.press("#new-category", "Enter")
        panel(page, "bags").wait_for()
        undo = page.locator("#undo-btn")
        page.wait_for_function("document.querySelector('#undo-btn').textContent.includes('bags')")
        assert undo.inner_text().startswith("Undo: ")
        assert "bags" in (undo.get_attribute("aria-label") or "")
        # No letters from the paper's figure in front of the section titles.
        assert page.locator("#data-title").inner_text().strip() == "Training data"
        undo.click()
        panel(page, "bags").wait_for(state="detached")
        context.close()
    assert not watch.dialogs, watch.dialogs
