"""The map on the page with thousands of photos: frame times in headless Chromium.

    duetml init /tmp/caltech --from ../shared/data/caltech101-subset
    duetml train -p /tmp/caltech
    python bench/bench_map_page.py /tmp/caltech [--screenshot docs/review.png]

Serves the project, opens the page in Debian's Chromium (/usr/bin/chromium), waits for the
map (computing it first if needed), then measures what a person does with it: zooming (a
full redraw of every dot per wheel step, as the page itself records them) and hovering (the
pointer handler: finding the dot, the overlay, the thumbnail's box). The reference, in the
same run and browser, is an empty animation frame: the browser's own frame interval (16.7 ms
at 60 Hz). Also prints GET /api/map's time and size beside GET /api/categories'.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import free_port  # noqa: E402
from web_helpers import LiveServer, launch_chromium  # noqa: E402

from duetml.web import create_app  # noqa: E402


def stats(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    median = statistics.median(ordered)
    return f"median {median:6.2f} ms   p95 {p95:6.2f} ms   max {ordered[-1]:6.2f} ms"


def timed_get(client: httpx.Client, path: str) -> tuple[float, int]:
    best = float("inf")
    size = 0
    for _ in range(3):
        started = time.perf_counter()
        response = client.get(path)
        best = min(best, time.perf_counter() - started)
        size = len(response.content)
    return best, size


def main() -> None:
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    root = Path(args[0])
    screenshot = Path(args[args.index("--screenshot") + 1]) if "--screenshot" in args else None
    from playwright.sync_api import sync_playwright

    port = free_port()
    with LiveServer(create_app(root, port=port, baseline=True), port) as server:
        with (
            sync_playwright() as playwright,
            httpx.Client(base_url=server.url, timeout=600) as client,
        ):
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(server.url)
            page.wait_for_selector("body[data-ready=true]", timeout=600_000)
            started = time.perf_counter()
            while not page.evaluate(
                "Number(document.querySelector('#map-canvas').dataset.points || 0) > 0"
                " && !window.duetmlMap.data.computing"
            ):
                time.sleep(0.5)
            waited = time.perf_counter() - started
            points = int(page.locator("#map-canvas").get_attribute("data-points") or 0)
            map_seconds, map_bytes = timed_get(client, "/api/map")
            list_seconds, list_bytes = timed_get(client, "/api/categories")
            page.locator("#map-box").scroll_into_view_if_needed()
            box = page.locator("#map-box").bounding_box()
            assert box is not None
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            empty = page.evaluate(
                """() => new Promise((done) => {
                    const times = [];
                    let last = performance.now();
                    const step = (now) => {
                        times.push(now - last);
                        last = now;
                        if (times.length < 61) requestAnimationFrame(step);
                        else done(times.slice(1));
                    };
                    requestAnimationFrame(step);
                })"""
            )
            page.evaluate("window.duetmlMap.frames.length = 0")
            for step in range(40):
                page.mouse.move(cx + (step % 7) * 9, cy + (step % 5) * 7)
                page.mouse.wheel(0, -120 if step < 20 else 120)
            redraws = page.evaluate("window.duetmlMap.frames.slice()")
            # Each move in a frame of its own, as a browser delivers them to the page.
            hovers = page.evaluate(
                """async () => {
                    const m = window.duetmlMap;
                    const overlay = document.querySelector('#map-overlay');
                    const rect = overlay.getBoundingClientRect();
                    const times = [];
                    for (let i = 0; i < 120; i++) {
                        await new Promise((done) => requestAnimationFrame(done));
                        const k = (i * 7919) % m.data.ids.length;
                        const t = performance.now();
                        overlay.dispatchEvent(new PointerEvent('pointermove', {
                            clientX: rect.left + m.sx[k], clientY: rect.top + m.sy[k],
                            bubbles: true }));
                        times.push(performance.now() - t);
                    }
                    return times;
                }"""
            )
            if screenshot:
                page.set_viewport_size({"width": 1440, "height": 1250})
                page.click("#map-reset")
                page.evaluate("window.scrollTo(0, 0)")
                page.wait_for_timeout(500)  # the map follows the new size first
                flagged = page.evaluate(
                    "(() => { const m = window.duetmlMap;"
                    " const i = m.data.flag.findIndex((f) => f >= 0);"
                    " return i < 0 ? null : [m.sx[i], m.sy[i]]; })()"
                )
                box = page.locator("#map-box").bounding_box()
                if flagged and box:
                    page.mouse.move(box["x"] + flagged[0], box["y"] + flagged[1])
                    page.wait_for_timeout(800)
                page.screenshot(path=str(screenshot))
            browser.close()
    print(f"{points} photos on the map (waited {waited:.1f} s for it after the page was ready)")
    print(f"GET /api/map        {map_seconds * 1000:7.0f} ms  {map_bytes / 1024:6.0f} KB")
    reference = f"{list_seconds * 1000:7.0f} ms  {list_bytes / 1024:6.0f} KB  (reference)"
    print(f"GET /api/categories {reference}")
    print(f"empty frame (reference)   {stats(empty)}")
    print(f"full redraw (zoom)        {stats(redraws)}")
    print(f"hover (pointer handler)   {stats(hovers)}")


if __name__ == "__main__":
    main()
