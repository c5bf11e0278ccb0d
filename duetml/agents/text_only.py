"""Models that turned out not to take photos, remembered per server and model.

A model duetml does not know is sent the contact sheets (it may well see). A text-only server
then breaks the stream before the first word (llama.cpp's OpenAI server: "can only concatenate
str (not "list") to str", an empty 200 stream when streaming) or answers 4xx/5xx naming the
content or the images; trying again the same way never helps. The agent then asks once more
without the photos (their text description), and duetml remembers it in the user's own data
folder (`text-only-models.json` under DUETML_HOME), keyed by the server's origin and the model,
so later requests go without photos from the start.
"""

from __future__ import annotations

import time
from typing import Any

from duetml import atomic, jsonfile
from duetml.llm.base import NAMES_IMAGES, Provider, RequestFailed
from duetml.llm.privacy import display_url, endpoint_key

TEXT_ONLY_FILE = "text-only-models.json"


def refuses_images(exc: RequestFailed) -> bool:
    """Whether a request carrying photos failed the way a text-only server fails: broken
    before any text (dropped, cut short, unreadable), or a 4xx/5xx naming content or images.
    Timeouts and servers that do not answer at all are not that."""
    if not exc.before_answer:
        return False
    if exc.broken:
        return True
    return exc.status is not None and exc.status >= 400 and bool(NAMES_IMAGES.search(exc.detail))


def _key(provider: Provider) -> tuple[str, str] | None:
    origin = endpoint_key(provider.base_url)
    return None if origin is None else (origin, provider.model)


def _entries() -> list[dict[str, Any]]:
    from duetml.paths import user_home

    models = jsonfile.read_object(user_home() / TEXT_ONLY_FILE).get("models")
    if not isinstance(models, list):
        return []
    return [
        m
        for m in models
        if isinstance(m, dict)
        and isinstance(m.get("endpoint"), str)
        and isinstance(m.get("model"), str)
    ]


def is_text_only(provider: Provider) -> bool:
    """Whether this server and model were found not to take photos."""
    key = _key(provider)
    return key is not None and any(
        (endpoint_key(m["endpoint"]), m["model"]) == key for m in _entries()
    )


def remember(provider: Provider) -> None:
    """Note that this server and model do not take photos (best effort: a folder that cannot
    be written only means the next session learns it again)."""
    from duetml.paths import user_home

    key = _key(provider)
    if key is None or is_text_only(provider):
        return
    entry = {
        "endpoint": display_url(provider.base_url) or key[0],
        "model": key[1],
        "learned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = user_home() / TEXT_ONLY_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, jsonfile.dumps({"format": 1, "models": [*_entries(), entry]}))
    except OSError:
        pass
