"""The web page with a 2,000-photo project, in headless Chromium.

    python bench/bench_web_load.py [DATASET_FOLDER]     (default: Caltech-101 subset)
    python bench/bench_web_load.py --scale [DATASET_FOLDER]

--scale: the page with the whole dataset (Caltech subset: 5,233 photos, 100 categories) and
with each photo five times (26,165 photos), built in a temp folder by copying (never links into
the dataset, never in the repository): DOM nodes and time to usable, beside the same figures
for the 100-photo demo project measured in the same run; and the server's answers the page
loads first (/api/categories, /api/status): the first after the server starts and then
repeated, beside the walk of the whole project that every request used to make (the core's
`images()` + `hashes()`, in-process, same run).

1. First page load: time until the page is usable (categories listed, controls wired, every
   thumbnail in the first screen decoded) and the bytes that crossed the wire, cold (no
   thumbnail made yet) and warm (thumbnails cached on disk, a new browser profile).
   References in the same run: the bytes of the original photos (all, and those the first
   screen shows), and the time to fetch the page's HTML alone.
2. Time from dropping a photo on (C) to its prediction shown, with the 2,000-photo model.
   Reference: the same prediction through the core in-process (`predict_sources`).

Figures are printed and saved to /tmp/web_bench.txt. Needs /usr/bin/chromium.
"""

from __future__ import annotations

import base64
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # Chromium as the browser tests launch it
from web_helpers import CHROMIUM, launch_chromium  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "caltech101-subset"
DEMO = ROOT / "duetml" / "demo_data"
PHOTOS = 2000
PER_CATEGORY = 50
OUT = Path("/tmp/web_bench.txt")


def make_dataset(source: Path | None, target: Path) -> int:
    """2,000 photos in folders of 50; from the dataset, or demo photos made distinct."""
    from duetml.images import IMAGE_EXTENSIONS

    count = 0
    if source is not None and source.is_dir():
        for folder in sorted(p for p in source.iterdir() if p.is_dir()):
            files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
            take = files[: min(PER_CATEGORY, PHOTOS - count)]
            if not take:
                continue
            (target / folder.name).mkdir(parents=True)
            for f in take:
                shutil.copy(f, target / folder.name / f.name)
            count += len(take)
            if count >= PHOTOS:
                return count
    # Demo photos, re-encoded with a small change so every copy has its own content hash.
    from PIL import Image

    demo = sorted(p for p in DEMO.glob("*/*.jpg"))
    index = 0
    while count < PHOTOS:
        folder = target / f"class-{count // PER_CATEGORY:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        with Image.open(demo[index % len(demo)]) as image:
            image = image.convert("RGB")
            image.putpixel((index % image.width, 0), (index % 256, 0, 0))
            image.save(folder / f"{index:05d}.jpg", quality=85 - index % 10)
        index += 1
        count += 1
    return count


class Server:
    def __init__(self, root: Path, port: int) -> None:
        from duetml.web import create_app
        from duetml.web.server import DuetmlServer

        self.app = create_app(root, baseline=True, port=port)
        self.server = DuetmlServer(self.app, "127.0.0.1", port)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> Server:  # noqa: PYI034
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def first_load(browser, url: str) -> dict:
    """A new profile opens the page: time to usable, and what it downloaded."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    transferred = {"total": 0, "thumbs": 0, "thumb_count": 0, "originals": 0}

    def finished(request) -> None:
        sizes = request.sizes()
        size = sizes["responseBodySize"] + sizes["responseHeadersSize"]
        transferred["total"] += size
        if "/api/thumb" in request.url:
            transferred["thumbs"] += size
            transferred["thumb_count"] += 1
        if "/api/image" in request.url:
            transferred["originals"] += size

    page.on("requestfinished", finished)
    # Times are read in the page, from the start of the navigation (what a person waits).
    page.goto(url, wait_until="commit")
    ready = (
        page.wait_for_function(
            "() => document.body && document.body.dataset.ready === 'true' && performance.now()",
            timeout=120_000,
        ).json_value()
        / 1000
    )
    # Usable: every thumbnail in the first screen is decoded (lazy ones below wait).
    usable = (
        page.wait_for_function(
            """() => {
            const imgs = [...document.querySelectorAll('.thumb img')]
                .filter((img) => img.getBoundingClientRect().top < innerHeight);
            const done = imgs.length > 0
                && imgs.every((img) => img.complete && img.naturalWidth > 0);
            return done && performance.now();
        }""",
            timeout=120_000,
        ).json_value()
        / 1000
    )
    page.wait_for_load_state("networkidle")
    nodes = page.evaluate("document.getElementsByTagName('*').length")
    shown = page.evaluate("document.querySelectorAll('.thumb img').length")
    visible_ids = page.evaluate(
        """() => [...document.querySelectorAll('.thumb')]
            .filter((t) => t.getBoundingClientRect().top < innerHeight).map((t) => t.dataset.id)"""
    )
    context.close()
    return {
        "ready": ready,
        "usable": usable,
        "shown": shown,
        "nodes": nodes,
        "visible_ids": visible_ids,
        **transferred,
    }


def drop_to_prediction(browser, url: str, photo: Path, runs: int = 7) -> list[float]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=120_000)
    payload = base64.b64encode(photo.read_bytes()).decode()
    times = []
    for run in range(runs):
        elapsed = page.evaluate(
            """async ([b64, name, before]) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const dt = new DataTransfer();
                dt.items.add(new File([bytes], name, { type: "image/jpeg" }));
                const zone = document.querySelector("#predict-drop");
                const start = performance.now();
                zone.dispatchEvent(
                    new DragEvent("drop", { bubbles: true, cancelable: true, dataTransfer: dt }));
                await new Promise((resolve) => {
                    const check = () => {
                        const done = document.querySelectorAll(
                            '.prediction:not(.pending) .predicted, .prediction-error');
                        if (done.length > before) resolve(); else requestAnimationFrame(check);
                    };
                    check();
                });
                await new Promise(requestAnimationFrame);  // until it is painted
                return performance.now() - start;
            }""",
            [payload, f"new-{run}.jpg", min(run, 11)],
        )
        times.append(elapsed / 1000)
    context.close()
    return times


def copied_project(source: Path, target: Path, copies: int) -> None:
    """A project folder holding every photo of `source` `copies` times (copies, never links:
    the dataset is shared and must never be written through a link)."""
    from duetml.images import IMAGE_EXTENSIONS
    from duetml.project import Project

    Project.init(target)
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        category = target / "train" / folder.name
        category.mkdir(parents=True, exist_ok=True)
        for photo in folder.iterdir():
            if photo.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            for k in range(copies):
                name = photo.name if k == 0 else f"{photo.stem}-copy{k}{photo.suffix}"
                shutil.copyfile(photo, category / name)


def api_times(url: str, root: Path) -> str:
    """The server's first answers, timed from outside, beside the old per-request walk."""
    from duetml.project import Project

    client = httpx.Client(timeout=600)
    t = time.perf_counter()
    client.get(url + "/api/categories").raise_for_status()
    first = time.perf_counter() - t
    repeated = {}
    for path in ("/api/categories", "/api/status"):
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            client.get(url + path).raise_for_status()
            runs.append(time.perf_counter() - t)
        repeated[path] = statistics.median(runs)
    project = Project.open(root)
    t = time.perf_counter()
    project.hashes(project.images("train") + project.images("test"))
    walk = time.perf_counter() - t
    return (
        f"first /api/categories {first:.2f} s, then /api/categories "
        f"{repeated['/api/categories'] * 1000:.0f} ms, /api/status "
        f"{repeated['/api/status'] * 1000:.0f} ms (medians of 5) "
        f"[reference: the walk every request used to make, {walk * 1000:.0f} ms]"
    )


def scale(source: Path) -> None:
    """DOM nodes and time to usable at 5,233 and 26,165 photos; the demo as reference."""
    from playwright.sync_api import sync_playwright

    from duetml.web.server import free_port

    lines = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        os.environ.setdefault("DUETML_HOME", str(Path(tmp) / "home"))
        browser = launch_chromium(playwright)
        for label, data, copies in (
            ("demo (reference)", DEMO, 1),
            ("dataset", source, 1),
            ("dataset x5", source, 5),
        ):
            root = Path(tmp) / label.split()[0] / str(copies)
            copied_project(data, root, copies)
            photos = sum(1 for _ in root.glob("train/*/*"))
            # Hash once, as `duetml init --from` would have: the server then starts as it does
            # on a project in use (a first hashing of 26,000 photos is a one-off).
            from duetml.project import Project

            made = Project.open(root)
            made.hashes(made.images("train"))
            with Server(root, free_port("127.0.0.1", 18765)) as server:
                api = api_times(server.url, root)
            with Server(root, free_port("127.0.0.1", 18765)) as server:
                result = first_load(browser, server.url)  # cold: thumbnails made on request
                result = first_load(browser, server.url)  # warm
            for line in (
                f"{label:>17}: {photos:6,} photos: {result['nodes']:6,} DOM nodes, "
                f"{result['shown']:5,} thumbnails in the page, ready {result['ready']:.2f} s, "
                f"usable {result['usable']:.2f} s",
                f"{'':>17}  {api}",
            ):
                print(line, flush=True)
                lines.append(line)
        browser.close()
    OUT.with_name("web_bench_scale.txt").write_text("\n".join(lines) + "\n")


def main() -> None:
    from playwright.sync_api import sync_playwright

    if len(sys.argv) > 1 and sys.argv[1] == "--scale":
        source = Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT
        if not source.is_dir():
            sys.exit(f"{source} is missing: give a folder of category folders.")
        scale(source)
        return

    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: install Debian's chromium package.")
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("DUETML_HOME", str(Path(tmp) / "home"))
        from duetml.prediction import predict_sources
        from duetml.project import Project
        from duetml.training import train_project

        dataset = Path(tmp) / "dataset"
        make_dataset(source if source.is_dir() else None, dataset)
        project, _ = Project.init(Path(tmp) / "project", from_source=dataset)
        originals = [r.path.stat().st_size for r in project.images("train")]
        by_rel = {r.rel: r.path.stat().st_size for r in project.images("train")}
        say(
            f"web page load, {len(originals)} photos in {len(project.categories())} categories "
            f"({'Caltech-101 subset' if source.is_dir() else 'demo photos, varied'}), "
            f"{os.cpu_count()} CPUs"
        )

        from duetml.web.server import free_port

        port = free_port("127.0.0.1", 18765)
        with Server(project.root, port) as server, sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            html_times = []
            for _ in range(5):
                t = time.perf_counter()
                httpx.get(server.url + "/")
                html_times.append(time.perf_counter() - t)
            html = statistics.median(html_times)

            for label in ("cold (thumbnails made on request)", "warm (thumbnails cached on disk)"):
                result = first_load(browser, server.url)
                visible_originals = sum(by_rel.get(i, 0) for i in result["visible_ids"])
                say()
                say(f"first page load, {label}:")
                say(f"  page ready (listing shown, controls wired): {result['ready']:.2f} s")
                say(
                    f"  usable (every first-screen thumbnail shown): {result['usable']:.2f} s "
                    f"[reference: the HTML alone {html * 1000:.0f} ms]"
                )
                say(
                    f"  transferred: {result['total'] / 1e6:.2f} MB in total, of which "
                    f"{result['thumb_count']} thumbnails {result['thumbs'] / 1e6:.2f} MB, "
                    f"originals {result['originals']} B; {result['shown']} thumbnails in the page, "
                    "the rest lazy"
                )
                say(
                    f"  [reference: the originals of the {len(result['visible_ids'])} first-screen "
                    f"photos {visible_originals / 1e6:.2f} MB; all {len(originals)} originals "
                    f"{sum(originals) / 1e6:.1f} MB]"
                )

            say()
            t = time.perf_counter()
            report = train_project(Project.open(project.root))
            say(
                f"trained on {report.images} photos in {time.perf_counter() - t:.1f} s "
                f"(cv accuracy {report.cv_accuracy:.1%})"
            )
            photo = max((source if source.is_dir() else DEMO).glob("*/*.jpg"))
            times = drop_to_prediction(browser, server.url, photo)
            core = []
            p = Project.open(project.root)
            data = photo.read_bytes()
            for _ in range(7):
                t = time.perf_counter()
                predict_sources(p, [data], ["x.jpg"])
                core.append(time.perf_counter() - t)
            say(
                "drop a photo on (C) -> prediction shown: "
                f"median {statistics.median(times) * 1000:.0f} ms "
                f"(first {times[0] * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, "
                f"{len(times)} drops) "
                f"[reference: the core's predict_sources in-process, median "
                f"{statistics.median(core) * 1000:.0f} ms]"
            )
            browser.close()
    OUT.write_text("\n".join(lines) + "\n")
    print(f"\nsaved to {OUT}")


if __name__ == "__main__":
    main()
