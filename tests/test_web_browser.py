"""The real page in headless Chromium (Debian's), driven by Playwright against a live server.

Skipped with a reason where /usr/bin/chromium is missing, except in CI (CI=true), where
a missing browser is a failure: `.ci/run` installs it (conftest's `browser`).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers import demo_photos, free_port, make_project
from llm_fakes import FakeOllamaServer
from web_helpers import LiveServer, Watch, fake_agents

from duetml.agents import choice
from duetml.llm import get_provider
from duetml.project import Project
from duetml.settings import AgentLLMChoice
from duetml.web import create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The README's screenshot is refreshed only on request (DUETML_UPDATE_SCREENSHOT=1), so an
# ordinary test run leaves the work tree clean; otherwise it goes to a temp folder, still taken.
SCREENSHOT = (
    Path(__file__).resolve().parent.parent / "docs" / "screenshot.png"
    if os.environ.get("DUETML_UPDATE_SCREENSHOT") == "1"
    else Path(os.environ.get("TMPDIR", "/tmp")) / "duetml-screenshot.png"
)


@contextlib.contextmanager
def serving(root: Path, **options: Any) -> Iterator[LiveServer]:
    port = free_port()
    with LiveServer(create_app(root, port=port, **options), port) as server:
        yield server


def open_page(
    browser: Any, url: str, watch: Watch, viewport: tuple[int, int] = (1440, 900)
) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    page = watch.attach(context.new_page())
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    return context, page


def show_step(page: Any, step: str) -> None:
    """Click a step of the step bar (data, train, try, chat) and wait for its panel."""
    page.click(f"#step-{step}")
    page.wait_for_function(f"() => document.body.dataset.step === {step!r}")


def panel(page: Any, name: str) -> Any:
    return page.locator("article.category").filter(
        has=page.locator("h3", has_text=re.compile(f"^{re.escape(name)}$"))
    )


def drop_files(page: Any, selector: str, files: list[tuple[str, bytes, str]]) -> None:
    """Drop files on an element the way a file manager does (a DataTransfer with Files)."""
    payload = [{"name": n, "b64": base64.b64encode(b).decode(), "type": t} for n, b, t in files]
    page.eval_on_selector(
        selector,
        """(target, files) => {
            const dt = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], f.name, { type: f.type }));
            }
            for (const type of ["dragenter", "dragover", "drop"]) {
                target.dispatchEvent(
                    new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
            }
        }""",
        payload,
    )


def jpegs(category: str, count: int, skip: int = 0) -> list[tuple[str, bytes, str]]:
    return [(p.name, p.read_bytes(), "image/jpeg") for p in demo_photos(category, count, skip)]


def wait_count(page: Any, name: str, count: int) -> None:
    panel(page, name).locator(".count").filter(
        has_text=re.compile(rf"^{count} photos?\b")
    ).wait_for()


def ollama_settings(project: Project, url: str, interval: int = 600) -> None:
    ollama = AgentLLMChoice(provider="ollama", model="qwen2.5vl", base_url=url)
    project.update_settings(
        lambda s: s.with_agents(
            lambda a: replace(
                a, passive=ollama, proactive=ollama, proactive_interval_seconds=interval
            )
        )
    )
    # The test is the user here: it approves the endpoint its own project file chose.
    choice.approve(project.root, choice.endpoint_of(get_provider("ollama", base_url=url)) or url)


def take_screenshot(page: Any) -> None:
    """The README's picture: what a participant sees mid-session, without passing notices."""
    page.evaluate(
        "document.querySelectorAll('.toast-close, .upload .btn').forEach((b) => b.click())"
    )
    page.locator("#messages").evaluate("(list) => { list.scrollTop = list.scrollHeight; }")
    page.evaluate("window.scrollTo(0, 0)")
    page.mouse.move(0, 0)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


# ----- the paper's participant, start to finish ------------------------------------------------


def test_a_whole_session(browser: Any, watch: Watch, tmp_path: Path) -> None:
    project = make_project(tmp_path / "wardrobe")
    with FakeOllamaServer() as ollama:
        ollama_settings(project, ollama.url)
        ollama.queue_reply(
            "A wardrobe sorter sounds useful. Which kinds of clothes do you own most?"
        )
        ollama.queue_reply(
            "Each category has a few photos; shoes look clearly different from the rest."
        )
        ollama.queue_reply(
            "You have hat, pants, shoes and t-shirt. "
            "Would 'tops' and 'bottoms' serve your goal better?"
        )
        with serving(project.root) as server:
            context, page = open_page(browser, server.url, watch)

            # The assistant opens the conversation and says which model it uses, where.
            page.locator(
                ".msg-greeting", has_text="What kind of AI do you want to make?"
            ).wait_for()
            assert page.locator("#project-goal").inner_text() == ""
            info = page.locator("#agent-info")
            assert (
                "ollama · qwen2.5vl" in info.inner_text()
                and "runs on this machine" in info.inner_text()
            )
            page.locator(".empty-state", has_text="No categories yet").wait_for()

            # (D) The goal, told to the assistant; the reply streams in.
            page.fill("#chat-input", "I want to sort photos of my clothes")
            page.press("#chat-input", "Enter")
            page.locator(
                ".msg-assistant:not(.streaming)", has_text="Which kinds of clothes"
            ).wait_for()
            # The answer to the greeting becomes the project's goal, shown at the top.
            page.locator("#project-goal", has_text="I want to sort photos of my clothes").wait_for()

            # (A) Categories.
            for name in ("hat", "shoes", "pants", "t-shirt"):
                page.fill("#new-category", name)
                page.click("#add-category-form button[type=submit]")
                panel(page, name).wait_for()
            panel(page, "hat").locator(".panel-empty").wait_for()

            # Photos: the file picker, a drop of files (with one that is not a photo), a folder.
            panel(page, "hat").locator("input[type=file]:not([webkitdirectory])").set_input_files(
                [str(p) for p in demo_photos("hat", 8)]
            )
            drop_files(
                page,
                'article.category[data-category="shoes"]',
                jpegs("shoes", 8) + [("shopping-list.txt", b"socks, more socks", "text/plain")],
            )
            rejected = page.locator(".upload-problem .rejected li", has_text="shopping-list.txt")
            # textContent, not innerText: a panel off screen skips rendering
            # (content-visibility: auto), and Chromium's innerText of it is empty.
            rejected.wait_for()
            assert "not an image" in (rejected.text_content() or "")
            drop_files(page, 'article.category[data-category="pants"]', jpegs("pants", 8))
            folder = tmp_path / "my t-shirts"
            folder.mkdir()
            for photo in demo_photos("t-shirt", 8):
                shutil.copy(photo, folder / photo.name)
            panel(page, "t-shirt").locator("input[webkitdirectory]").set_input_files(folder)
            for name in ("hat", "shoes", "pants", "t-shirt"):
                wait_count(page, name, 8)
            assert panel(page, "hat").locator(".thumb img").count() == 8
            assert panel(page, "hat").locator(".thumb img").first.get_attribute("loading") == "lazy"

            # (E) Ask the assistant about the training data.
            page.click('[data-ask="data"]')
            page.locator(
                ".msg-assistant:not(.streaming)", has_text="shoes look clearly different"
            ).wait_for()
            page.locator(".msg-user .badge", has_text="Asked from Training data").wait_for()

            # (B) Train: progress while it runs, then the cross-validated accuracy.
            page.click("#train-btn")
            # Feature extraction on a busy 2-core machine can take longer than a click's wait.
            page.locator("#train-message.message-success", has_text="cross-validation").wait_for(
                timeout=120_000
            )
            assert page.locator("#train-btn").is_enabled()
            page.locator(".model-accuracy").wait_for()

            # (C) Try a new photo, and read the evaluation.
            show_step(page, "try")
            page.set_input_files("#predict-input", str(demo_photos("shoes", 1, skip=20)[0]))
            prediction = page.locator(".prediction:not(.pending)").first
            prediction.locator(".predicted").wait_for()
            assert prediction.locator(".predicted").inner_text() == "shoes"
            assert prediction.locator(".bars li").count() == 3
            show_step(page, "train")
            page.locator("table.confusion").wait_for()
            page.locator("table.confusion .cell-hit").first.click()
            page.locator(".cell-photos h4", has_text="recognised correctly").wait_for()
            assert page.locator(".cell-photos img").count() >= 1

            # (G) The proactive agent: switched off and on again, it looks at once.
            toggle = page.locator("label.switch")
            assert page.locator("#proactive-toggle").is_checked()
            toggle.click()
            page.wait_for_function("() => !document.querySelector('#proactive-toggle').checked")
            toggle.click()
            advice = page.locator(".msg-proactive", has_text="'tops' and 'bottoms'")
            advice.wait_for()
            assert advice.locator(".badge").inner_text() == "Unprompted advice"
            take_screenshot(page)

            # Rename, merge, drag a photo, undo.
            show_step(page, "data")
            panel(page, "t-shirt").get_by_role("button", name="Rename").click()
            page.fill("#rename-input", "tops")
            page.click("#prompt-ok")
            panel(page, "tops").wait_for()
            panel(page, "pants").get_by_role("button", name="Merge…").click()
            page.locator("#prompt-body label.check-row", has_text="shoes").locator("input").check()
            page.fill("#merge-target", "lower body")
            page.click("#prompt-ok")
            wait_count(page, "lower body", 16)
            assert panel(page, "pants").count() == 0 and panel(page, "shoes").count() == 0
            page.click("#undo-btn")
            wait_count(page, "pants", 8)
            wait_count(page, "shoes", 8)
            # The review panel and the map made the data area taller: on a 900 px screen the
            # two panels are a screen apart, and a synthetic drag does not dwell at the edge
            # to scroll. A person's drag does; a tall window keeps both in view here.
            page.set_viewport_size({"width": 1440, "height": 1800})
            panel(page, "hat").locator(".thumb").first.drag_to(panel(page, "tops").locator(".grid"))
            wait_count(page, "tops", 9)
            wait_count(page, "hat", 7)
            page.keyboard.press("Control+z")
            wait_count(page, "hat", 8)
            context.close()

    names = sorted(c.name for c in Project.open(project.root).categories())
    assert names == ["hat", "pants", "shoes", "tops"]
    events = [
        e["event"] for e in Project.open(project.root).log.recent(200) if e["source"] == "web"
    ]
    for expected in (
        "add_category",
        "add_images",
        "train",
        "predict",
        "rename_category",
        "merge_categories",
        "undo",
        "move_images",
        "agent_ask",
        "agent_proactive_toggle",
    ):
        assert expected in events, expected
    assert not watch.dialogs and not watch.errors, (watch.dialogs, watch.errors)


# ----- the other cases --------------------------------------------------------------------------


def test_baseline_mode_has_no_agent_anywhere(browser: Any, watch: Watch, tmp_path: Path) -> None:
    project = make_project(tmp_path / "study", per_category=3, categories=("hat", "shoes"))
    with serving(project.root, baseline=True) as server:
        context, page = open_page(browser, server.url, watch)
        assert page.locator(".chat-region").count() == 0
        assert page.locator("[data-ask]").count() == 0
        assert "assistant" not in page.locator("main").inner_text().lower()
        wait_count(page, "hat", 3)
        page.fill("#new-category", "bags")
        page.press("#new-category", "Enter")
        panel(page, "bags").wait_for()
        # The development region uses the whole width.
        width = page.locator(".dev-region").bounding_box()["width"]
        assert width > 1300
        assert page.request.get(f"{server.url}/api/agents").status == 404
        # The interaction log downloads, with what this page did in it.
        with page.expect_download() as download:
            page.click("#log-link")
        log = Path(download.value.path()).read_text()
        assert '"event": "add_category"' in log and '"source": "web"' in log
    # The server stopped (Ctrl-C): the page says so instead of failing silently.
    page.locator("#connection", has_text="reconnecting").wait_for()
    context.close()
    assert not watch.dialogs, watch.dialogs
    assert all("api/events" in e or "ERR_CONNECTION_REFUSED" in e for e in watch.errors), (
        watch.errors
    )


def test_hostile_names_and_llm_output_show_as_text(
    browser: Any, watch: Watch, tmp_path: Path
) -> None:
    hostile = "<img src=x onerror=alert(1)>"
    project = make_project(tmp_path / "hostile")
    project.add_category(hostile)
    project.add_images(hostile, demo_photos("hat", 2))
    project.add_category("shoes")
    factory, _, _ = fake_agents('Try this: <img src=x onerror=alert("llm")> <b>bold</b>')
    with serving(project.root, agents=factory) as server:
        context, page = open_page(browser, server.url, watch)
        heading = panel(page, hostile).locator("h3")
        heading.wait_for()
        assert heading.inner_text() == hostile
        drop_files(
            page,
            'article.category[data-category="shoes"]',
            [("<svg onload=alert(2)>.jpg", b"<svg onload=alert(2)></svg>", "image/jpeg")],
        )
        page.locator(".rejected li", has_text="<svg onload=alert(2)>.jpg").wait_for()
        page.fill("#chat-input", "<script>alert(3)</script>")
        page.press("#chat-input", "Enter")
        reply = page.locator(".msg-assistant:not(.streaming)", has_text="onerror")
        reply.wait_for()
        assert 'alert("llm")' in reply.inner_text() and "<b>bold</b>" in reply.inner_text()
        page.locator(".msg-user", has_text="<script>alert(3)</script>").wait_for()
        # Rename and merge dialogs show the name as text too.
        panel(page, hostile).get_by_role("button", name="Merge…").click()
        assert hostile in page.locator("#prompt-title").inner_text()
        page.click("#prompt-cancel")
        time.sleep(0.3)
        assert page.locator('img[src="x"], svg, script:not([src])').count() == 0
        assert page.locator("b", has_text="bold").count() == 0
        context.close()
    assert not watch.dialogs, watch.dialogs
    assert not watch.errors, watch.errors


def test_a_dead_llm_is_said_once_and_the_rest_works(
    browser: Any, watch: Watch, tmp_path: Path
) -> None:
    project = make_project(
        tmp_path / "offline", per_category=3, categories=("hat", "shoes"), goal="Sort clothes."
    )
    dead = f"http://127.0.0.1:{free_port()}"
    ollama_settings(project, dead, interval=5)
    with serving(project.root) as server:
        context, page = open_page(browser, server.url, watch)
        # Grey "not reachable", one notice saying how to set it up in page words, no greeting
        # from an agent that cannot answer, nothing to send it.
        info = page.locator("#agent-info")
        info.locator(".agent-down", has_text="not reachable").first.wait_for()
        assert "runs on this machine" not in info.inner_text()
        setup = page.locator(".notice-setup")
        assert setup.count() == 1
        assert "not reachable" in setup.inner_text() and "Assistant settings" in setup.inner_text()
        assert "`" not in setup.inner_text() and "ollama serve" not in setup.inner_text()
        assert page.locator(".msg-greeting").count() == 0
        assert page.locator("#chat-send").is_disabled()
        assert page.locator('[data-ask="data"]').is_disabled()
        # Proactive advice pauses itself (it looks every second here) and says so once.
        page.locator(".notice-quiet", has_text="Proactive advice is paused").wait_for()
        assert page.locator("#agent-notices .notice").count() == 2
        # Assistant settings say the dead server once, not again under each agent.
        page.click("#llm-settings summary")
        page.locator(".llm-servers", has_text="not reachable").first.wait_for()
        body = page.locator("#llm-settings-body").inner_text()
        assert body.count(f"is not running at {dead}") == 1, body
        assert "ollama serve" not in body
        # The development region does not care.
        page.fill("#new-category", "bags")
        page.press("#new-category", "Enter")
        panel(page, "bags").wait_for()
        page.click("#train-btn")
        page.locator("#train-message.message-success").wait_for()
        # A photo tried in (C) can join the training data under the category chosen.
        show_step(page, "try")
        page.set_input_files("#predict-input", str(demo_photos("shoes", 1, skip=20)[0]))
        card = page.locator(".prediction:not(.pending)").first
        card.locator(".add-to-training select").select_option("shoes")
        card.get_by_role("button", name="Add to training data").click()
        show_step(page, "data")
        wait_count(page, "shoes", 4)
        context.close()
    # One failed look in the interaction log, however many seconds it stayed down.
    events = Project.open(project.root).log.recent(500)
    failed = [e for e in events if e["event"] == "agent_proactive" and e.get("result") == "error"]
    assert len(failed) <= 1, failed
    assert not watch.dialogs and not watch.errors, (watch.dialogs, watch.errors)


def test_two_tabs_and_the_cli_stay_in_step(browser: Any, watch: Watch, tmp_path: Path) -> None:
    project = make_project(tmp_path / "shared", per_category=3, categories=("hat", "shoes"))
    factory, _, _ = fake_agents()
    with serving(project.root, agents=factory) as server:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        first = watch.attach(context.new_page())
        second = watch.attach(context.new_page())
        for page in (first, second):
            page.goto(server.url)
            page.wait_for_selector("body[data-ready=true]")
        first.fill("#new-category", "bags")
        first.press("#new-category", "Enter")
        panel(second, "bags").wait_for()
        drop_files(second, 'article.category[data-category="bags"]', jpegs("pants", 2))
        wait_count(first, "bags", 2)
        # The CLI (another process, same folder) adds photos: both tabs follow.
        Project.open(project.root).add_images("hat", demo_photos("hat", 2, skip=10))
        wait_count(first, "hat", 5)
        wait_count(second, "hat", 5)
        # Training from one tab: the other sees the new model, and is told busy meanwhile.
        first.click("#train-btn")
        show_step(second, "train")
        second.locator(".model-accuracy").wait_for()
        second.click("#train-btn")
        second.locator("#train-message").filter(
            has_text=re.compile("Trained|already training")
        ).wait_for()
        first.click("#undo-btn")
        show_step(second, "data")
        panel(second, "hat").locator(".count", has_text="3 photos").wait_for()
        context.close()
    assert not watch.dialogs and not watch.errors, (watch.dialogs, watch.errors)


def test_keyboard_only_add_and_move(browser: Any, watch: Watch, tmp_path: Path) -> None:
    project = make_project(tmp_path / "keys", per_category=2, categories=("hat", "shoes"))
    with serving(project.root, baseline=True) as server:
        context, page = open_page(browser, server.url, watch)
        page.focus("#new-category")
        page.keyboard.type("bags")
        page.keyboard.press("Enter")
        panel(page, "bags").wait_for()
        # A grid is one Tab stop: arrows move along it, Space selects.
        first = panel(page, "hat").locator(".thumb").first
        assert first.get_attribute("tabindex") == "0"
        assert panel(page, "hat").locator('.thumb[tabindex="0"]').count() == 1
        first.focus()
        page.keyboard.press("ArrowRight")
        second = panel(page, "hat").locator(".thumb").nth(1)
        page.wait_for_function(
            "() => document.activeElement.getAttribute('aria-label') === 'Photo 2 of hat'"
        )
        assert second.get_attribute("tabindex") == "0" and first.get_attribute("tabindex") == "-1"
        page.keyboard.press("Space")
        page.locator("#selection-bar").wait_for()
        assert second.get_attribute("aria-selected") == "true"
        page.select_option("#move-target", "bags")
        page.focus("#move-selected")
        page.keyboard.press("Enter")
        wait_count(page, "bags", 1)
        # Delete removes a photo; the notice's Undo takes it back.
        panel(page, "shoes").locator(".thumb").first.focus()
        page.keyboard.press("Delete")
        wait_count(page, "shoes", 1)
        page.locator(".toast button", has_text="Undo").first.click()
        wait_count(page, "shoes", 2)
        # A photo opens large in a dialog with Enter; Escape closes it.
        panel(page, "shoes").locator(".thumb").first.focus()
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelector('#viewer-img').naturalWidth > 0")
        assert page.locator("#viewer").is_visible()
        page.keyboard.press("Escape")
        assert not page.locator("#viewer").is_visible()
        # Every control has a name a screen reader can read.
        unnamed = page.evaluate(
            """() => [...document.querySelectorAll('button, input, select, textarea')]
                .filter((el) => el.offsetParent !== null)
                .filter((el) => !(el.getAttribute('aria-label') || el.labels?.length
                                  || el.textContent.trim() || el.getAttribute('title')))
                .map((el) => el.outerHTML.slice(0, 80))"""
        )
        assert unnamed == []
        context.close()
    assert not watch.dialogs and not watch.errors, (watch.dialogs, watch.errors)


def test_cloud_consent_is_asked_on_the_page(browser: Any, watch: Watch, tmp_path: Path) -> None:
    project = make_project(tmp_path / "cloud", per_category=2, categories=("hat", "shoes"))
    # An address off this machine (TEST-NET, never reached: consent comes first).
    endpoint = "http://192.0.2.10:9/v1"
    cloud = AgentLLMChoice(provider="openai", model="gpt-4o", base_url=endpoint)
    project.update_settings(
        lambda s: s.with_agents(lambda a: replace(a, passive=cloud, proactive=cloud))
    )
    with serving(project.root) as server:
        context, page = open_page(browser, server.url, watch)
        assert "sends data to" in page.locator("#agent-info").inner_text()
        notice = page.locator(".notice-consent").first
        notice.wait_for()
        assert "192.0.2.10" in notice.inner_text()
        page.fill("#chat-input", "hello")
        page.press("#chat-input", "Enter")
        error = page.locator(".msg-error")
        error.wait_for()
        assert "192.0.2.10" in error.inner_text()
        # Both agents use the same endpoint: one yes covers both.
        page.locator(".notice-consent button").first.click()
        page.wait_for_function("() => !document.querySelector('.notice-consent')")
        context.close()
    # The yes is kept in the user's own settings, never in the project's file.
    assert choice.approved_endpoints(project.root) == {"http://192.0.2.10:9/v1"}
    assert "cloud_consent" not in Project.open(project.root).settings.agents.other
    assert not watch.dialogs and not watch.errors, (watch.dialogs, watch.errors)


def test_a_small_model_context_shows_as_a_notice(
    browser: Any, watch: Watch, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "small", per_category=6)
    with FakeOllamaServer(context_length=3072) as ollama:
        ollama_settings(project, ollama.url)
        ollama.queue_reply("Both categories look distinct.")
        with serving(project.root) as server:
            context, page = open_page(browser, server.url, watch)
            page.fill("#chat-input", "Are my photos good?")
            page.press("#chat-input", "Enter")
            notice = page.locator(".toast", has_text=re.compile("context is small"))
            notice.wait_for()
            assert "3,072 tokens" in notice.inner_text()
            page.locator(".msg", has_text="Both categories look distinct.").wait_for()
            if os.environ.get("DUETML_SHOT"):
                page.screenshot(path=os.environ["DUETML_SHOT"])
            context.close()
        assert ollama.chat_requests[-1].json["options"]["num_ctx"] == 3072
    assert not watch.dialogs and not watch.errors, (watch.dialogs, watch.errors)
