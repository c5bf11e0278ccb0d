"""Web hardening from issue 7 item 6: GETs change nothing, one charset, tokens off loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from duetml.web import create_app

PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"


@pytest.fixture
def trained_client(trained_demo: Path):
    with TestClient(create_app(trained_demo, baseline=True, port=PORT), base_url=BASE) as client:
        yield client


def _events(root: Path) -> list[str]:
    return (root / ".duetml" / "events.jsonl").read_text().splitlines()


def test_a_cross_site_get_of_the_evaluation_runs_nothing(
    trained_client: TestClient, trained_demo: Path
) -> None:
    before = _events(trained_demo)
    cache = sorted((trained_demo / ".duetml").glob("features-*.npz"))
    stamps = [p.stat().st_mtime_ns for p in cache]
    # What an <img src> or a link on another site makes the browser send.
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {}):
        response = trained_client.get("/api/evaluation", headers=headers)
        assert response.status_code == 405
    cross_post = trained_client.post(
        "/api/evaluation",
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert cross_post.status_code == 403
    assert _events(trained_demo) == before
    assert [p.stat().st_mtime_ns for p in cache] == stamps
    # The page itself asks with a same-origin POST, and that is logged once.
    page = trained_client.post(
        "/api/evaluation", headers={"Origin": BASE, "Sec-Fetch-Site": "same-origin"}
    )
    assert page.status_code == 200 and page.json()["source"] == "test set"
    assert [line for line in _events(trained_demo) if line not in before][-1].count(
        '"evaluate"'
    ) == 1


def test_the_page_asks_for_the_evaluation_with_a_post() -> None:
    script = (Path(__file__).parent.parent / "duetml/web/static/js/model.js").read_text()
    assert 'postJSON("/api/evaluation")' in script and 'getJSON("/api/evaluation")' not in script


@pytest.mark.parametrize(
    ("path", "media"),
    [
        ("/", "text/html"),
        ("/static/index.html", "text/html"),
        ("/static/js/chat.js", "text/javascript"),
        ("/static/style.css", "text/css"),
    ],
)
def test_text_is_served_with_one_charset(trained_client: TestClient, path: str, media: str) -> None:
    response = trained_client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{media}; charset=utf-8"
