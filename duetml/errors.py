"""The error tree. Every message is one sentence that tells the user what to do next.

The CLI turns any DuetmlError into that sentence and its exit code; the web layer turns it
into `{"error": sentence}` with its HTTP status. Nothing else reaches a user as a traceback.

    error                           exit  HTTP
    DuetmlError                       1   400   anything a user may see
    |-- NotAProjectError              2   404   not a duetml project folder
    |-- ProjectTooNewError            2   400   made by a newer duetml
    |-- InvalidNameError              1   400   a name that must not reach the file system
    |   `-- SymlinkError              1   400   a symbolic link, never followed
    |-- NotFoundError                 1   404
    |-- AlreadyExistsError            1   409
    |-- BadImageError                 1   415   not a decodable raster image
    |-- BusyError                     5   409   another process holds the project's lock
    |-- NoModelError                  3   409
    |-- ModelFileError                3   409   damaged or foreign model file
    |-- NotEnoughDataError            4   409
    |-- BackboneUnavailableError      6   503   weights missing and not downloadable
    |-- NothingToUndoError            1   409
    |-- NothingToRedoError            1   409
    |-- UndoSkippedError              1   409   the last change could not be undone
    |-- DiskFullError                 1   507   the change was reversed
    `-- LLMError                      7   502   an LLM provider failed
        |-- ContextOverflowError      7   502   too long for the model's window (llm.base)
        |-- PreemptedError            7   502   a passive reply took the server (llm.base)
        `-- CloudConsentRequired      7   428   an endpoint awaits approval (agents.choice)

Outside the tree: the CLI exits 8 (EXIT_PARTIAL) when some inputs could not be used but the
rest were done, 130 on Ctrl-C; the web answers any other exception with a generic 500.
"""

from __future__ import annotations

import re


class DuetmlError(Exception):
    """Base of every error a user may see. ``exit_code`` is what the CLI exits with."""

    exit_code = 1
    http_status = 400

    def __init__(self, *args: object, web: str | None = None) -> None:
        # The message is shared with the CLI and may name a shell command; `web` says the
        # same for the page, in terms of what to click (the web layer sends it instead).
        super().__init__(*args)
        self.web = web


class NotAProjectError(DuetmlError):
    exit_code = 9
    http_status = 404


class ProjectTooNewError(DuetmlError):
    exit_code = 9


class InvalidNameError(DuetmlError):
    """A category name or path component that must not reach the file system."""


class NotFoundError(DuetmlError):
    http_status = 404


class AlreadyExistsError(DuetmlError):
    http_status = 409


class BadImageError(DuetmlError):
    """A file that is not a decodable raster image (corrupt, truncated, a bomb, ...)."""

    http_status = 415


class BusyError(DuetmlError):
    """Another process holds the project's lock (e.g. a second `duetml train`)."""

    exit_code = 5
    http_status = 409


class NoModelError(DuetmlError):
    exit_code = 3
    http_status = 409


class StaleModelError(NoModelError):
    """The model names categories the project no longer has: train again before using it."""


class ModelFileError(DuetmlError):
    """A model file that is missing pieces, corrupt, or not ours (never executed)."""

    exit_code = 3
    http_status = 409


class NotEnoughDataError(DuetmlError):
    exit_code = 4
    http_status = 409


class BackboneUnavailableError(DuetmlError):
    exit_code = 6
    http_status = 503


class NothingToUndoError(DuetmlError):
    http_status = 409


class NothingToRedoError(DuetmlError):
    http_status = 409


class UndoSkippedError(DuetmlError):
    """The last change could not be undone and was taken off the undo list."""

    http_status = 409


class DiskFullError(DuetmlError):
    """The disk filled up during a change, which was reversed."""

    http_status = 507


class SymlinkError(InvalidNameError):
    """A path inside the project is a symbolic link, which duetml never follows."""


class LLMError(DuetmlError):
    """An LLM provider failed; the message says what to do (start Ollama, set a key, ...)."""

    exit_code = 7
    http_status = 502


class LLMSettingsError(LLMError):
    """An agent's LLM setting is wrong (unknown provider, bad model name or URL): the
    request was bad, nothing failed at a server, so it exits like any bad request."""

    exit_code = 1
    http_status = 400


class NothingNewError(DuetmlError):
    """`duetml advise` looked and had nothing new to say: not a failure, but a script must
    tell it from advice printed (0) and from a bad request (1)."""

    exit_code = 10
    http_status = 200


# The exit codes scripts can rely on (the README lists the same table).
EXIT_CODES = {
    0: "success",
    1: "a bad request (a rejected name, an unknown category, a wrong setting)",
    2: "the command line was wrong (unknown command or option)",
    3: "no model yet, or a damaged model file",
    4: "not enough data",
    5: "busy: another duetml holds the project",
    6: "backbone weights missing",
    7: "the LLM could not be used (unreachable, refused, no key)",
    8: "some inputs could not be used (results for the rest were printed)",
    9: "not a duetml project, or one from a newer duetml",
    10: "nothing new (`duetml advise` had no advice)",
}


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
