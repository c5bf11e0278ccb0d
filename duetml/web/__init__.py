"""The web UI (`duetml serve`): a Litestar app over the same core the CLI uses."""

from duetml.web.app import create_app

__all__ = ["create_app"]
