"""(B) training and (C) trying and evaluating the model, around `duetml.training`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.concurrency import sync_to_thread
from litestar.datastructures import UploadFile
from litestar.openapi import ResponseSpec
from litestar.params import KwargDefinition, MultipartBody, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED

from duetml.web.errors import ERROR_RESPONSES, ErrorPayload, error_response
from duetml.web.guard import sent_by_another_site
from duetml.web.jobs import TrainState
from duetml.web.payloads import Cell, EvaluationPayload, Predictions
from duetml.web.routes_data import read_uploads
from duetml.web.state import InjectedWebState, WebState

PREDICT_MAX_BYTES = 64 * 1024 * 1024
PREDICT_MAX_FILES = 50


@dataclass
class PredictForm:
    files: Annotated[list[UploadFile], KwargDefinition(min_items=1, max_items=PREDICT_MAX_FILES)]


@post(
    "/api/train",
    responses=ERROR_RESPONSES,
    sync_to_thread=True,
    status_code=HTTP_202_ACCEPTED,
    summary="Start training in the background; progress arrives on /api/events",
)
def start_training(web: InjectedWebState) -> TrainState:
    return web.train.start()


@get(
    "/api/train/state",
    responses=ERROR_RESPONSES,
    sync_to_thread=False,
    summary="The trainer's state",
)
def training_state(web: InjectedWebState) -> TrainState:
    return web.train.snapshot()


@post(
    "/api/predict",
    responses=ERROR_RESPONSES,
    status_code=200,
    request_max_body_size=PREDICT_MAX_BYTES,
    summary="Classify new photos with the trained model",
)
async def predict(
    web: InjectedWebState,
    data: MultipartBody[PredictForm],
    live: Annotated[
        bool, QueryParameter(description="A frame of the page's live camera: logged in summary")
    ] = False,
) -> Predictions:
    from duetml.errors import DuetmlError
    from duetml.prediction import predict_sources

    items = await read_uploads(data.files)
    if len(items) > PREDICT_MAX_FILES:
        raise DuetmlError(f"Try at most {PREDICT_MAX_FILES} photos at a time.")
    names = [name for name, _ in items]
    predictions = await sync_to_thread(
        predict_sources,
        web.project,
        [content for _, content in items],
        names,
        record=not live,
    )
    if live:
        web.note_live_predictions(predictions)
    return Predictions(predictions)


@get(
    "/api/export",
    # Declared here: the refusal below is a JSON response, so the annotation cannot say it.
    responses={
        200: ResponseSpec(
            data_container=bytes,
            media_type="application/zip",
            description="The zip file.",
            generate_examples=False,
        ),
        **ERROR_RESPONSES,
    },
    sync_to_thread=True,
    media_type="application/zip",
    summary="The trained model as a zip: model.onnx, labels.json, predict.py, README.md",
    description="The same files as `duetml export`, in one folder inside the zip.",
)
def export_zip(
    web: InjectedWebState, request: Request[Any, Any, Any]
) -> Response[bytes] | Response[ErrorPayload]:
    from duetml.errors import NoModelError
    from duetml.export import archive_name, export_archive
    from duetml.prediction import model_path

    # A GET, so that it is a plain download; other sites' links and <img>s are refused here,
    # since building the export costs work (and their pages could not read it anyway).
    if sent_by_another_site(request.headers.get("sec-fetch-site")):
        refused = error_response(
            "Requests from other sites are refused: use the duetml page itself.", 403
        )
        refused.media_type = "application/json"  # not the route's application/zip
        return refused
    project = web.project
    if not model_path(project).is_file():
        raise NoModelError(
            "There is no trained model yet: run `duetml train` first.",
            web="There is no model to download yet: press Train first.",
        )
    return Response(
        export_archive(project),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{archive_name(project)}.zip"',
            "Cache-Control": "no-store",
        },
    )


# A POST, not a GET: evaluating computes features, fills the cache and logs an event, and
# a GET is what any other site can make the browser send (an <img>, a link) unchecked.
@post(
    "/api/evaluation",
    responses=ERROR_RESPONSES,
    sync_to_thread=True,
    status_code=200,
    summary="Evaluate the model: precision, recall, confusion matrix",
)
def evaluation(web: InjectedWebState) -> Response[EvaluationPayload]:
    report = web.evaluation(lambda: _evaluate(web))
    return Response(report, headers={"Cache-Control": "no-store"})


# The handlers take the server's WebState as `web`, injected by create_app (Litestar's Provide).
MODEL_ROUTES = [start_training, training_state, predict, export_zip, evaluation]


def _evaluate(web: WebState) -> EvaluationPayload:
    """The core's report, plus the photos behind every cell of the confusion matrix."""
    from duetml.evaluation import evaluate_project
    from duetml.prediction import load_model

    project = web.project
    report = evaluate_project(project)
    cells: dict[tuple[str, str], list[str]] = {}
    wrong: set[str] = set()
    for mistake in report.mistakes:
        cells.setdefault((mistake["true"], mistake["predicted"]), []).append(mistake["image"])
        wrong.add(mistake["image"])
    # The report lists only mistakes; the diagonal is every other evaluated photo.
    if report.source == "test set":
        for category in report.categories:
            right = (
                [r.rel for r in project.images("test", category) if r.rel not in wrong]
                if category in project.category_names("test")
                else []
            )
            cells[(category, category)] = right
    else:
        for rel, true, predicted, _ in load_model(project).meta.get("cv_results", []):
            if true == predicted:
                cells.setdefault((true, true), []).append(rel)
    return EvaluationPayload(
        **msgspec.structs.asdict(report),
        cells=[Cell(true, predicted, rels) for (true, predicted), rels in cells.items()],
    )
