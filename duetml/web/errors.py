"""Errors as the page sees them: one sentence in `{"error": ...}`, never a trace or a path."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from duetml.errors import DuetmlError, page_wording

log = logging.getLogger("duetml.web")

GENERIC_500 = (
    "Something went wrong inside duetml: the details are in the terminal running "
    "`duetml serve`; try again."
)
# An absolute POSIX path of two or more parts, or a Windows one; replaced, never shown.
# Not the path of a URL ("https://api.openai.com/v1" stays as it is: it names a server).
_ABSOLUTE_PATH = re.compile(
    r"(?<![\w.~-])(?<!:)(?<!:/)(?:/[^\s/'\"`:;,()]+){2,}/?|\b[A-Za-z]:\\[^\s'\"`]+"
)
_HTTP_SENTENCES = {
    400: "The request is not valid.",
    401: "Not allowed.",
    403: "Not allowed.",
    404: "There is nothing at this address.",
    405: "This address does not accept that method.",
    413: "The upload is too large: send fewer or smaller photos at a time.",
    415: "This kind of content is not accepted here.",
}


@dataclass
class ErrorBody:
    """Every error the API returns: one sentence saying what went wrong and what to do."""

    error: str


class ConsentAsk(TypedDict):
    endpoint: str
    agent: str | None


class ErrorPayload(TypedDict):
    """The JSON of every error response (ErrorBody is how the schema shows it)."""

    error: str
    consent: NotRequired[ConsentAsk]  # CloudConsentRequired: the page asks, then retries


_DOCUMENTED = {
    400: "The request is not valid (a name, a path, a missing field); the sentence says why.",
    403: "Refused: a host other than this machine, or a request from another site.",
    404: "No such category, photo or address.",
    409: "The project is busy, or the operation conflicts with its state (no model, a name taken).",
    413: "The upload is larger than the limit.",
    415: "The file is not an image duetml can read.",
    500: "An unexpected error; the details are in the terminal running `duetml serve`.",
}
ERROR_RESPONSES = {
    code: ResponseSpec(data_container=ErrorBody, description=text, generate_examples=False)
    for code, text in _DOCUMENTED.items()
}
AGENT_ERROR_RESPONSES = {
    **ERROR_RESPONSES,
    428: ResponseSpec(
        data_container=ErrorBody,
        description="The agents would send photos off this machine: ask the user, then "
        "POST /api/agents/consent (the body also names the endpoint).",
        generate_examples=False,
    ),
    502: ResponseSpec(
        data_container=ErrorBody, description="The LLM failed.", generate_examples=False
    ),
}


def for_page(exc: BaseException, roots: tuple[Path, ...] = ()) -> str:
    """An error's sentence for the page: its own page wording if it has one, else its message
    with shell commands turned into what to click; scrubbed of paths either way."""
    return scrub(getattr(exc, "web", None) or str(exc), roots)


def scrub(message: str, roots: tuple[Path, ...] = ()) -> str:
    """Remove absolute paths (the project folder first, by name) from a user-facing sentence,
    and name what to click where it names a shell command (`duetml.errors.page_wording`)."""
    message = page_wording(message)
    for root in roots:
        text = str(root)
        if len(text) > 1:
            message = message.replace(text + os.sep, "").replace(text, "the project folder")
    home = os.path.expanduser("~")
    if len(home) > 1:
        message = message.replace(home, "~")
    return _ABSOLUTE_PATH.sub("<path>", message)


def error_response(
    message: str, status: int, headers: dict[str, str] | None = None
) -> Response[ErrorPayload]:
    return Response(
        {"error": message},
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def make_exception_handlers(roots: tuple[Path, ...]) -> ExceptionHandlersMap:
    def duetml_error(_: Request[Any, Any, Any], exc: DuetmlError) -> Response[ErrorPayload]:
        response = error_response(for_page(exc, roots), exc.http_status)
        endpoint = getattr(exc, "endpoint", None)
        if isinstance(endpoint, str):  # CloudConsentRequired: the page asks, then retries
            response.content["consent"] = {
                "endpoint": endpoint,
                "agent": getattr(exc, "agent", None),
            }
        return response

    def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorPayload]:
        status = exc.status_code
        if status >= 500:
            return error_response(GENERIC_500, status)
        sentence = _HTTP_SENTENCES.get(status, "The request cannot be answered.")
        if isinstance(exc, ValidationException) or status == 400:
            detail = _validation_detail(exc)
            if detail:
                sentence = f"The request is not valid: {detail}"
        # Keep what the protocol needs (`Allow` on a 405), nothing else of the exception.
        kept = {
            k: v for k, v in (exc.headers or {}).items() if k.lower() in ("allow", "retry-after")
        }
        return error_response(scrub(sentence, roots), status, kept)

    def anything_else(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorPayload]:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(GENERIC_500, HTTP_500_INTERNAL_SERVER_ERROR)

    def too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[ErrorPayload]:
        # msgspec gives up on JSON nested thousands of levels deep (`[[[[...`): the request is
        # bad, not the server.
        log.warning("refused a too deeply nested body on %s %s", request.method, request.url.path)
        return error_response(
            "The request is not valid: its JSON is nested too deeply; send plain JSON.", 400
        )

    return {
        DuetmlError: duetml_error,
        HTTPException: http_error,
        RecursionError: too_deep,
        Exception: anything_else,
    }


def _validation_detail(exc: HTTPException) -> str:
    """The first field problem Litestar found, as a short clause (its text never has paths)."""
    extra = exc.extra
    if isinstance(extra, list) and extra and isinstance(extra[0], dict):
        first = extra[0]
        key, message = first.get("key"), first.get("message")
        if message:
            text = f"{key}: {message}" if key else str(message)
            return _sentence(text)
    detail = str(exc.detail or "")
    if detail and "Internal" not in detail:
        return _sentence(detail)
    return ""


def _sentence(text: str) -> str:
    # A regex in a message helps nobody: say what is wrong in words instead.
    text = re.sub(r"matching regex '.*'", "in the expected form", str(text), flags=re.DOTALL)
    text = " ".join(text.split())[:200]
    return text if text.endswith(".") else text + "."
