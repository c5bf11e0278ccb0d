"""Running the app with uvicorn, so that Ctrl-C (or a test stopping it) ends it at once."""

from __future__ import annotations

import socket
from typing import Any

import uvicorn
from litestar import Litestar


class DuetmlServer(uvicorn.Server):
    """uvicorn waits for open responses before it shuts down; the pages' event streams never
    end by themselves, so they are told to finish first."""

    def __init__(self, app: Litestar, host: str, port: int, **config: Any) -> None:
        self.web_app = app
        options = {
            "log_level": "warning",
            "access_log": False,
            "timeout_graceful_shutdown": 3,
            "lifespan": "on",
            **config,
        }
        super().__init__(uvicorn.Config(app, host=host, port=port, **options))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        web = getattr(self.web_app.state, "duetml", None)
        if web is not None:
            web.hub.stop()
        await super().shutdown(sockets)


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Like uvicorn: a port in TIME_WAIT is usable, one with a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", start: int = 8765, tries: int = 50) -> int | None:
    for port in range(start, start + tries):
        if port_is_free(host, port):
            return port
    return None
