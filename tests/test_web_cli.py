"""`duetml serve`: its options, its refusals, and a real run stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import free_port, make_project
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from duetml.cli import app
from duetml.errors import InvalidNameError
from duetml.names import validate_category_name
from duetml.web.schema import CATEGORY_PATTERN, IMAGE_ID_PATTERN

runner = CliRunner()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace the server's run() and record what `serve` built, so no socket is opened."""
    from duetml.web import server

    runs: list[Any] = []

    def fake_run(self: Any) -> None:
        runs.append(self)
        self.started = True
        time.sleep(0.5)  # long enough for the browser opener to see it listening

    monkeypatch.setattr(server.DuetmlServer, "run", fake_run)
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    runs.append(opened)
    return runs


def test_serve_builds_the_app_on_loopback_and_prints_the_url(
    tmp_path: Path, served: list[Any]
) -> None:
    make_project(tmp_path / "proj")
    port = free_port()
    result = runner.invoke(
        app, ["serve", "-p", str(tmp_path / "proj"), "--port", str(port), "--no-open"]
    )
    assert result.exit_code == 0, result.output
    assert f"http://127.0.0.1:{port}/" in result.output
    server = served[1]
    assert server.config.host == "127.0.0.1" and server.config.port == port
    assert served[0] == []  # --no-open


def test_serve_opens_the_browser_once_it_listens(tmp_path: Path, served: list[Any]) -> None:
    make_project(tmp_path / "proj")
    port = free_port()
    result = runner.invoke(app, ["serve", "-p", str(tmp_path / "proj"), "--port", str(port)])
    assert result.exit_code == 0, result.output
    assert served[0] == [f"http://127.0.0.1:{port}/"]


def test_serve_picks_a_free_port_when_the_default_is_taken(
    tmp_path: Path, served: list[Any]
) -> None:
    from duetml.cli.serve_cmd import DEFAULT_PORT

    make_project(tmp_path / "proj")
    with socket.socket() as blocker:
        try:
            blocker.bind(("127.0.0.1", DEFAULT_PORT))
            blocker.listen()
        except OSError:
            pass  # something already holds it: the point stands
        result = runner.invoke(app, ["serve", "-p", str(tmp_path / "proj"), "--no-open"])
    assert result.exit_code == 0, result.output
    assert served[1].config.port != DEFAULT_PORT


def test_serve_refuses_a_busy_port_a_wildcard_host_and_a_non_project(
    tmp_path: Path, served: list[Any]
) -> None:
    make_project(tmp_path / "proj")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        result = runner.invoke(
            app, ["serve", "-p", str(tmp_path / "proj"), "--port", str(busy), "--no-open"]
        )
    assert result.exit_code != 0 and "in use" in result.output
    for host in ("0.0.0.0", "::"):
        result = runner.invoke(
            app, ["serve", "-p", str(tmp_path / "proj"), "--host", host, "--no-open"]
        )
        assert result.exit_code != 0 and "every machine on the network" in result.output
    result = runner.invoke(app, ["serve", "-p", str(tmp_path), "--no-open"])
    assert result.exit_code != 0
    assert len(served) == 1  # nothing was served


def test_serve_with_a_chosen_host_answers_to_that_name(tmp_path: Path, served: list[Any]) -> None:
    make_project(tmp_path / "proj")
    result = runner.invoke(
        app,
        [
            "serve",
            "-p",
            str(tmp_path / "proj"),
            "--host",
            "127.0.0.2",
            "--port",
            "8799",
            "--no-open",
            "--baseline",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "baseline" in result.output
    guard = served[1].web_app.asgi_handler
    assert "127.0.0.2:8799" in guard.allowed_hosts and "127.0.0.1:8799" in guard.allowed_hosts


@pytest.mark.slow
def test_a_real_serve_stops_cleanly_on_ctrl_c_with_pages_open(tmp_path: Path) -> None:
    make_project(tmp_path / "proj", per_category=2)
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from duetml.cli import main; main()",
            "serve",
            "-p",
            str(tmp_path / "proj"),
            "--port",
            str(port),
            "--no-open",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in first_line
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(base + "/api/project", timeout=2).status_code == 200
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        # An open event stream (a tab) must not hold the shutdown up.
        opened = threading.Event()

        def listen() -> None:
            try:
                with httpx.stream("GET", base + "/api/events", timeout=30) as stream:
                    for _ in stream.iter_lines():
                        opened.set()
            except httpx.HTTPError:
                pass

        threading.Thread(target=listen, daemon=True).start()
        assert opened.wait(10)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=15)
        assert process.returncode == 0, output
        assert time.monotonic() - started < 5
        assert "Stopped." in output and "Traceback" not in output
    finally:
        if process.poll() is None:
            process.kill()


# The schema's patterns must say exactly what the core accepts.
NAME_ALPHABET = st.sampled_from(
    list(' .aZé0nNuLlcCoO1¹$/\\:*?"|<>\t\x00\x7f\u00a0-_') + ["\u202e", "\u2067", "\u200f"]
)


def _core_accepts(name: str) -> bool:
    try:
        validate_category_name(name)
    except InvalidNameError:
        return False
    return True


@pytest.mark.slow
@settings(max_examples=600, suppress_health_check=list(HealthCheck), deadline=None)
@given(
    st.text(NAME_ALPHABET, max_size=8)
    | st.text(max_size=110)
    | st.from_regex(CATEGORY_PATTERN, fullmatch=True)
)
def test_category_pattern_agrees_with_the_core(name: str) -> None:
    import re

    assert bool(re.match(CATEGORY_PATTERN, name)) == _core_accepts(name), repr(name)


@pytest.mark.slow
@settings(max_examples=300, suppress_health_check=list(HealthCheck), deadline=None)
@given(st.from_regex(IMAGE_ID_PATTERN, fullmatch=True))
def test_image_id_pattern_only_allows_ids_inside_the_project(rel: str) -> None:
    split, category, filename = rel.split("/")
    # The core may still refuse what the pattern admits (e.g. names that are not in Unicode
    # NFC form, which no regex can express); it must never admit what could escape.
    assert split in ("train", "test") and _core_accepts(category)
    assert filename not in (".", "..") and not filename.startswith(".")
