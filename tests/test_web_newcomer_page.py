"""Issue 12, the page in a newcomer's first hour: phones, wide screens, what Undo says.

Real Chromium (Debian's) at phone and desktop widths, against a live server with real photos.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from helpers import make_project
from playwright.sync_api import expect
from test_web_browser import open_page, panel, serving, show_step, wait_count
from web_helpers import Watch, fake_agents

pytestmark = [pytest.mark.browser, pytest.mark.slow]


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
        # The assistant is one tap away, wherever it sits: beside the steps, or a step itself.
        if width <= 1000:
            assert page.locator("#step-chat").is_visible()
            page.click("#step-chat")
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
        page.wait_for_function(
            "() => document.querySelector('#undo-btn').textContent.includes('bags')"
        )
        assert undo.inner_text().startswith("Undo: ")
        assert "bags" in (undo.get_attribute("aria-label") or "")
        # No letters from the paper's figure in front of the section titles.
        assert page.locator("#data-title").inner_text().strip() == "Training data"
        undo.click()
        panel(page, "bags").wait_for(state="detached")
        context.close()
    assert not watch.dialogs, watch.dialogs


@pytest.mark.parametrize("width", [390, 1440])
def test_redo_says_what_it_will_redo_and_answers_its_keys(
    browser: Any, watch: Watch, tmp_path: Path, width: int
) -> None:
    project = make_project(tmp_path / "p", per_category=3, categories=("hat", "shoes"))
    with serving(project.root, baseline=True) as server:
        context, page = open_page(browser, server.url, watch, viewport=(width, 800))
        wait_count(page, "hat", 3)
        redo = page.locator("#redo-btn")
        assert redo.is_hidden()  # nothing undone yet
        page.fill("#new-category", "bags")
        page.press("#new-category", "Enter")
        panel(page, "bags").wait_for()
        page.locator("#undo-btn", has_text="bags").wait_for()
        page.click("#undo-btn")
        panel(page, "bags").wait_for(state="detached")
        expect(redo).to_be_visible()
        expect(redo).to_have_text("Redo: add category 'bags'")
        assert "bags" in (redo.get_attribute("aria-label") or "")
        assert sideways_overflow(page) <= 0
        assert fully_in_view_horizontally(page, "#redo-btn")
        assert not covered(page, "#project-name") and not covered(page, "#redo-btn")
        page.keyboard.press("Control+Shift+Z")
        panel(page, "bags").wait_for()
        expect(redo).to_be_hidden()
        page.keyboard.press("Control+Z")
        panel(page, "bags").wait_for(state="detached")
        expect(redo).to_be_visible()  # the keys act on what the page shows, as the button does
        page.keyboard.press("Control+Y")
        panel(page, "bags").wait_for()
        # A new change ends redo.
        page.keyboard.press("Control+Z")
        expect(redo).to_be_visible()
        page.fill("#new-category", "belts")
        page.press("#new-category", "Enter")
        panel(page, "belts").wait_for()
        expect(redo).to_be_hidden()
        context.close()
    assert sorted(c.name for c in project.categories()) == ["belts", "hat", "shoes"]
    assert not watch.dialogs, watch.dialogs


def test_a_big_project_has_an_overview_a_filter_and_short_panels(
    browser: Any, watch: Watch, tmp_path: Path
) -> None:
    from helpers import demo_photos

    from duetml.project import Project

    project, _ = Project.init(tmp_path / "big")
    # Ten categories: one with all 25 hats, one with a single photo (a warning), the rest 3.
    project.add_images("hat", demo_photos("hat"))
    project.add_images("lonely", demo_photos("shoes", 1))
    for index in range(8):
        project.add_images(f"kind-{index}", demo_photos("pants", 3, skip=index * 3))
    with serving(project.root, baseline=True) as server:
        context, page = open_page(browser, server.url, watch, viewport=(390, 800))
        overview = page.locator("#overview")
        overview.wait_for()
        assert "10 categories, 50 photos" in page.locator("#overview-count").inner_text()
        items = page.locator(".overview-item")
        assert items.count() == 10
        assert "25" in items.filter(has_text="hat").inner_text()
        assert page.locator(".overview-warn").filter(has_text="lonely").count() == 1
        # A panel starts with a first screenful; "Show all" opens the rest.
        hat = panel(page, "hat")
        assert 0 < hat.locator(".thumb").count() < 25
        hat.locator(".more", has_text="Show all 25 photos").click()
        page.wait_for_function(
            "() => document.querySelectorAll('[data-category=hat] .thumb').length === 25"
        )
        # The filter narrows the overview and the panels; Enter jumps to the first match.
        page.fill("#category-filter", "LONE")
        page.wait_for_function("() => document.querySelectorAll('article.category').length === 1")
        assert items.count() == 1
        assert "1 of 10 categories" in page.locator("#overview-count").inner_text()
        page.fill("#category-filter", "")
        page.wait_for_function("() => document.querySelectorAll('article.category').length === 10")
        page.locator(".overview-item", has_text="kind-7").click()
        target = panel(page, "kind-7")
        page.wait_for_function(
            """() => { const p = document.querySelector('[data-category="kind-7"]');
                       const r = p.getBoundingClientRect();
                       const shown = r.top >= 0 && r.top < innerHeight;
                       return document.activeElement === p && shown; }"""
        )
        assert target.is_visible()
        assert sideways_overflow(page) == 0
        context.close()
    assert not watch.dialogs, watch.dialogs


def test_where_reports_and_notices_appear(browser: Any, watch: Watch, tmp_path: Path) -> None:
    from test_web_browser import drop_files, jpegs

    project = make_project(tmp_path / "p", per_category=6)
    factory, _, _ = fake_agents("Hello")
    with serving(project.root, agents=factory) as server:
        context, page = open_page(browser, server.url, watch, viewport=(1440, 900))
        wait_count(page, "t-shirt", 6)
        # The upload report appears in the panel the files were dropped on.
        selector = 'article.category[data-category="t-shirt"]'
        drop_files(
            page, selector, jpegs("t-shirt", 2, skip=6) + [("notes.txt", b"socks", "text/plain")]
        )
        report = panel(page, "t-shirt").locator(".upload-problem")
        report.locator(".rejected li", has_text="notes.txt").wait_for()
        assert page.locator("#uploads .upload").count() == 0
        # Notices (toasts) never cover a thumbnail.
        page.fill("#new-category", "bags")
        page.press("#new-category", "Enter")
        toast = page.locator(".toast", has_text="bags")
        toast.wait_for()
        box = toast.bounding_box()
        for thumb in page.locator(".thumb").all():
            t = thumb.bounding_box()
            if not t:
                continue
            apart = (
                t["x"] + t["width"] <= box["x"]
                or box["x"] + box["width"] <= t["x"]
                or t["y"] + t["height"] <= box["y"]
                or box["y"] + box["height"] <= t["y"]
            )
            assert apart, "a notice covers a thumbnail"
        # A file that is not an image, dropped on "Try the model": a sentence, no broken picture.
        show_step(page, "try")
        drop_files(
            page, "#predict-drop", [("recipe.pdf", b"%PDF-1.4 not a photo", "application/pdf")]
        )
        card = page.locator(".prediction", has_text="recipe.pdf")
        card.locator(".error-text").wait_for()
        sentence = card.locator(".error-text").inner_text()
        assert sentence.endswith(".") and len(sentence.split()) > 3, sentence
        page.wait_for_function(
            "() => !document.querySelector('.prediction img') || "
            "[...document.querySelectorAll('.prediction img')].every((i) => i.naturalWidth > 0)"
        )
        assert card.locator(".prediction-nopreview").count() == 1
        context.close()


def test_no_model_yet_is_hidden_while_training(browser: Any, watch: Watch, tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", per_category=6, categories=("hat", "shoes"))
    with serving(project.root, baseline=True) as server:
        context, page = open_page(browser, server.url, watch)
        show_step(page, "train")
        page.locator("#model-summary", has_text="No model yet").wait_for()
        # Watch every change of the progress area: while it shows, "No model yet" must not.
        page.evaluate(
            """() => {
                window.seenTogether = false;
                window.sawProgress = false;
                const check = () => {
                    const progress = !document.querySelector('#train-progress').hidden;
                    const summary = document.querySelector('#model-summary');
                    const noModel =
                        summary.checkVisibility() && /No model yet/.test(summary.textContent);
                    if (progress) window.sawProgress = true;
                    if (progress && noModel) window.seenTogether = true;
                };
                new MutationObserver(check).observe(document.body,
                    { subtree: true, attributes: true, childList: true, characterData: true });
            }"""
        )
        page.click("#train-btn")
        page.wait_for_function("() => window.sawProgress")
        page.wait_for_function(
            "() => document.querySelector('#train-progress').hidden", timeout=240_000
        )
        assert page.evaluate("window.sawProgress") and not page.evaluate("window.seenTogether")
        context.close()


AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(page: Any) -> list[str]:
    """axe-core run over the page as it is; its script is loaded from node_modules here (the
    test's browser context bypasses the page's CSP for that; the app never serves it)."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
            const result = await axe.run(document, { resultTypes: ["violations"] });
            return result.violations.map((v) =>
                `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).slice(0, 3)})`);
        }"""
    )
    return list(found)


@pytest.mark.parametrize("width", [390, 1440])
def test_axe_finds_no_violation(browser: Any, watch: Watch, tmp_path: Path, width: int) -> None:
    if not AXE.exists():
        message = "axe-core is missing: run `npm ci` in the repository to check accessibility"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    project = make_project(tmp_path / "p", per_category=6, categories=("hat", "shoes"))
    factory, _, _ = fake_agents("Hello")
    with serving(project.root, agents=factory) as server:
        context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
        page = watch.attach(context.new_page())
        page.goto(server.url)
        page.wait_for_selector("body[data-ready=true]")
        wait_count(page, "hat", 6)
        page.locator(".agent-where").first.wait_for(state="attached")
        assert axe_violations(page) == []
        # With a trained model and its evaluation shown.
        page.click("#train-btn")
        page.locator("#evaluation table").first.wait_for(timeout=240_000)
        assert axe_violations(page) == []
        context.close()


def test_no_raw_markdown_backticks_on_the_page(browser: Any, watch: Watch, tmp_path: Path) -> None:
    from duetml.project import Project

    project, _ = Project.init(tmp_path / "empty")
    with serving(project.root, baseline=True) as server:
        context, page = open_page(browser, server.url, watch, viewport=(390, 800))
        page.locator("#categories code", has_text="edible").first.wait_for()
        assert "`" not in page.locator("main").inner_text()
        context.close()
