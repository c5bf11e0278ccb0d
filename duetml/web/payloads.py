"""What the API answers, declared once: each handler returns one of these, so the OpenAPI
schema (/schema/openapi.json) says every field the page reads.

msgspec Structs, as the core's payloads (see duetml/review/types.py for why): Litestar encodes
them as they are and writes their schema. The core's reports (training, evaluation,
predictions, imports) are Structs of their own modules, returned as they are; a field sent
only sometimes is UNSET, not sent (a prediction that failed has `error` and no `category`).
A few answers pass on a dict the core builds (the map, what each agent's provider says about
itself): those are TypedDicts here, which describe the dict as it is.
"""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec

from duetml.agents.conversation import Message
from duetml.evaluation import EvalReport
from duetml.health import HealthReport
from duetml.prediction import Prediction

# ----- (A) the training data -------------------------------------------------------------


class StatusPayload(HealthReport, kw_only=True):
    """GET /api/status: `duetml status --json`, with what undo and redo would do and the goal."""

    undo: list[str]
    redo: list[str]
    goal: str


class PhotoRef(msgspec.Struct):
    id: str  # "train/hat/ab12.jpg"
    v: str  # the start of its content hash: a thumbnail URL that names the content


class CategoryPhotos(msgspec.Struct):
    name: str
    count: int
    test_count: int
    images: list[PhotoRef]
    test_images: list[PhotoRef]


class CategoryListing(msgspec.Struct):
    """GET /api/categories."""

    version: str  # changes whenever a photo or category changes
    categories: list[CategoryPhotos]


class CategoryNamed(msgspec.Struct):
    name: str  # as stored (spaces around it trimmed)


class Merged(msgspec.Struct):
    target: str
    moved: int


class CategoryRemoved(msgspec.Struct):
    removed: str


class PhotosMoved(msgspec.Struct):
    moved: list[str]  # the photos' new ids


class PhotosRemoved(msgspec.Struct):
    removed: int


class Undone(msgspec.Struct):
    undone: str  # what was undone, in words


class Redone(msgspec.Struct):
    redone: str


# ----- (B) and (C) the model --------------------------------------------------------------


class Predictions(msgspec.Struct):
    """POST /api/predict."""

    predictions: list[Prediction]


class Cell(msgspec.Struct):
    true: str
    predicted: str
    images: list[str]  # the photos behind this cell of the confusion matrix


class EvaluationPayload(EvalReport, kw_only=True):
    """POST /api/evaluation: `duetml eval --json`, and the photos of every matrix cell."""

    cells: list[Cell]


# ----- the data review and the map ----------------------------------------------------------


class Applied(msgspec.Struct):
    message: str  # one sentence saying what was done


class Kept(msgspec.Struct):
    dismissed: int
    message: str


class MapFinding(TypedDict):
    id: str
    kind: str
    message: str


class PhotoMapPayload(TypedDict):
    """GET /api/map: duetml.datamap.photo_map's columns, the findings the rings point at, and
    whether the layout is being computed."""

    state: str  # "ready", "outdated" or "none"
    method: str | None
    computed_at: float | None
    categories: list[str]
    ids: list[str]
    x: list[float]
    y: list[float]
    category: list[int]
    test: list[int]
    flag: list[int]
    placed: int
    missing: int
    needs_layout: bool
    layout_key: str
    findings: list[MapFinding]
    computing: bool
    error: str | None


# ----- the assistant ------------------------------------------------------------------------


class ConsentWait(TypedDict):
    """An agent whose endpoint waits for the user's approval (POST /api/agents/consent)."""

    agent: str
    endpoint: str
    reason: str  # "project" (the project's file chose it) or "cloud" (off this machine)


class AgentsInfo(msgspec.Struct):
    """GET /api/agents and the switches' answers."""

    available: bool
    problem: str | None  # why there is no assistant
    # Each agent's provider, model, endpoint and whether it answers, as the provider says.
    agents: dict[str, Any]
    proactive_enabled: bool
    proactive_interval: float | None
    proactive_error: str | None
    proactive_paused: bool  # the proactive timer waits for its server to answer again
    consent_needed: list[ConsentWait]


class Conversation(msgspec.Struct):
    """GET /api/conversation: the messages, oldest first."""

    messages: list[Message]


class ChatLine(TypedDict, total=False):
    """One line of POST /api/chat's NDJSON stream: each has one of these keys."""

    delta: str  # the next piece of the reply
    notice: str  # a one-time note (the model's context is small, a server cut the request)
    done: bool  # the reply is complete (the last line)
    error: str  # the reply failed: one sentence (the last line)


class OllamaServer(TypedDict):
    endpoint: str
    reachable: bool
    problem: str | None
    models: list[str]


class _LLMStatus(TypedDict):
    providers: list[str]  # the providers duetml knows
    agents: dict[str, dict[str, Any]]
    ollama: list[OllamaServer]


class LLMSettings(_LLMStatus, total=False):
    """GET /api/agents/llm: `duetml llm status`, as the page's settings show it."""

    consent_needed: list[ConsentWait]  # after a choice


class ProjectInfo(msgspec.Struct):
    """GET /api/project: the project and what the page can do."""

    name: str
    goal: str
    baseline: bool
    agents: bool
    version: str
    upload_max_bytes: int
    upload_max_files: int
    predict_max_files: int
    tiny_category: int  # fewer photos than this: the overview warns
    model_input_side: int  # the model's input, in pixels: the camera sends frames no wider
