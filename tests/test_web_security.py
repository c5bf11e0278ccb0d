"""security.md, item by item, against the app that `duetml serve` runs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import demo_photos, make_project
from litestar import Litestar
from litestar.testing import TestClient
from web_helpers import PORT, asgi_request, fake_agents

from duetml.agents import AgentSession
from duetml.project import Project
from duetml.web import create_app
from duetml.web.errors import scrub
from duetml.web.routes_data import UPLOAD_MAX_BYTES

OK_HOST = f"127.0.0.1:{PORT}"
# The `app` fixture: conftest's, on its `project` (3 photos of each demo category), with the
# fake agents, answering to the host the user chose too.
pytestmark = pytest.mark.app(allowed_hosts=["duet.lan"])


def category_names(project: Project) -> list[str]:
    return sorted(p.name for p in (project.root / "train").iterdir())


# ----- 1. Host check (DNS rebinding) -------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        [("host", "evil.example")],
        [("host", f"evil.example:{PORT}")],
        [("host", f"localhost.evil.example:{PORT}")],
        [("host", "0.0.0.0")],
        [("host", f"0.0.0.0:{PORT}")],
        [("host", "")],
        [("x-forwarded-host", "localhost")],  # no Host at all
        [("x-forwarded-host", f"127.0.0.1:{PORT}")],
        [("host", "127.0.0.1")],  # right name, no port
        [("host", "localhost:1")],  # right name, wrong port
        [("host", OK_HOST), ("host", "evil.example")],  # two Host headers
    ],
)
def test_foreign_hosts_are_refused_and_change_nothing(
    app: Litestar, project: Project, headers: list[tuple[str, str]]
) -> None:
    before = category_names(project)
    for method, path, body in [
        ("GET", "/", []),
        ("GET", "/api/categories", []),
        ("GET", "/api/nothing-here", []),
        ("POST", "/api/categories/add", [b'{"name": "rebound"}']),
    ]:
        response = asgi_request(
            app, method, path, [*headers, ("content-type", "application/json")], body
        )
        assert response.status == 403, (headers, path)
        assert "error" in response.json()
        assert response.received == 0  # refused before the body was read
    assert category_names(project) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "host", [OK_HOST, f"localhost:{PORT}", f"[::1]:{PORT}", f"LOCALHOST:{PORT}", f"duet.lan:{PORT}"]
)
def test_loopback_names_and_the_chosen_host_are_allowed(app: Litestar, host: str) -> None:
    response = asgi_request(app, "GET", "/api/project", [("host", host)])
    assert response.status == 200


def test_default_allowed_hosts_do_not_include_other_names(project: Project) -> None:
    app = create_app(project.root, baseline=True, port=9999)
    assert asgi_request(app, "GET", "/", [("host", "duet.lan:9999")]).status == 403
    assert asgi_request(app, "GET", "/", [("host", f"127.0.0.1:{PORT}")]).status == 403
    assert asgi_request(app, "GET", "/", [("host", "127.0.0.1:9999")]).status == 200


# ----- 2. Cross-site writes -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [
        [("origin", "http://evil.example")],
        [("origin", "null")],
        [("origin", f"http://localhost.evil.example:{PORT}")],
        [("origin", "http://127.0.0.1:1")],  # another local service
        [("origin", f"https://127.0.0.1:{PORT}")],
        [("origin", f"http://127.0.0.1:{PORT}"), ("sec-fetch-site", "cross-site")],
        [("sec-fetch-site", "cross-site")],
        [("sec-fetch-site", "same-site")],
        [("sec-fetch-site", "none")],
        [("origin", "http://evil.example"), ("sec-fetch-site", "same-origin")],
    ],
)
def test_cross_site_writes_are_refused_and_write_nothing(
    app: Litestar, project: Project, extra: list[tuple[str, str]]
) -> None:
    before = category_names(project)
    journal = (project.state_dir / "journal.json").read_bytes()
    headers = [("host", OK_HOST), ("content-type", "application/json"), *extra]
    for path, body in [
        ("/api/categories/add", b'{"name": "csrf"}'),
        ("/api/categories/remove", b'{"name": "hat"}'),
        ("/api/undo", b""),
        ("/api/redo", b""),
        ("/api/agents/llm/choice", b'{"agent": "passive", "provider": "none"}'),
        ("/api/train", b""),
        ("/api/agents/proactive", b'{"enabled": false}'),
        ("/api/chat", b'{"message": "hi"}'),
    ]:
        response = asgi_request(app, "POST", path, headers, [body])
        assert response.status == 403, (extra, path)
        assert "access-control-allow-origin" not in response.headers
    assert category_names(project) == before
    assert (project.state_dir / "journal.json").read_bytes() == journal
    assert not (project.state_dir / "model").exists()


def test_cross_site_multipart_upload_is_refused(project: Project, app: Litestar) -> None:
    with TestClient(app, base_url=f"http://{OK_HOST}") as client:
        files = [
            ("files", (p.name, p.read_bytes(), "image/jpeg"))
            for p in demo_photos("hat", 2, skip=10)
        ]
        response = client.post(
            "/api/upload",
            params={"category": "hat"},
            files=files,
            headers={"Origin": "http://evil.example"},
        )
        assert response.status_code == 403
        assert len(list((project.root / "train" / "hat").iterdir())) == 3
        # The same upload from the page itself goes through.
        same = client.post(
            "/api/upload",
            params={"category": "hat"},
            files=files,
            headers={"Origin": f"http://{OK_HOST}", "Sec-Fetch-Site": "same-origin"},
        )
        assert same.status_code == 200 and len(same.json()["added"]) == 2


@pytest.mark.parametrize(
    "origin", [f"http://127.0.0.1:{PORT}", f"http://localhost:{PORT}", f"http://[::1]:{PORT}"]
)
def test_same_origin_writes_are_allowed(app: Litestar, project: Project, origin: str) -> None:
    headers = [
        ("host", OK_HOST),
        ("content-type", "application/json"),
        ("origin", origin),
        ("sec-fetch-site", "same-origin"),
    ]
    response = asgi_request(app, "POST", "/api/categories/add", headers, [b'{"name": "fine"}'])
    assert response.status == 201
    assert "fine" in category_names(project)


def test_no_cors_header_ever_reflects_an_origin(app: Litestar) -> None:
    for method in ("GET", "OPTIONS", "POST"):
        response = asgi_request(
            app,
            method,
            "/api/categories",
            [
                ("host", OK_HOST),
                ("origin", "http://evil.example"),
                ("access-control-request-method", "POST"),
            ],
        )
        assert not any(k.startswith("access-control-") for k in response.headers), method


# ----- 3. Paths -----------------------------------------------------------------------------------

TRAVERSALS = [
    "../duetml.toml",
    "../../../../etc/passwd",
    "/etc/passwd",
    "train/../duetml.toml",
    "train/hat/../../duetml.toml",
    "%2e%2e%2fduetml.toml",
    "%252e%252e%252fduetml.toml",
    "..%2f..%2fetc%2fpasswd",
    "train\\hat\\..\\..\\duetml.toml",
    "train/hat/x.jpg\x00.png",
    "train/CON/x.jpg",
    "train/hat/NUL.jpg",
    ".duetml/journal.json",
    "C:/Windows/win.ini",
    "train/hat",
    "",
]


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_image_ids_cannot_leave_the_project(app: Litestar, project: Project, bad: str) -> None:
    secret = (project.root / "duetml.toml").read_text()
    with TestClient(app, base_url=f"http://{OK_HOST}") as client:
        for path in ("/api/thumb", "/api/image"):
            response = client.get(path, params={"image": bad})
            assert response.status_code in (400, 404), (path, bad)
            assert "root:" not in response.text and secret[:40] not in response.text
            assert str(project.root) not in response.text
        for path, body in [
            ("/api/images/move", {"images": [bad], "category": "shoes"}),
            ("/api/images/remove", {"images": [bad]}),
        ]:
            response = client.post(path, json=body)
            assert response.status_code in (400, 404), (path, bad)
    assert (project.root / "duetml.toml").read_text() == secret


def test_raw_encoded_traversal_in_the_query_string_is_refused(app: Litestar) -> None:
    for query in (
        "image=..%2F..%2Fduetml.toml",
        "image=%2e%2e%2fduetml.toml",
        "image=%252e%252e%252f",
        "image=train%2Fhat%2F..%2F..%2Fduetml.toml",
        "image=%00",
    ):
        response = asgi_request(app, "GET", "/api/image", [("host", OK_HOST)], query=query)
        assert response.status in (400, 404), query


def test_symlinks_inside_the_project_are_never_followed(
    app: Litestar, project: Project, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(demo_photos("hat", 1, skip=20)[0].read_bytes())
    (project.root / "train" / "hat" / "link.jpg").symlink_to(outside)
    (project.root / "train" / "linked").symlink_to(tmp_path)
    with TestClient(app, base_url=f"http://{OK_HOST}") as client:
        listing = client.get("/api/categories").json()
        ids = [i["id"] for c in listing["categories"] for i in c["images"]]
        assert "train/hat/link.jpg" not in ids and "linked" not in [
            c["name"] for c in listing["categories"]
        ]
        for path in ("/api/thumb", "/api/image"):
            assert client.get(path, params={"image": "train/hat/link.jpg"}).status_code == 400
            assert client.get(path, params={"image": "train/linked/outside.jpg"}).status_code == 400
        assert (
            client.post(
                "/api/upload",
                params={"category": "linked"},
                files=[("files", ("a.jpg", outside.read_bytes(), "image/jpeg"))],
            ).status_code
            == 400
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["outside.jpg", "proj"])


# ----- 4./5. Names and uploads --------------------------------------------------------------------


def test_413_comes_from_content_length_before_the_body_is_read(
    app: Litestar, project: Project
) -> None:
    headers = [
        ("host", OK_HOST),
        ("content-type", "multipart/form-data; boundary=xyz"),
        ("content-length", str(UPLOAD_MAX_BYTES * 4)),
    ]
    chunks = (b"x" * 65536 for _ in range(10_000))
    response = asgi_request(app, "POST", "/api/upload", headers, chunks, query="category=hat")
    assert response.status == 413
    assert response.received == 0
    assert len(list((project.root / "train" / "hat").iterdir())) == 3


def test_413_while_streaming_a_body_without_length(app: Litestar, project: Project) -> None:
    chunk = b"x" * (1024 * 1024)

    def endless_photo() -> Iterator[bytes]:
        yield (
            b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n"
        )
        for _ in range(UPLOAD_MAX_BYTES // len(chunk) * 4):
            yield chunk

    headers = [("host", OK_HOST), ("content-type", "multipart/form-data; boundary=xyz")]
    response = asgi_request(
        app, "POST", "/api/upload", headers, endless_photo(), query="category=hat"
    )
    assert response.status == 413
    assert response.received <= UPLOAD_MAX_BYTES + len(chunk)
    assert len(list((project.root / "train" / "hat").iterdir())) == 3


def test_json_bodies_are_capped_too(app: Litestar) -> None:
    body = json.dumps({"name": "x" * (2 * 1024 * 1024)}).encode()
    headers = [
        ("host", OK_HOST),
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
    ]
    response = asgi_request(app, "POST", "/api/categories/add", headers, [body])
    assert response.status == 413 and response.received == 0


def test_decompression_bombs_and_mislabelled_files_are_rejected(
    app: Litestar, project: Project
) -> None:
    import io

    from PIL import Image

    bomb = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(bomb, "PNG")  # 144 megapixels in a few KB
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    with TestClient(app, base_url=f"http://{OK_HOST}") as client:
        report = client.post(
            "/api/upload",
            params={"category": "hat"},
            files=[
                ("files", ("bomb.png", bomb.getvalue(), "image/png")),
                ("files", ("vector.jpg", svg, "image/jpeg")),
                ("files", ("x.gif", b"GIF89a" + b"\x00" * 20, "image/gif")),
            ],
        ).json()
    assert report["added"] == []
    assert {r["source"] for r in report["rejected"]} == {"bomb.png", "vector.jpg", "x.gif"}
    assert len(list((project.root / "train" / "hat").iterdir())) == 3


# ----- 6. Served content -------------------------------------------------------------------------


def test_every_response_carries_nosniff_and_the_policy(app: Litestar, project: Project) -> None:
    with TestClient(app, base_url=f"http://{OK_HOST}") as client:
        image = client.get("/api/categories").json()["categories"][0]["images"][0]["id"]
        for path, params in [
            ("/", None),
            ("/static/style.css", None),
            ("/api/categories", None),
            ("/api/thumb", {"image": image}),
            ("/api/image", {"image": image}),
            ("/api/nothing", None),
            ("/api/log", None),
        ]:
            response = client.get(path, params=params)
            assert response.headers["x-content-type-options"] == "nosniff", path
            assert "default-src 'self'" in response.headers["content-security-policy"], path
            assert response.headers["x-frame-options"] == "DENY"
        assert (
            client.get("/api/image", params={"image": image}).headers["content-type"]
            == "image/jpeg"
        )


# ----- 9. Secrets and error bodies ---------------------------------------------------------------


def test_errors_carry_no_trace_and_no_absolute_path(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory, _, _ = fake_agents()

    def broken(project: Project) -> AgentSession:
        session = factory(project)
        monkeypatch.setattr(
            session,
            "conversation",
            lambda: (_ for _ in ()).throw(RuntimeError(f"boom in {project.root}/secret.txt")),
        )
        return session

    app = create_app(project.root, agents=broken, port=PORT)
    with TestClient(app, base_url=f"http://{OK_HOST}") as client:
        responses = [
            client.get("/api/conversation"),  # an unexpected exception: generic 500
            client.get("/api/image", params={"image": "train/hat/missing.jpg"}),
            client.post("/api/categories/add", json={"name": "../x"}),
            client.post(
                "/api/categories/add",
                content=b"{not json",
                headers={"content-type": "application/json"},
            ),
            client.post("/api/predict", files=[("files", ("a.jpg", b"x", "image/jpeg"))]),
            client.post("/api/evaluation"),
            client.get("/api/thumb"),
        ]
        assert responses[0].status_code == 500
        for response in responses:
            body = response.text
            assert set(response.json()) <= {"error"}, body
            assert "Traceback" not in body and 'File "' not in body and "boom" not in body
            assert str(project.root) not in body and os.path.expanduser("~") + "/" not in body


def test_scrub_removes_paths_but_keeps_urls_and_ids() -> None:
    root = Path("/home/ana/photos/proj")
    assert (
        scrub(f"{root} is not a duetml project", (root,))
        == "the project folder is not a duetml project"
    )
    assert "/tmp/x/y" not in scrub("cannot read /tmp/x/y.jpg now", ())
    kept = (
        "Ollama is not running at http://127.0.0.1:11434: start it; "
        "see train/hat/ab.jpg (12 images/s)"
    )
    assert scrub(kept, ()) == kept
    # A URL's path names a server, not this machine: kept; a file URL's path is not.
    cloud = "No API key is set for https://api.openai.com/v1: set OPENAI_API_KEY."
    assert scrub(cloud, ()) == cloud
    assert "/home/ana" not in scrub("see file:///home/ana/secret.jpg and //home/ana/x.jpg", ())


def test_no_api_key_in_any_response(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-proj-SECRETSECRETSECRET-9876"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("DUETML_PASSIVE_LLM", "openai:gpt-4o")
    monkeypatch.setenv("DUETML_PROACTIVE_LLM", "openai:gpt-4o")
    project = make_project(tmp_path / "keyed", per_category=2)
    app = create_app(project.root, port=PORT)
    with TestClient(app, base_url=f"http://{OK_HOST}") as client:
        paths = [
            "/",
            "/api/project",
            "/api/agents",
            "/api/conversation",
            "/api/status",
            "/api/categories",
            "/api/log",
            "/api/train",
            "/schema/openapi.json",
        ]
        bodies = [client.get(p).text for p in paths]
        bodies.append(client.post("/api/chat", json={"message": "hello"}).text)
        bodies.append(client.get("/api/agents").text)
        for text in bodies:
            assert key not in text and "SECRETSECRET" not in text and "9876" not in text
    for file in project.root.rglob("*"):
        if file.is_file():
            assert b"SECRETSECRET" not in file.read_bytes(), file
