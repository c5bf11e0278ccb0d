"""The data review and the map of all photos, around `duetml.review` and `duetml.datamap`.

GETs only read (the map's layout is a cache: computing it in the background changes nothing
a person made); every change is a POST that goes through the core, is logged and undoable.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, cast

from litestar import Response, get, post
from litestar.params import JSONBody, KwargDefinition

from duetml.errors import DuetmlError
from duetml.project import Project
from duetml.review import Review
from duetml.web.errors import ERROR_RESPONSES
from duetml.web.payloads import Applied, Kept, MapFinding, PhotoMapPayload
from duetml.web.state import InjectedWebState

log = logging.getLogger("duetml.web")

FINDING_ID_PATTERN = r"^[0-9a-f]{6,64}$"
MAX_FINDINGS = 1000
MAX_CHOSEN = 1000  # duetml.review.fixes.MAX_CHOSEN: photos one request may choose
FindingId = Annotated[
    str,
    KwargDefinition(
        pattern=FINDING_ID_PATTERN,
        description="A finding's id, as listed by GET /api/review.",
    ),
]


PhotoIds = Annotated[
    list[str],
    KwargDefinition(
        min_items=1,
        max_items=MAX_CHOSEN,
        description="Photos of this finding the user chose (ids as the finding lists them); "
        "the action applies to them only.",
    ),
]


@dataclass
class ApplyFinding:
    id: FindingId
    # "suggested": what the finding suggests (its button text is the suggestion's label);
    # "remove": remove the finding's photos instead (to the trash; undoable);
    # "keep": keep them as they are (undoable).
    action: Literal["suggested", "remove", "keep"] = "suggested"
    # Without photos, a suggestion touching more than a few photos is refused.
    photos: PhotoIds | None = None


@dataclass
class DismissFindings:
    ids: Annotated[list[FindingId], KwargDefinition(min_items=1, max_items=MAX_FINDINGS)]
    # With photos (and exactly one id): keep these photos of the finding only.
    photos: PhotoIds | None = None


@get(
    "/api/map",
    responses=ERROR_RESPONSES,
    sync_to_thread=True,
    summary="Every photo's place on the map of all photos (computed in the background)",
    description="Columns with one entry per photo: ids, x, y (0-1), category (an index "
    "into categories), test (1 for a test photo), flag (an index into findings, -1 if "
    "none). `computing` is true while the layout is being computed: ask again shortly.",
)
def photo_map(web: InjectedWebState) -> Response[PhotoMapPayload]:
    from duetml.datamap import layout_path, map_inputs, photo_map
    from duetml.prediction import model_path

    project, maps = web.project, web.map
    started = time.perf_counter()
    # Unchanged photos, model, dismissals and layout: the answer is the one before.
    key = (
        web.data_version(),
        web.model_version(),
        web.versions.get("review"),
        _mtime(layout_path(project)),
        _mtime(project.state_dir / "cache" / f"features-{project.feature_backbone.key}.npz"),
    )
    known = maps.answer(key)
    if known is not None:
        result = dict(known)
    else:
        inputs = map_inputs(project)  # listed and hashed once for the review and the map
        findings, flags = _flags(project, inputs.hashes)
        result = photo_map(project, compute=False, flags=flags, inputs=inputs)
        result["findings"] = findings
        maps.remember(key, result)
    # After the first training, and never beside it: both would extract features at once.
    computing = (
        bool(result["needs_layout"])
        and model_path(project).is_file()
        and not web.train.running
        and maps.ensure(str(result["layout_key"]))
    )
    result["computing"] = computing or maps.running
    result["error"] = None if computing else maps.error
    log.debug("map answered in %.2f s", time.perf_counter() - started)
    return Response(cast(PhotoMapPayload, result), headers={"Cache-Control": "no-store"})


@get(
    "/api/review",
    responses=ERROR_RESPONSES,
    sync_to_thread=True,
    summary="The data review: findings about the photos, most important first",
    description="Read-only: photos whose features are not cached yet are left out "
    "(`unreviewed`), never extracted here.",
)
def review(web: InjectedWebState) -> Response[Review]:
    from duetml.review import review_project

    project = web.project
    # Once per project state (photos, model, kept-as-is findings, cached features): at 26,000
    # photos a review walks and hashes every photo, and every page load asks for it.
    features = project.state_dir / "cache" / f"features-{project.backbone}.npz"
    answer = web.once_per_state(
        "review",
        lambda: review_project(project, extract=False, hashes=web.listing()[1]),
        model=True,
        files=(features,),
    )
    return Response(answer, headers={"Cache-Control": "no-store"})


@post(
    "/api/review/apply",
    responses=ERROR_RESPONSES,
    sync_to_thread=True,
    status_code=200,
    summary="Apply a finding's suggestion to the chosen photos (or remove or keep them): one "
    "undoable operation",
)
def apply(web: InjectedWebState, data: JSONBody[ApplyFinding]) -> Applied:
    from duetml.review import apply_finding

    message = apply_finding(
        web.project, data.id, extract=False, photos=data.photos, action=data.action
    )
    web.changed()
    return Applied(message)


@post(
    "/api/review/dismiss",
    responses=ERROR_RESPONSES,
    sync_to_thread=True,
    status_code=200,
    summary="Keep findings (or chosen photos of one) as they are: undoable, not raised again",
)
def dismiss(web: InjectedWebState, data: JSONBody[DismissFindings]) -> Kept:
    from duetml.review import keep_findings

    if not 1 <= len(data.ids) <= MAX_FINDINGS:
        raise DuetmlError(f"Name between 1 and {MAX_FINDINGS} findings to keep as they are.")
    count, message = keep_findings(web.project, data.ids, photos=data.photos, extract=False)
    web.changed()
    return Kept(count, message)


REVIEW_ROUTES = [photo_map, review, apply, dismiss]


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _flags(
    project: Project, hashes: dict[str, str] | None = None
) -> tuple[list[MapFinding], dict[str, int]]:
    """The review's findings that point at photos (id, kind, message) and, per photo, the
    index of its most important one: the map rings those photos and says why on hover."""
    from duetml.review import review_project

    try:
        findings = review_project(project, extract=False, hashes=hashes).findings
    except (DuetmlError, KeyError):  # KeyError: a photo came while we listed; next time
        return [], {}
    listed: list[MapFinding] = []
    flags: dict[str, int] = {}
    for finding in findings:  # most important first
        if not finding.photos:
            continue
        listed.append({"id": finding.id, "kind": finding.kind, "message": finding.message})
        for rel in finding.photos:
            flags.setdefault(rel, len(listed) - 1)
    return listed, flags
