"""How big each agent request is, and the context duetml asks Ollama for (issue 11).

For the demo project (trained) and the Caltech subset (a project built with `duetml init
--from`, untrained; skipped when absent), every ask of the passive agent and one proactive pass
are sent through the real `ollama` client to the loopback Ollama of the tests, which fits the
prompt into its window like the real server. Printed per model family, agent and ask: the
estimated request size (text, images), the `num_ctx` the request asked for, and what the
server counted. The reference, measured in the same run: the very same request sent without
`num_ctx` (what duetml did before) to an Ollama with the common 2,048-token default, how many
tokens it kept, and whether the system prompt survived.

python bench/bench_context.py [--skip-caltech]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from llm_fakes import FakeOllamaServer, prompt_tokens  # noqa: E402

CALTECH = Path("/work/shared/data/caltech101-subset")
MODELS = {
    "qwen2.5vl:latest": ["completion", "vision"],
    "llava:latest": ["completion", "vision"],
    "gemma3:latest": ["completion", "vision"],
}
SYSTEM_START = " ".join(prompt_tokens("You work inside duetml"))
ASKS = (("passive", "chat"), ("passive", "data"), ("passive", "results"), ("proactive", ""))


def demo_project(root: Path) -> Any:
    from duetml.demo import create_demo_project
    from duetml.training import train_project

    project = create_demo_project(root)
    train_project(project)
    return project


def caltech_project(root: Path) -> Any:
    from duetml.project import Project

    project, _ = Project.init(
        root, goal="Tell apart 100 kinds of objects and animals", from_source=CALTECH
    )
    return project


def replay_without_num_ctx(body: dict[str, Any]) -> tuple[int, bool]:
    """The same request as duetml sent it before (no options) to a 2,048-token Ollama."""
    import ollama

    with FakeOllamaServer(models=MODELS) as reference:
        messages = [
            {"role": m["role"], "content": m["content"], "images": m.get("images") or None}
            for m in body["messages"]
        ]
        parts = list(ollama.Client(host=reference.url).chat(body["model"], messages, stream=True))
        kept = parts[-1].prompt_eval_count or 0
        return kept, SYSTEM_START in reference.seen_prompts[-1]


def measure(name: str, project: Any) -> None:
    from duetml.agents import AgentSession
    from duetml.llm import get_provider

    print(f"\n{name}: {project.root}")
    print(
        f"{'model':<10} {'agent/ask':<17} {'text':>6} {'img':>3} {'img tok':>7} {'total':>6} "
        f"{'num_ctx':>7} {'counted':>7} | {'no num_ctx: kept':>16} {'system?':>7}"
    )
    for model in MODELS:
        with FakeOllamaServer(models=MODELS, context_length=32768) as server:
            providers = {
                agent: get_provider("ollama", model, base_url=server.url, agent=agent)
                for agent in ("passive", "proactive")
            }
            session = AgentSession(project, providers["passive"], providers["proactive"])
            for agent, about in ASKS:
                started = time.perf_counter()
                if agent == "passive":
                    "".join(session.ask_stream("Is my data good for my goal?", about=about))
                else:
                    session.store.update_state(lambda s: s.pop("proactive_last_look", None))
                    session.proactive_pass(force=True)
                seconds = time.perf_counter() - started
                body = server.chat_requests[-1].json
                last = session.store.state()["last_request"][agent]
                kept, system_kept = replay_without_num_ctx(body)
                label = f"{agent}/{about}" if about else agent
                print(
                    f"{model.split(':')[0]:<10} {label:<17} {last['text_tokens']:>6} "
                    f"{last['images']:>3} {last['image_tokens']:>7} {last['tokens']:>6} "
                    f"{body['options']['num_ctx']:>7} {last['prompt_eval_count']:>7} | "
                    f"{kept:>16} {'kept' if system_kept else 'LOST':>7}  ({seconds:.1f} s)"
                )
            for notice in session.pop_notices():
                print(f"  note: {notice}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-caltech", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.pop("DUETML_MAX_CONTEXT", None)
        measure("demo project (80 photos, 4 categories, trained)", demo_project(Path(tmp) / "demo"))
        if args.skip_caltech or not CALTECH.is_dir():
            print(f"\nCaltech subset skipped ({CALTECH} is absent or --skip-caltech).")
        else:
            started = time.perf_counter()
            project = caltech_project(Path(tmp) / "caltech")
            built = time.perf_counter() - started
            measure(
                f"Caltech subset (5,233 photos, 100 categories, untrained; built in {built:.0f} s)",
                project,
            )
    print(
        "\ntext/img tok/total: duetml's conservative estimate; num_ctx: what the request asked; "
        "counted: the server's prompt_eval_count (the fake's simple tokenizer).\n"
        "Reference, same run: the same request without num_ctx, as duetml sent it before."
    )


if __name__ == "__main__":
    main()
