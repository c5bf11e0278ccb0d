"""The error tree. Every message is one sentence that tells the user what to do next.

The CLI turns any DuetmlError into that sentence and its exit code; the web layer turns it
into `{"error": sentence}` with its HTTP status. Nothing else reaches a user as a traceback.

    error                            exit  HTTP
    DuetmlError                        1   400   anything a user may see
    |-- NotAProjectError               9   404   not a duetml project folder
    |-- ProjectTooNewError             9   400   made by a newer duetml
    |-- InvalidNameError               1   400   a name that must not reach the file system
    |   `-- SymlinkError               1   400   a symbolic link, never followed
    |-- NotFoundError                  1   404   what was named does not exist
    |-- AlreadyExistsError             1   409   the name is taken
    |-- BadImageError                  1   415   not a decodable raster image
    |-- BusyError                      5   409   another process holds the project's lock
    |-- NoModelError                   3   409   no model yet
    |   `-- StaleModelError            3   409   the model names categories that are gone
    |-- ModelFileError                 3   409   a damaged or foreign model file
    |-- NotEnoughDataError             4   409   too few photos or categories
    |-- BackboneUnavailableError       6   503   weights missing and not downloadable
    |-- NothingToUndoError             1   409   the undo list is empty
    |-- NothingToRedoError             1   409   the redo list is empty
    |-- UndoSkippedError               1   409   the last change could not be undone
    |-- DiskFullError                  1   507   the disk filled up; the change was reversed
    |-- LLMError                       7   502   an LLM provider failed
    |   |-- LLMSettingsError           1   400   a wrong LLM setting (provider, model, URL)
    |   |-- ContextOverflowError       7   502   too long for the model's context (llm.base)
    |   |-- RequestFailed              7   502   a request failed for good (llm.base)
    |   |-- ReplyTooLong               7   502   the reply went past its limit (llm.base)
    |   |-- PreemptedError             7   502   a passive reply took the server (llm.base)
    |   |-- RedirectRefused            7   502   the server redirected elsewhere (llm.base)
    |   `-- CloudConsentRequired       7   428   an endpoint awaits approval (agents.choice)
    `-- NothingNewError               10   200   `duetml advise` had nothing new to say

Outside the tree: the CLI exits 2 when the command line was wrong (Typer), 8 (EXIT_PARTIAL)
when some inputs could not be used but the rest were done, 130 on Ctrl-C; the web answers any
other exception with a generic 500. The drawing is `draw_error_tree()`'s, each line from a
class's `summary`, `exit_code` and `http_status`; tests/test_errors_docs.py fails when they part.
"""

from __future__ import annotations

import re


class DuetmlError(Exception):
    """Base of every error a user may see. ``exit_code`` is what the CLI exits with."""

    summary = "anything a user may see"  # its line in the tree drawn above
    exit_code = 1
    http_status = 400
    # How the CLI introduces the sentence on stderr: not every non-zero exit is a failure.
    label = "Error"

    def __init__(self, *args: object, web: str | None = None) -> None:
        # The message is shared with the CLI and may name a shell command; `web` says the
        # same for the page, in terms of what to click (the web layer sends it instead).
        super().__init__(*args)
        self.web = web


class NotAProjectError(DuetmlError):
    summary = "not a duetml project folder"
    exit_code = 9
    http_status = 404


class ProjectTooNewError(DuetmlError):
    summary = "made by a newer duetml"
    exit_code = 9


class InvalidNameError(DuetmlError):
    """A category name or path component that must not reach the file system."""

    summary = "a name that must not reach the file system"


class NotFoundError(DuetmlError):
    summary = "what was named does not exist"
    http_status = 404


class AlreadyExistsError(DuetmlError):
    summary = "the name is taken"
    http_status = 409


class BadImageError(DuetmlError):
    """A file that is not a decodable raster image (corrupt, truncated, a bomb, ...)."""

    summary = "not a decodable raster image"
    http_status = 415


class BusyError(DuetmlError):
    """Another process holds the project's lock (e.g. a second `duetml train`)."""

    summary = "another process holds the project's lock"
    exit_code = 5
    http_status = 409


class NoModelError(DuetmlError):
    summary = "no model yet"
    exit_code = 3
    http_status = 409


class StaleModelError(NoModelError):
    """The model names categories the project no longer has: train again before using it."""

    summary = "the model names categories that are gone"


class ModelFileError(DuetmlError):
    """A model file that is missing pieces, corrupt, or not ours (never executed)."""

    summary = "a damaged or foreign model file"
    exit_code = 3
    http_status = 409


class NotEnoughDataError(DuetmlError):
    summary = "too few photos or categories"
    exit_code = 4
    http_status = 409


class BackboneUnavailableError(DuetmlError):
    summary = "weights missing and not downloadable"
    exit_code = 6
    http_status = 503


class NothingToUndoError(DuetmlError):
    summary = "the undo list is empty"
    http_status = 409


class NothingToRedoError(DuetmlError):
    summary = "the redo list is empty"
    http_status = 409


class UndoSkippedError(DuetmlError):
    """The last change could not be undone and was taken off the undo list."""

    summary = "the last change could not be undone"
    http_status = 409


class DiskFullError(DuetmlError):
    """The disk filled up during a change, which was reversed."""

    summary = "the disk filled up; the change was reversed"
    http_status = 507


class SymlinkError(InvalidNameError):
    """A path inside the project is a symbolic link, which duetml never follows."""

    summary = "a symbolic link, never followed"


class LLMError(DuetmlError):
    """An LLM provider failed; the message says what to do (start Ollama, set a key, ...)."""

    summary = "an LLM provider failed"
    exit_code = 7
    http_status = 502


class LLMSettingsError(LLMError):
    """An agent's LLM setting is wrong (unknown provider, bad model name or URL): the
    request was bad, nothing failed at a server, so it exits like any bad request."""

    summary = "a wrong LLM setting (provider, model, URL)"
    exit_code = 1
    http_status = 400


class NothingNewError(DuetmlError):
    """`duetml advise` looked and had nothing new to say: not a failure, but a script must
    tell it from advice printed (0) and from a bad request (1)."""

    summary = "`duetml advise` had nothing new to say"
    exit_code = 10
    http_status = 200
    label = "Note"


# The exit codes scripts can rely on, one meaning each: the README's table is drawn from it
# (`exit_code_table`), and tests/test_errors_docs.py checks it, the tree above and the
# `--help` texts that name exit codes against the classes.
EXIT_CODES = {
    0: "success",
    1: "a bad request (a rejected name, an unknown category, a wrong setting)",
    2: "the command line was wrong (unknown command or option)",
    3: "no model yet, or a damaged model file",
    4: "not enough data",
    5: "busy: another duetml holds the project",
    6: "backbone weights missing",
    7: "the LLM could not be used (unreachable, refused, no key)",
    8: "some inputs could not be used or read (results for the rest were printed)",
    9: "not a duetml project, or one from a newer duetml",
    10: "nothing new (`duetml advise` had no advice)",
}
# The codes no error class has: success, Typer's usage errors, a partial result (EXIT_PARTIAL).
EXIT_CODES_OUTSIDE_TREE = (0, 2, 8)


def draw_error_tree(root: type[DuetmlError] = DuetmlError) -> str:
    """The error tree as this module's docstring draws it: every subclass of `root` (import
    the modules that define some, e.g. `duetml.llm.base`, first), its exit code, HTTP status
    and summary; classes defined elsewhere name their module."""
    lines = [f"{'error':<32}{'exit':>5}{'HTTP':>6}"]

    def draw(cls: type[DuetmlError], lead: str, branch: str) -> None:
        where = cls.__module__.removeprefix("duetml.")
        about = cls.summary + (f" ({where})" if where != "errors" else "")
        lines.append(
            f"{lead + branch + cls.__name__:<32}{cls.exit_code:>4}{cls.http_status:>6}   {about}"
        )
        children = cls.__subclasses__()
        for index, child in enumerate(children):
            last = index == len(children) - 1
            inner = lead + ("" if not branch else "    " if branch.startswith("`") else "|   ")
            draw(child, inner, "`-- " if last else "|-- ")

    draw(root, "", "")
    return "\n".join(line.rstrip() for line in lines)


def exit_code_table() -> str:
    """The README's table of exit codes, drawn from EXIT_CODES."""
    rows = [f"| {code} | {meaning} |" for code, meaning in EXIT_CODES.items()]
    return "\n".join(["| exit | meaning |", "|---:|---|", *rows])


# Shell commands in the core's sentences, and what a person on the page clicks instead. The
# web layer passes every sentence without its own `web=` wording through page_wording(), so a
# message written for the shell never tells a web user to type a command (tests/
# test_page_wording.py walks the source for sentences naming `duetml ...`).
_PAGE_WORDING: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"`duetml llm use both ([^`\s]+)`"),
        r"Assistant settings (both agents: \1)",
    ),
    (
        re.compile(r"`duetml llm use (\S+) ([^`\s]+)`"),
        r"Assistant settings (the \1 agent: \2)",
    ),
    (re.compile(r"`duetml llm use`"), "Assistant settings"),
    (re.compile(r"`duetml llm approve`"), "the page's “Allow for this project”"),
    (re.compile(r"start it with `ollama serve`"), "start the Ollama app"),
    (re.compile(r"run `duetml train` again"), "click Train again"),
    (re.compile(r"run `duetml train`"), "click Train"),
)


def page_wording(message: str) -> str:
    """``message`` with the shell commands it names replaced by what to click on the page."""
    for pattern, replacement in _PAGE_WORDING:
        message = pattern.sub(replacement, message)
    return message
