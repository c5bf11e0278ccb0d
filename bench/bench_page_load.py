"""Time to the first usable screen and DOM size of the workspace page, in headless Chromium.

    python bench/bench_page_load.py [TRAINED_CALTECH_PROJECT]

Two trained projects: the demo (4 categories, 100 photos; made and trained here, in a temp
folder) and the Caltech subset (100 categories, 5,233 photos): the project given, or one made
from ../shared/data/caltech101-subset and trained here (minutes). Each is served by a real
`duetml serve` app (uvicorn on 127.0.0.1) and opened three times in a new browser profile:
uncached (no thumbnail made yet on the server), cached (thumbnails on disk, a new profile),
and cached again. "Usable" is the page's own `body[data-ready]` (categories listed, Train,
evaluation and assistant wired) plus every thumbnail on the first screen decoded.

Reference in the same run: the time to fetch the page's HTML alone. Printed, and saved to
/tmp/page_load_bench.txt. Needs /usr/bin/chromium.
"""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # Chromium as the browser tests launch it
from web_helpers import launch_chromium  # noqa: E402

CALTECH = ROOT.parent / "shared" / "data" / "caltech101-subset"
OUT = Path("/tmp/page_load_bench.txt")
FIRST_SCREEN_DECODED = """() => {
    const seen = [...document.images].filter((img) => {
        const r = img.getBoundingClientRect();
        return r.width > 0 && r.bottom > 0 && r.top < innerHeight && img.closest('.thumb');
    });
    return seen.every((img) => img.complete && img.naturalWidth > 0);
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, root: Path) -> None:
        from duetml.web import create_app
        from duetml.web.server import DuetmlServer

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.server = DuetmlServer(
            create_app(root, port=self.port), host="127.0.0.1", port=self.port
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def html_alone(url: str) -> float:
    with httpx.Client() as client:
        client.get(url)  # a connection, as the browser has one
        start = time.perf_counter()
        client.get(url).raise_for_status()
        return time.perf_counter() - start


def load(browser: object, url: str, width: int, height: int) -> tuple[float, int, int]:
    context = browser.new_context(viewport={"width": width, "height": height})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(300_000)
    start = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_function(FIRST_SCREEN_DECODED)
    seconds = time.perf_counter() - start
    nodes = int(page.evaluate("document.getElementsByTagName('*').length"))
    images = int(page.evaluate("document.images.length"))
    context.close()
    return seconds, nodes, images


def demo_project(folder: Path) -> Path:
    from duetml.demo import create_demo_project
    from duetml.training import train_project

    root = folder / "demo"
    train_project(create_demo_project(root))
    return root


def caltech_project(folder: Path, given: str | None) -> Path | None:
    root = folder / "caltech"
    if given:
        shutil.copytree(given, root, symlinks=True)
        return root
    if not CALTECH.is_dir():
        return None
    from duetml.project import Project
    from duetml.training import train_project

    print("training the Caltech subset (minutes)…", flush=True)
    project, _ = Project.init(root, from_source=CALTECH)
    train_project(project)
    return root


def main() -> None:
    from playwright.sync_api import sync_playwright

    given = sys.argv[1] if len(sys.argv) > 1 else None
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        folder = Path(tmp)
        projects = [("demo", demo_project(folder))]
        caltech = caltech_project(folder, given)
        if caltech is not None:
            projects.append(("caltech", caltech))
        browser = launch_chromium(playwright)
        for name, root in projects:
            with Served(root) as served:
                reference = html_alone(served.url)
                for width, height in ((1440, 900), (390, 844)):
                    # Uncached: no thumbnail made yet (the server makes them on request).
                    shutil.rmtree(root / ".duetml" / "cache" / "thumbs", ignore_errors=True)
                    runs = [load(browser, served.url, width, height) for _ in range(3)]
                    for label, (seconds, nodes, images) in zip(
                        ("uncached", "cached", "cached again"), runs, strict=True
                    ):
                        line = (
                            f"{name:8s} {width:5d} px {label:13s} usable in {seconds:6.2f} s,"
                            f" {nodes:6,d} DOM nodes, {images:5,d} images"
                            f"  (HTML alone: {reference * 1000:.1f} ms)"
                        )
                        print(line, flush=True)
                        lines.append(line)
        browser.close()
    OUT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
