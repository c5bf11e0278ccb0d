"""A key echoed back by a server is masked also when the server changed its case or wrapped
it in base64 (issue 7): the user's sentence never carries it, whatever the server did."""

from __future__ import annotations

import base64

import pytest
from llm_fakes import FakeOpenAIServer

from duetml.errors import LLMError
from duetml.llm import ChatMessage
from duetml.llm.openai_provider import OpenAIProvider
from duetml.llm.privacy import Secret

KEY = "sk-proj-Ab3dEf9hIjKlMn0pQrStUvWx-42zz"


def b64(data: str, urlsafe: bool = False) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(data.encode()).decode()


def leaks(text: str) -> list[str]:
    """What of the key can still be read from `text`, case-folded or base64-decoded."""
    found = []
    if KEY.lower() in text.lower():
        found.append("plain")
    for prefix in ("", "x", "xy", "Basic user:", "Bearer "):
        for urlsafe in (False, True):
            encoded = b64(prefix + KEY, urlsafe)
            # The characters that depend only on the key (4 at each end may mix in neighbours).
            if encoded[len(prefix) * 2 : -4] in text:
                found.append(f"base64 after {prefix!r}")
    return found


ECHOES = [
    KEY.upper(),
    KEY.lower(),
    KEY.swapcase(),
    b64(KEY),
    b64("x" + KEY),
    b64("xy" + KEY),
    b64("user:" + KEY),
    b64("Bearer " + KEY),
    b64("?" * 7 + KEY + "\xff", urlsafe=True),
]


@pytest.mark.parametrize("echo", ECHOES)
def test_secret_masks_the_key_case_folded_and_base64_wrapped(echo: str) -> None:
    text = f"invalid credentials: {echo} (request 42)"
    assert leaks(text), "the test must start from a text that shows the key"
    redacted = Secret(KEY).redact(text)
    assert leaks(redacted) == [] and "sk-…42zz" in redacted
    assert redacted.startswith("invalid credentials: ") and redacted.endswith(" (request 42)")


def test_ordinary_text_is_left_alone() -> None:
    text = "The model gpt-4o is overloaded; aGVsbG8gd29ybGQ= is base64 too."
    assert Secret(KEY).redact(text) == text


def test_a_server_echoing_the_key_upper_cased_or_in_base64_never_shows_it() -> None:
    body = {
        "error": {
            "message": f"Key {KEY.upper()} refused; Authorization was Basic "
            f"{b64('user:' + KEY)} and {b64('xy' + KEY, urlsafe=True)}",
            "type": "invalid_request_error",
        }
    }
    with FakeOpenAIServer(models=["gpt-4o"]) as server:
        server.queue_status(400, body=body)
        provider = OpenAIProvider("gpt-4o", base_url=server.url, api_key=KEY, env={})
        with pytest.raises(LLMError) as caught:
            provider.chat([ChatMessage("user", "hello")])
    message = str(caught.value)
    assert "HTTP 400" in message and leaks(message) == []
