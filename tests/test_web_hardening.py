"""Web hardening from issue 7 item 6: GETs change nothing, one charset, tokens off loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from web_helpers import BASE, PORT, WebClient

pytestmark = pytest.mark.app(baseline=True)


def _events(root: Path) -> list[str]:
    return (root / ".duetml" / "events.jsonl").read_text().splitlines()


@pytest.mark.slow
def test_a_cross_site_get_of_the_evaluation_runs_nothing(
    trained_client: WebClient, trained_demo: Path
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
def test_text_is_served_with_one_charset(trained_client: WebClient, path: str, media: str) -> None:
    response = trained_client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{media}; charset=utf-8"


# ----- --host off loopback: a warning and a token -------------------------------------------

TOKEN = "t0ken-for-the-test-Zq9"
LAN = "192.0.2.2"


@pytest.mark.project(per_category=1, categories=("hat",))
@pytest.mark.app(baseline=True, allowed_hosts=[LAN], token=TOKEN, base_url=f"http://{LAN}:{PORT}")
def test_off_loopback_every_request_needs_the_token(client: WebClient) -> None:
    for path in ("/", "/api/project", "/static/js/main.js", "/nowhere", "/?token=wrong"):
        refused = client.get(path)
        assert refused.status_code == 403 and "token" in refused.json()["error"], path
    assert client.post("/api/categories/add", json={"name": "x"}).status_code == 403
    wrong_cookie = {"Cookie": "duetml_token=wrong"}
    assert client.get("/api/project", headers=wrong_cookie).status_code == 403
    # The printed link works, and its answer leaves a cookie for the page's own requests.
    first = client.get(f"/?token={TOKEN}")
    assert first.status_code == 200 and "<html" in first.text.lower()
    cookie = first.headers["set-cookie"]
    assert f"duetml_token={TOKEN}" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    follow = client.get("/api/project", headers={"Cookie": f"duetml_token={TOKEN}"})
    assert follow.status_code == 200 and "set-cookie" not in follow.headers
    added = client.post(
        "/api/categories/add", json={"name": "boots"}, headers={"Cookie": f"duetml_token={TOKEN}"}
    )
    assert added.status_code in (200, 201)


def test_loopback_needs_no_token(trained_client: WebClient) -> None:
    assert trained_client.get("/api/project").status_code == 200


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What `duetml serve` would run, without listening (any address then counts as free)."""
    import webbrowser

    from duetml.web import server as server_module

    started: list[Any] = []
    monkeypatch.setattr(server_module.DuetmlServer, "run", lambda self: started.append(self))
    monkeypatch.setattr(server_module, "port_is_free", lambda host, port: True)
    monkeypatch.setattr(webbrowser, "open", lambda url: None)
    return started


def test_serve_on_a_network_address_warns_and_prints_a_token_link(
    tmp_path: Path, served: list[Any]
) -> None:
    from helpers import make_project
    from typer.testing import CliRunner

    from duetml.cli import app

    make_project(tmp_path / "proj")
    args = ["serve", "-p", str(tmp_path / "proj"), "--port", "8799", "--no-open"]
    result = CliRunner().invoke(app, [*args, "--host", LAN])
    assert result.exit_code == 0, result.output
    assert "Warning: --host 192.0.2.2 makes duetml reachable from other machines" in result.output
    guard = served[0].web_app.asgi_handler
    assert guard.token and f"http://{LAN}:8799/?token={guard.token}" in result.output
    assert len(guard.token) >= 24
    again = CliRunner().invoke(app, [*args, "--host", LAN])
    assert served[1].web_app.asgi_handler.token != guard.token  # a new one every start
    assert again.exit_code == 0
    local = CliRunner().invoke(app, [*args, "--host", "127.0.0.2"])
    assert local.exit_code == 0 and "Warning" not in local.output and "token" not in local.output
    assert served[2].web_app.asgi_handler.token is None


@pytest.mark.parametrize("spelling", ["0", "0x0", "0.0", "::ffff:0.0.0.0", "[::]", "0.0.0.0", "::"])
def test_every_spelling_of_all_interfaces_is_refused(
    tmp_path: Path, served: list[Any], spelling: str
) -> None:
    """Issue 17, item 7: `--host 0` (and 0x0, ::ffff:0.0.0.0) listened on every interface
    with only a warning; the OS reads them as 0.0.0.0, as the refused spelling."""
    import socket

    from helpers import make_project
    from typer.testing import CliRunner

    from duetml.cli import app

    bound = socket.getaddrinfo(spelling.strip("[]"), None, flags=socket.AI_PASSIVE)[0][4][0]
    assert bound in ("0.0.0.0", "::", "::ffff:0.0.0.0"), bound  # what the socket would get
    make_project(tmp_path / "proj")
    args = ["serve", "-p", str(tmp_path / "proj"), "--port", "8799", "--no-open"]
    result = CliRunner().invoke(app, [*args, "--host", spelling])
    assert result.exit_code != 0
    assert "every machine on the network" in result.output
    assert served == []
