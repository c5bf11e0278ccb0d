"""Issue 12: the page never tells a web user to run a shell command.

Every sentence in the core that names a `duetml ...` command either carries its own page
wording (`DuetmlError(..., web=...)`), or is turned into what to click by
`duetml.errors.page_wording` (which the web layer applies to every sentence it sends), or is
listed below with the reason it cannot reach the page. The walk reads the source, so a new
message that names a command fails here until it says what to click.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import cast

import pytest
from web_helpers import WebClient

import duetml
from duetml.agents import choice
from duetml.errors import page_wording
from duetml.llm import get_provider

PACKAGE = Path(duetml.__file__).parent

# (file, a piece of the sentence) -> why it never reaches the page.
NEVER_ON_THE_PAGE = {
    ("demo.py", "duetml demo OTHER_DIR"): "`duetml demo` is a command; the page has no demo",
    ("errors.py", "duetml advise"): "the CLI's exit-code table",
    ("project.py", "duetml init DIR"): "the server opens its project before any page exists",
    ("project.py", "duetml categories show NAME"): "find_image serves the CLI's move/remove",
    # The terminal running the server is where the details are: it names it, asks no command.
    ("web/errors.py", "duetml serve"): "names the server's terminal, asks for no command",
    ("web/jobs.py", "duetml serve"): "names the server's terminal, asks for no command",
    ("web/guard.py", "duetml serve"): "the token the server printed in its terminal",
    # The patterns page_wording itself replaces.
    ("errors.py", "`duetml llm"): "page_wording's own table",
    ("errors.py", "run `duetml train`"): "page_wording's own table",
}


def _sentences() -> list[tuple[str, int, str, bool]]:
    """(file, line, sentence with placeholders as X, has web=) for every string naming a
    `duetml ...` command outside the CLI package, docstrings left out."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("cli/"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                text = "".join(
                    str(v.value) if isinstance(v, ast.Constant) else "X" for v in node.values
                )
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if isinstance(parents.get(node), ast.JoinedStr):
                    continue  # counted with its f-string
                text = node.value
            else:
                continue
            if "`duetml " not in text and "`duetml`" not in text or id(node) in docstrings:
                continue
            parent = parents.get(node)
            if isinstance(parent, ast.keyword) and parent.arg in ("summary", "description"):
                continue  # the API's documentation (/schema), for programmers, not a message
            has_web, current = False, cast(ast.AST, node)
            while current in parents:
                current = parents[current]
                if isinstance(current, ast.Call):
                    has_web = any(k.arg == "web" for k in current.keywords)
                    break
            found.append((rel, node.lineno, text, has_web))
    return found


@pytest.mark.slow
def test_every_sentence_naming_a_command_has_a_page_wording() -> None:
    sentences = _sentences()
    assert len(sentences) > 20  # the walk finds them (train, backbones, llm use, ...)
    missing = []
    for rel, line, text, has_web in sentences:
        if has_web or "`duetml" not in page_wording(text):
            continue
        if any(rel == f and piece in text for (f, piece) in NEVER_ON_THE_PAGE):
            continue
        missing.append(f"{rel}:{line}: {text[:100]}")
    assert missing == [], "\n".join(missing)


def test_generated_llm_hints_read_as_clicks() -> None:
    provider = get_provider("none", agent="proactive")
    hint = provider.use_hint("ollama:qwen2.5vl")
    assert page_wording(f"choose one with {hint}.") == (
        "choose one with Assistant settings (the proactive agent: ollama:qwen2.5vl)."
    )
    openai = get_provider("openai", "gpt-4o", agent="passive")
    error = choice.consent_error(openai, "passive")
    assert "`duetml" in str(error) and "duetml" not in (error.web or "duetml")
    assert "Allow for this project" in (error.web or "")


@pytest.mark.project(per_category=2, categories=("hat", "shoes"))
@pytest.mark.app(baseline=True)
def test_errors_and_warnings_reach_the_page_without_commands(client: WebClient) -> None:
    project = client.project
    # No model yet: the core says `duetml train`, the page says Train.
    photo = next(project.root.glob("train/hat/*.jpg"))
    files = [("files", (photo.name, photo.read_bytes(), "image/jpeg"))]
    refused = client.post("/api/predict", files=files)
    assert refused.status_code == 409
    assert "click Train" in refused.json()["error"]
    assert "duetml" not in refused.json()["error"]
    # A category that is not there (a stale page): the shell's hint is `duetml categories`.
    merged = client.post("/api/categories/merge", json={"sources": ["nothere"], "target": "hat"})
    assert merged.status_code == 404
    assert merged.json()["error"] == (
        "There is no category 'nothere': choose one of the categories on the page "
        "(reload it if it is old)."
    )
    status = client.get("/api/status").json()
    assert all("`duetml" not in w["message"] for w in status["warnings"])
