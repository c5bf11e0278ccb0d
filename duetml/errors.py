"""The error tree. Every message is one sentence that tells the user what to do next.

The CLI turns any DuetmlError into that sentence and a non-zero exit code; the web layer
turns it into a JSON error body. Nothing else should reach a user as a traceback.
"""

from __future__ import annotations


class DuetmlError(Exception):
    """Base of every error a user may see. ``exit_code`` is what the CLI exits with."""

    exit_code = 1
    http_status = 400


class NotAProjectError(DuetmlError):
    exit_code = 2
    http_status = 404


class ProjectTooNewError(DuetmlError):
    exit_code = 2


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
