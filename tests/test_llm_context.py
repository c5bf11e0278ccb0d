"""Requests that fit the model's context window, against loopback servers that behave like
real ones: an Ollama that keeps only the last N tokens of a prompt without `num_ctx`, and
OpenAI-compatible servers (llama.cpp, LM Studio, vLLM) that refuse an over-long request."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import ollama
import pytest
from agent_fakes import FakeProvider
from llm_fakes import FakeOllamaServer, FakeOpenAIServer

from duetml.agents import AgentSession, prompts
from duetml.agents.fitting import levels
from duetml.agents.passive import PassiveAgent
from duetml.agents.session import RETRY_SEPARATOR
from duetml.errors import LLMError
from duetml.llm import ChatMessage, ImageInput, get_provider
from duetml.llm import window as w
from duetml.llm.base import PreemptedError
from duetml.project import Project

GOAL = "Sort my clothes photos into tops, trousers, shoes and bags for a resale shop"
pytestmark = pytest.mark.project(per_category=6, goal=GOAL)
SYSTEM_START = "You work inside duetml"


def ollama_session(
    project: Project, server: FakeOllamaServer, model: str = "qwen2.5vl"
) -> AgentSession:
    passive = get_provider("ollama", model, base_url=server.url, agent="passive", max_retries=0)
    proactive = get_provider("ollama", model, base_url=server.url, agent="proactive")
    return AgentSession(project, passive=passive, proactive=proactive)


def spaced(text: str) -> str:
    """Text as the fake's tokenizer joins it, to look for it in `seen_prompts`."""
    from llm_fakes import prompt_tokens

    return " ".join(prompt_tokens(text))


# --- the truncating Ollama ------------------------------------------------------------------


def test_todays_request_loses_its_system_prompt_and_the_fitted_one_keeps_it(
    project: Project,
) -> None:
    with FakeOllamaServer() as server:  # a default context of 2,048 tokens, like many Ollamas
        session = ollama_session(project, server)
        messages, _ = PassiveAgent(session.passive_provider, session.builder).request(
            "", "data", session.conversation(), vision=True
        )
        # What duetml sent before: the same messages, no options.
        encoded = [
            {"role": m.role, "content": m.text_with_labels(), "images": [i.data for i in m.images]}
            for m in messages
        ]
        parts = list(ollama.Client(host=server.url).chat("qwen2.5vl", encoded, stream=True))
        assert parts[-1].prompt_eval_count == 2048  # cut to the default window, with 200 OK
        assert spaced(SYSTEM_START) not in server.seen_prompts[-1]  # the instructions are gone

        reply = "".join(session.ask_stream("", about="data"))
        assert reply == "ok"
        sent = server.chat_requests[-1].json
        num_ctx = sent["options"]["num_ctx"]
        seen = server.seen_prompts[-1]
        assert spaced(SYSTEM_START) in seen and spaced(GOAL) in seen
        assert len(sent["messages"][-1]["images"]) == 4  # nothing had to be dropped
        # The server kept the whole prompt, inside the window asked for.
        last = session.store.state()["last_request"]["passive"]
        assert last["prompt_eval_count"] < num_ctx and last["fitted"] is True
        assert last["tokens"] + w.REPLY_ROOM <= num_ctx and last["images"] == 4


@pytest.mark.slow
def test_num_ctx_is_capped_by_the_model_and_by_the_users_setting(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOllamaServer(context_length=3072) as server:
        session = ollama_session(project, server)
        "".join(session.ask_stream("", about="data"))
        first = server.chat_requests[-1].json
        assert first["options"]["num_ctx"] == 3072
        assert spaced(SYSTEM_START) in server.seen_prompts[-1]
        notices = session.pop_notices()
        assert len(notices) == 1 and "sees" in notices[0] and "3,072" in notices[0]
        last = session.store.state()["last_request"]["passive"]
        assert last["shrunk"] and last["tokens"] < last["full_tokens"]
        "".join(session.ask_stream("", about="data"))
        assert session.pop_notices() == []  # said once

    monkeypatch.setenv(w.CAP_ENV_VAR, "3000")
    with FakeOllamaServer() as server:
        session = ollama_session(project, server)
        "".join(session.ask_stream("", about="data"))
        sent = server.chat_requests[-1].json
        assert sent["options"]["num_ctx"] <= 3000
        seen = server.seen_prompts[-1]
        assert spaced(SYSTEM_START) in seen and spaced(GOAL) in seen
        assert "setting" in session.pop_notices()[0]
        last = session.store.state()["last_request"]["passive"]
        assert last["tokens"] < last["full_tokens"] and last["window"] == 3000


@pytest.mark.slow
def test_a_server_that_ignores_num_ctx_is_noticed_and_retried_smaller(project: Project) -> None:
    # A proxy that drops `options`, or a server whose own limit wins: it keeps 3,072 tokens.
    with FakeOllamaServer(default_num_ctx=3072, honour_num_ctx=False) as server:
        session = ollama_session(project, server)
        for turn in range(4):  # an earlier conversation makes the request long
            session.store.append(
                ("user", "chat", f"Question {turn}: " + "what about the shoes photos? " * 50),
                ("assistant", "chat", "Consider the lighting in the shoes photos. " * 40),
            )
        reply = "".join(session.ask_stream("Which category needs more photos?"))
        assert len(server.chat_requests) == 2
        assert spaced(SYSTEM_START) not in server.seen_prompts[0]
        assert spaced(SYSTEM_START) in server.seen_prompts[1]
        assert spaced("Which category needs more photos?") in server.seen_prompts[1]
        assert reply == "ok" + RETRY_SEPARATOR + "ok"
        notices = session.pop_notices()
        assert len(notices) == 1 and "OLLAMA_CONTEXT_LENGTH=" in notices[0]
        saved = session.conversation()[-1]
        assert saved["role"] == "assistant" and saved["content"] == "ok"  # the retry only
        # The next request fits the learned window at once: no second cut, no notice.
        "".join(session.ask_stream("And now?"))
        assert len(server.chat_requests) == 3
        assert spaced(SYSTEM_START) in server.seen_prompts[2]
        assert session.pop_notices() == []


def test_a_follow_up_with_a_cached_prefix_is_not_taken_for_a_cut() -> None:
    family = w.family_for("qwen2.5vl")
    system = ChatMessage("system", "You are helpful. " * 200)
    first = [system, ChatMessage("user", "state " * 300 + "question one")]
    second = [
        *first[:1],
        ChatMessage("user", "question one"),
        ChatMessage("assistant", "a"),
        ChatMessage("user", "state " * 300 + "question two"),
    ]
    # Ollama reuses the cached system prompt and counts only the rest.
    floor = w.uncached_floor(second, first, family)
    assert floor < w.uncached_floor(second, None, family)
    exchange = w.Exchange(prompt_eval_count=floor + 40, expected_floor=floor)
    assert not exchange.cut
    assert w.Exchange(prompt_eval_count=floor // 2, expected_floor=floor).cut


# --- OpenAI-compatible local servers refuse an over-long request ------------------------------

OVERFLOWS = {
    "llama.cpp": {
        "error": {
            "code": 400,
            "message": "the request exceeds the available context size, try increasing it",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": 9000,
            "n_ctx": 4096,
        }
    },
    "LM Studio": {
        "error": "Trying to keep the first 8952 tokens when context the overflows. However, the "
        "model is loaded with context length of only 4096 tokens, which is not enough. Try to "
        "load the model with a larger context length, or provide a shorter input"
    },
    "vLLM": {
        "object": "error",
        "message": "This model's maximum context length is 4096 tokens. However, you requested "
        "9500 tokens (8476 in the messages, 1024 in the completion). Please reduce the length "
        "of the messages or completion.",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("server_kind", list(OVERFLOWS))
def test_context_length_exceeded_is_recognised_shrunk_and_retried_once(
    project: Project, server_kind: str
) -> None:
    with FakeOpenAIServer(models=["qwen2.5-vl-7b"]) as server:
        server.queue_status(400, body=OVERFLOWS[server_kind])
        provider = get_provider(
            "openai", "qwen2.5-vl-7b", base_url=server.url, agent="passive", max_retries=0
        )
        session = AgentSession(project, passive=provider, proactive=FakeProvider())
        reply = "".join(session.ask_stream("", about="data"))
        assert reply == "ok"
        first, second = (r.json for r in server.chat_requests)
        assert len(server.chat_requests) == 2
        assert len(str(second)) < len(str(first))
        assert second["messages"][0]["content"] == first["messages"][0]["content"]  # system
        assert GOAL in str(second["messages"][-1]["content"])
        notices = session.pop_notices()
        assert any("4,096" in n and "larger context" in n for n in notices), notices
        last = session.store.state()["last_request"]["passive"]
        assert last["tokens"] + w.REPLY_ROOM <= 4096


@pytest.mark.slow
def test_a_second_refusal_reaches_the_user_as_one_sentence(project: Project) -> None:
    with FakeOpenAIServer(models=["local-model"]) as server:
        server.queue_status(400, body=OVERFLOWS["vLLM"], times=2)
        provider = get_provider("openai", "local-model", base_url=server.url, max_retries=0)
        session = AgentSession(project, passive=provider, proactive=FakeProvider())
        with pytest.raises(LLMError, match="longer than the model's context"):
            "".join(session.ask_stream("", about="data"))
        assert len(server.chat_requests) == 2  # retried once, not more


def test_overflow_wordings() -> None:
    assert w.overflow_limit("rate limit reached") == (False, None)
    assert w.overflow_limit(
        "The decoder prompt (length 5000) is longer than the maximum model length of 4096."
    ) == (True, 4096)
    assert w.overflow_limit("x", {"error": {"code": "context_length_exceeded"}})[0]


# --- the table and the estimate ------------------------------------------------------------


def sheet(width: int, height: int) -> ImageInput:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(out, "JPEG")
    return ImageInput.from_bytes(out.getvalue())


@pytest.mark.parametrize(
    ("model", "architecture", "family", "tokens"),
    [
        ("qwen2.5vl:7b", "qwen25vl", "Qwen2.5-VL", 594),
        ("gemma3:4b", "gemma3", "Gemma 3", 256),
        ("llava-llama3", "llama", "LLaVA 1.5", 576),
        ("llava:13b", "llama", "LLaVA 1.6", 2880),
        ("llama3.2-vision", "mllama", "Llama 3.2 Vision", 3202),
        ("somebody/new-vlm", None, "unknown", 2442),
    ],
)
def test_image_costs_per_family(
    model: str, architecture: str | None, family: str, tokens: int
) -> None:
    found = w.family_for(model, architecture)
    assert found.name == family
    size = w.estimate([ChatMessage("user", "", [sheet(453, 1024)])], found)
    assert size.image_tokens == tokens and size.images == 1


def test_qwen_pays_for_pixels_so_smaller_sheets_cost_less() -> None:
    qwen = w.family_for("qwen2.5vl")
    assert qwen.tokens(226, 512) < qwen.tokens(453, 1024) / 3
    assert w.family_for("gemma3").tokens(226, 512) == 256


def test_text_estimate_is_conservative_for_english_and_file_names() -> None:
    english = prompts.PASSIVE_SYSTEM
    assert w.text_tokens(english) > len(english) / 4  # real tokenizers: ~4 characters a token
    names = "Faces_easy/image_0001.jpg, Leopards/image_0192.jpg"
    assert w.text_tokens(names) >= 20
    assert w.text_tokens("日本語のテキスト") == 8


def test_shrinking_order_keeps_what_must_stay(project: Project) -> None:
    from duetml.agents.budget import DEFAULT_BUDGET

    steps = levels(DEFAULT_BUDGET, w.family_for("qwen2.5vl"))
    budgets = [s.budget for s in steps]
    # Dialogue goes first, then the sheets (smaller, then fewer), then the listings.
    first_fewer_sheets = next(i for i, b in enumerate(budgets) if b.max_sheets < 6)
    first_smaller = next(i for i, s in enumerate(steps) if s.image_scale < 1)
    last_history_cut = (
        max(i for i, b in enumerate(budgets) if b.history_chars != budgets[i - 1].history_chars)
        if len(budgets) > 1
        else 0
    )
    assert last_history_cut < first_smaller < first_fewer_sheets
    assert budgets[-1].categories_listed < DEFAULT_BUDGET.categories_listed
    assert levels(DEFAULT_BUDGET, w.family_for("llama3.2-vision"))[0].budget.max_sheets == 1


@pytest.mark.slow
def test_a_window_too_small_for_the_instructions_says_what_to_do(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(w.CAP_ENV_VAR, "1100")
    with FakeOllamaServer() as server:
        session = ollama_session(project, server)
        with pytest.raises(LLMError, match="max_context_tokens"):
            "".join(session.ask_stream("hello"))
        assert server.chat_requests == []  # nothing was sent that would lose its instructions


# --- one request at a time to a local server -----------------------------------------------


class CountingProvider(FakeProvider):
    """Records how many requests were in flight at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_flight = 0
        self.most = 0

    def _open_stream(self, messages: list[ChatMessage]) -> Iterator[Any]:
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            yield from super()._open_stream(messages)
        finally:
            with self._lock:
                self.in_flight -= 1


def test_a_question_goes_before_a_proactive_pass_at_the_same_server(project: Project) -> None:
    release = threading.Event()
    proactive = CountingProvider(gate=release, agent="proactive").enqueue(
        "Long advice " + "word " * 50
    )
    passive = CountingProvider(agent="passive").enqueue("The answer.")
    # Both on the same loopback address: one server.
    session = AgentSession(project, passive=passive, proactive=proactive)
    results: list[object] = []
    look = threading.Thread(target=lambda: results.append(session.proactive_pass(force=True)))
    look.start()
    deadline = time.monotonic() + 5
    while proactive.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    answer: list[str] = []
    ask = threading.Thread(target=lambda: answer.append("".join(session.ask_stream("hi"))))
    ask.start()
    time.sleep(0.3)
    assert answer == []  # waits: never two requests at once to one server
    assert session.proactive_pass(force=True) is None  # a new pass does not queue up
    release.set()
    ask.join(10)
    look.join(10)
    assert answer == ["The answer."]
    assert results == [None]  # the pass stopped at its first piece and gave way
    assert passive.most == 1 and proactive.most == 1
    events = [e["event"] for e in project.log.recent(limit=50)]
    assert "agent_proactive" in events


def test_the_gate_lets_a_waiting_urgent_request_in_first() -> None:
    gate = w.ServerGate()
    order: list[str] = []

    def take(name: str, urgent: bool) -> None:
        with gate.hold(urgent=urgent, timeout=5):
            order.append(name)

    with gate.hold(urgent=False, timeout=1):
        background = threading.Thread(target=take, args=("background", False))
        background.start()
        time.sleep(0.1)
        question = threading.Thread(target=take, args=("question", True))
        question.start()
        deadline = time.monotonic() + 2
        while not gate.urgent_waiting and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gate.urgent_waiting and order == []
    background.join(5)
    question.join(5)
    assert order == ["question", "background"]
    assert not gate.busy
    assert issubclass(PreemptedError, LLMError)


# --- duetml llm status ----------------------------------------------------------------------


@pytest.mark.slow
def test_llm_status_shows_context_last_request_and_warns_of_two_models(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from duetml.cli import app
    from duetml.project import Project

    root = str(project.root)
    # 3,584: room for the instructions (which grew with issue 16's wording of the findings)
    # and one shrunk sheet, so the status has images to report.
    with FakeOllamaServer(context_length=3584) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        monkeypatch.setenv("DUETML_PASSIVE_LLM", "ollama:qwen2.5vl")
        monkeypatch.setenv("DUETML_PROACTIVE_LLM", "ollama:llava")
        session = AgentSession(Project.open(root))
        "".join(session.ask_stream("", about="data"))
        result = CliRunner().invoke(app, ["llm", "status", "-p", root])
        assert result.exit_code == 0, result.output
        out = result.stdout
        assert out.count("context: model 3,584 tokens") == 2
        assert "last request (ollama:qwen2.5vl): about " in out
        assert "in a context of 3,584; fitted after shrinking: the assistant saw" in out
        assert "Warning: The two agents use different local models" in out
        assert "qwen2.5vl (6.2 GB loaded)" in out and "llava (6.0 GB on disk)" in out

        as_json = CliRunner().invoke(app, ["llm", "status", "--json", "-p", root])
        import json

        status = json.loads(as_json.stdout)
        last = status["agents"]["passive"]["last_request"]
        assert last["fitted"] is True and last["tokens"] <= 3584 and last["images"] >= 1
        assert status["agents"]["proactive"]["last_request"] is None

        monkeypatch.setenv("DUETML_PROACTIVE_LLM", "ollama:qwen2.5vl")
        same = CliRunner().invoke(app, ["llm", "status", "-p", root])
        assert "Warning" not in same.stdout  # one model, loaded once


def test_a_broken_cap_setting_is_one_sentence(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(w.CAP_ENV_VAR, "lots")
    session = AgentSession(project, passive=FakeProvider(), proactive=FakeProvider())
    with pytest.raises(LLMError, match="not a number of tokens: write one like 8192"):
        "".join(session.ask_stream("hello"))


@pytest.mark.slow
def test_a_vllm_that_lists_its_context_gets_a_fitting_request_at_once(project: Project) -> None:
    with FakeOpenAIServer(models=["qwen2.5-vl-7b"], max_model_len=3072) as server:
        provider = get_provider("openai", "qwen2.5-vl-7b", base_url=server.url, max_retries=0)
        assert provider.model_profile().context_length == 3072
        session = AgentSession(project, passive=provider, proactive=FakeProvider())
        assert "".join(session.ask_stream("", about="data")) == "ok"
        assert len(server.chat_requests) == 1  # no refusal needed
        last = session.store.state()["last_request"]["passive"]
        assert last["tokens"] + w.reply_room(3072) <= 3072 and last["shrunk"]


def test_llm_status_shows_no_context_for_a_model_that_is_not_installed(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from duetml.agents.status import llm_status

    with FakeOllamaServer() as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        monkeypatch.setenv("DUETML_PASSIVE_LLM", "ollama:moondream")
        status = llm_status(project)
        passive = status["agents"]["passive"]
        assert passive["model_installed"] is False and "context_length" not in passive
        assert status["agents"]["proactive"]["context_length"] == 32768
        assert status["memory_warning"] is None  # the other model is not there to load
