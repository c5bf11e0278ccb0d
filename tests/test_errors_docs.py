"""The error tree, the exit codes and the texts that describe them stay in step: the tree in
duetml/errors.py's docstring, EXIT_CODES, the README's table and every `--help` text (and CLI
module docstring) that names an exit code are checked against the error classes themselves."""

from __future__ import annotations

import importlib
import pkgutil
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

import duetml
from duetml import errors
from duetml.errors import EXIT_CODES, EXIT_CODES_OUTSIDE_TREE, DuetmlError

README = Path(__file__).resolve().parent.parent / "README.md"
# Words too common to tie a phrase to a meaning of EXIT_CODES.
_COMMON = {"the", "not", "and", "for", "when", "could", "with", "that", "this", "have", "from"}


def _import_every_module() -> None:
    """Error classes live beside the code that raises them (llm.base, agents.choice): import
    the whole package, so the walk below meets every one."""
    for module in pkgutil.walk_packages(duetml.__path__, "duetml."):
        if module.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(module.name)
        except ImportError as exc:  # an optional extra (torch) is not installed
            if not exc.name or exc.name.startswith("duetml"):
                raise


def _error_classes(root: type[DuetmlError] = DuetmlError) -> Iterator[type[DuetmlError]]:
    yield root
    for child in root.__subclasses__():
        yield from _error_classes(child)


@pytest.fixture(scope="module")
def classes() -> list[type[DuetmlError]]:
    _import_every_module()
    return list(_error_classes())


def _drawn_tree() -> str:
    doc = errors.__doc__ or ""
    start = doc.index("    error ")
    end = doc.index("\n\n", start)
    return textwrap.dedent(doc[start:end])


def test_the_docstring_draws_every_error_class(classes: list[type[DuetmlError]]) -> None:
    assert len(classes) >= 27  # the tree as drawn when this test was written
    drawn = _drawn_tree()
    expected = errors.draw_error_tree()
    assert drawn == expected, f"duetml/errors.py's tree should read:\n{expected}"
    for cls in classes:
        assert re.search(rf"\b{cls.__name__}\b", drawn)
        # Each class says what it is in its own words, not its parent's.
        assert "summary" in vars(cls), f"{cls.__name__} has no summary of its own"


def test_every_exit_code_has_a_meaning_and_a_use(classes: list[type[DuetmlError]]) -> None:
    from duetml.cli.guard import EXIT_PARTIAL

    used = {cls.exit_code for cls in classes}
    assert used <= set(EXIT_CODES), used - set(EXIT_CODES)
    assert used | set(EXIT_CODES_OUTSIDE_TREE) == set(EXIT_CODES)
    assert not used & set(EXIT_CODES_OUTSIDE_TREE)
    assert EXIT_PARTIAL in EXIT_CODES_OUTSIDE_TREE and "some inputs" in EXIT_CODES[EXIT_PARTIAL]


def test_the_readme_table_is_exit_codes() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- exit codes:[^\n]*-->\n(.*?)\n<!-- end of exit codes -->", text, re.S)
    assert match is not None, "the README lost its exit-code table's markers"
    expected = errors.exit_code_table()
    assert match.group(1) == expected, f"the README's exit-code table should read:\n{expected}"


def _help_texts() -> Iterator[tuple[str, str]]:
    """(where, text) for every command's help and every CLI module's docstring."""
    import duetml.cli
    from duetml.cli.app import app  # the Typer app, once every command module registered

    command = typer.main.get_command(app)

    def walk(cmd: Any, path: str) -> Iterator[tuple[str, str]]:
        yield path, cmd.help or ""
        # Typer's own click classes: a group is what has subcommands.
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    yield from walk(command, "duetml")
    for module in pkgutil.iter_modules(duetml.cli.__path__, "duetml.cli."):
        yield module.name, importlib.import_module(module.name).__doc__ or ""


def exit_claims(text: str) -> list[tuple[int, str]]:
    """(code, what the text says it means) for each exit code a text names: in sentences
    that speak of exits, each number followed by words ("7 when the LLM could not be used")."""
    claims = []
    flat = " ".join(text.split())
    for sentence in re.split(r"(?<=\.)\s+(?=[A-Z])", flat):
        if not re.search(r"\bexit", sentence, re.IGNORECASE):
            continue
        for code, phrase in re.findall(
            r"(?<![\w-])(\d+)(?: \(\w+\))? ([a-zA-Z`][^,;.]*)", sentence
        ):
            claims.append((int(code), phrase.strip()))
    return claims


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 3} - _COMMON


def test_exit_claims_reads_a_help_sentence() -> None:
    text = "Exits 0 when it gave advice, 10 when it had nothing new (or nothing changed), 7 when."
    assert exit_claims(text) == [
        (0, "when it gave advice"),
        (10, "when it had nothing new (or nothing changed)"),
        (7, "when"),
    ]
    assert exit_claims("Looks every 60 s for news.") == []


def test_help_texts_name_exit_codes_as_exit_codes_says(classes: Any) -> None:
    checked = 0
    for where, text in _help_texts():
        for code, phrase in exit_claims(text):
            assert code in EXIT_CODES, f"{where}: exit code {code} is not in EXIT_CODES"
            meaning = EXIT_CODES[code]
            if code != 0:  # "0 all classified" is success in the command's own words
                assert _words(phrase) & _words(meaning), (
                    f"{where} says exit {code} means {phrase!r}; EXIT_CODES says {meaning!r}"
                )
            checked += 1
    assert checked >= 8  # advise, predict and the agent commands' docstring name their codes


def test_the_check_catches_the_old_advise_help() -> None:
    old = "Exits 0 when it gave advice, 1 when it had nothing new to say, 7 when the LLM failed."
    (_, _), (code, phrase), (_, _) = exit_claims(old)
    assert code == 1 and not _words(phrase) & _words(EXIT_CODES[code])
