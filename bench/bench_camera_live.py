"""The page's live camera: how often the model's answer is refreshed, in headless Chromium.

    python bench/bench_camera_live.py [SECONDS]          (default: 15 s of live view)

The demo project is trained in a temp folder; Chromium's fake camera films one of the demo's
held-out photos (an MJPEG file of it). The page is opened, "Live camera" pressed, and for
SECONDS the /api/predict?live=true requests are timed: answers per second, the round trip
of each (frame taken in the page, sent, answered), and the most requests ever in flight at
once (the page never sends a second frame before the first is answered).

Reference measured in the same run: the core's `predict_sources` in-process on the same
224x224 JPEG frame the page sends, which bounds how fast any page could be on this machine.
Needs /usr/bin/chromium. Figures are printed and saved to /tmp/camera_live_bench.txt.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # LiveServer, free_port: the tests' real server
from web_helpers import ALLOW_CAMERA, FAKE_CAMERA, launch_chromium  # noqa: E402

OUT = Path("/tmp/camera_live_bench.txt")


def main(seconds: float) -> None:
    from helpers import free_port
    from PIL import Image
    from playwright.sync_api import sync_playwright
    from web_helpers import LiveServer

    from duetml.demo import create_demo_project
    from duetml.prediction import predict_sources
    from duetml.training import train_project
    from duetml.web import create_app

    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory(prefix="duetml-camera-bench-") as scratch:
        os.environ.setdefault("DUETML_HOME", str(Path(scratch) / "home"))
        project = create_demo_project(Path(scratch) / "demo")
        train_project(project)
        photo = sorted((project.root / "test" / "shoes").glob("*.jpg"))[0]
        picture = Image.open(photo).convert("RGB")
        film = io.BytesIO()
        picture.resize((640, 480)).save(film, "JPEG", quality=92)
        (Path(scratch) / "camera.mjpeg").write_bytes(film.getvalue() * 30)

        # The reference: the same kind of frame the page sends, through the core in-process.
        side = min(picture.size)
        left, top = (picture.width - side) // 2, (picture.height - side) // 2
        frame = io.BytesIO()
        picture.crop((left, top, left + side, top + side)).resize((224, 224)).save(
            frame, "JPEG", quality=85
        )
        data = frame.getvalue()
        predict_sources(project, [data], ["frame"], record=False)  # warm
        core = []
        for _ in range(20):
            started = time.perf_counter()
            predict_sources(project, [data], ["frame"], record=False)
            core.append(time.perf_counter() - started)

        port = free_port()
        trips: list[float] = []
        sent: dict[object, float] = {}
        flight = {"now": 0, "most": 0}
        with LiveServer(create_app(project.root, port=port, baseline=True), port) as server:
            with sync_playwright() as playwright:
                browser = launch_chromium(
                    playwright,
                    FAKE_CAMERA,
                    ALLOW_CAMERA,
                    f"--use-file-for-fake-video-capture={Path(scratch) / 'camera.mjpeg'}",
                )
                page = browser.new_page()

                def started(request: object) -> None:
                    if "/api/predict?live=true" in request.url:  # type: ignore[attr-defined]
                        sent[request] = time.perf_counter()
                        flight["now"] += 1
                        flight["most"] = max(flight["most"], flight["now"])

                def finished(request: object) -> None:
                    if request in sent:
                        trips.append(time.perf_counter() - sent.pop(request))
                        flight["now"] -= 1

                page.on("request", started)
                page.on("requestfinished", finished)
                page.goto(server.url)
                page.wait_for_selector("body[data-ready=true]")
                page.click("#live-btn")
                page.locator("#live-bars li").first.wait_for(timeout=60_000)
                trips.clear()
                began = time.perf_counter()
                page.wait_for_timeout(seconds * 1000)
                elapsed = time.perf_counter() - began
                answers = len(trips)
                verdict = page.locator("#live-label").text_content()
                browser.close()

    say(f"live camera, {seconds:.0f} s, demo project, camera filming a held-out shoe photo")
    say(f"  answers shown: {answers / elapsed:.1f} per second (the page's cap: 5 per second)")
    say(
        f"  round trip per frame: median {statistics.median(trips) * 1000:.0f} ms, "
        f"max {max(trips) * 1000:.0f} ms; most requests in flight at once: {flight['most']}"
    )
    say(
        f"  reference, same run: the core's predict_sources in-process on the same 224 px "
        f"frame: median {statistics.median(core) * 1000:.0f} ms"
    )
    say(f"  the page said: {verdict}")
    say(f"  load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    OUT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 15.0)
