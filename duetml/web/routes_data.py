"""(A) The training data: categories, photos, uploads, undo, thumbnails. Each handler is a
few lines around `duetml.project.Project`, which validates every name and logs every change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from litestar import Response, get, post
from litestar.concurrency import sync_to_thread
from litestar.datastructures import UploadFile
from litestar.params import JSONBody, KwargDefinition, MultipartBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from duetml import images
from duetml.errors import DuetmlError, NotFoundError
from duetml.importing import AddReport
from duetml.names import validate_category_name
from duetml.photo_facts import PhotoFacts
from duetml.web.errors import ERROR_RESPONSES, scrub
from duetml.web.payloads import (
    CategoryListing,
    CategoryNamed,
    CategoryPhotos,
    CategoryRemoved,
    Merged,
    PhotoRef,
    PhotosMoved,
    PhotosRemoved,
    Redone,
    StatusPayload,
    Undone,
)
from duetml.web.schema import (
    MAX_IDS,
    CategoryName,
    ImageId,
    ImageIdQuery,
    ImageIds,
    StoredCategoryQuery,
)
from duetml.web.state import InjectedWebState, WebState

UPLOAD_MAX_BYTES = 64 * 1024 * 1024  # per request; the page sends big batches in several
UPLOAD_MAX_FILES = 200  # per request
IMMUTABLE = "private, max-age=31536000, immutable"


@dataclass
class NewCategory:
    name: CategoryName


@dataclass
class Rename:
    old: CategoryName
    new: CategoryName


@dataclass
class Merge:
    sources: Annotated[list[CategoryName], KwargDefinition(min_items=1, max_items=1000)]
    target: CategoryName


@dataclass
class PhotoList:
    images: ImageIds


@dataclass
class MoveImages:
    images: ImageIds
    category: CategoryName


@dataclass
class MoveToSplit:
    images: ImageIds
    split: Literal["train", "test"]


@dataclass
class OnePhoto:
    image: ImageId


@dataclass
class UploadForm:
    files: Annotated[list[UploadFile], KwargDefinition(min_items=1, max_items=UPLOAD_MAX_FILES)]


def _ids(values: list[str]) -> list[str]:
    if not values:
        raise DuetmlError("Choose at least one photo.")
    if len(values) > MAX_IDS:
        raise DuetmlError(f"At most {MAX_IDS} photos can be changed at once.")
    return values


async def read_uploads(files: list[UploadFile] | UploadFile | None) -> list[tuple[str, bytes]]:
    if files is None:
        files = []
    if not isinstance(files, list):
        files = [files]
    if not files:
        raise DuetmlError("Choose at least one photo to upload.")
    if len(files) > UPLOAD_MAX_FILES:
        raise DuetmlError(f"Send at most {UPLOAD_MAX_FILES} files at a time.")
    items = []
    for upload in files:
        if not isinstance(upload, UploadFile):
            raise DuetmlError("Send the photos as files (multipart form field `files`).")
        items.append((str(upload.filename or "unnamed")[:255], await upload.read()))
        await upload.close()
    return items


@get(
    "/api/categories",
    responses=ERROR_RESPONSES,
    sync_to_thread=True,
    summary="Categories with their photos",
)
def list_categories(web: InjectedWebState) -> CategoryListing:
    return web.once_per_state("categories", lambda: _categories(web))


def _categories(web: WebState) -> CategoryListing:
    records, hashes = web.listing()
    by_category: dict[tuple[str, str], list[PhotoRef]] = {}
    for record in records:
        if record.rel in hashes:  # else it vanished while we listed
            by_category.setdefault((record.split, record.category), []).append(
                PhotoRef(id=record.rel, v=hashes[record.rel][:16])
            )
    return CategoryListing(
        version=web.data_version(),
        categories=[
            CategoryPhotos(
                name=info.name,
                count=info.count,
                test_count=info.test_count,
                images=by_category.get(("train", info.name), []),
                test_images=by_category.get(("test", info.name), []),
            )
            for info in web.project.categories(records)
        ],
    )


@get(
    "/api/status",
    responses=ERROR_RESPONSES,
    sync_to_thread=True,
    summary="Counts, warnings, model and undo",
)
def status(web: InjectedWebState) -> StatusPayload:
    return web.once_per_state("status", lambda: _status(web), model=True)


def _status(web: WebState) -> StatusPayload:
    from duetml.health import project_health

    project = web.project
    health = project_health(project, check_files=False, listing=web.listing())
    for warning in health.warnings:  # written for the shell too: say what to click
        warning.message = scrub(warning.message, (project.root,))
    return StatusPayload(
        **msgspec.structs.asdict(health),
        undo=project.undo_history()[:5],
        redo=project.redo_history()[:5],
        goal=project.goal,
    )


@post(
    "/api/categories/add",
    responses=ERROR_RESPONSES,
    sync_to_thread=True,
    status_code=HTTP_201_CREATED,
)
def add_category(web: InjectedWebState, data: JSONBody[NewCategory]) -> CategoryNamed:
    name = web.project.add_category(data.name)
    web.changed()
    return CategoryNamed(name)


@post("/api/categories/rename", responses=ERROR_RESPONSES, sync_to_thread=True, status_code=200)
def rename_category(web: InjectedWebState, data: JSONBody[Rename]) -> CategoryNamed:
    name = web.project.rename_category(data.old, data.new)
    web.changed()
    return CategoryNamed(name)


@post("/api/categories/merge", responses=ERROR_RESPONSES, sync_to_thread=True, status_code=200)
def merge_categories(web: InjectedWebState, data: JSONBody[Merge]) -> Merged:
    if not data.sources or len(data.sources) > 1000:
        raise DuetmlError("Name between 1 and 1000 categories to merge into the target.")
    target = validate_category_name(data.target)
    if {validate_category_name(s) for s in data.sources} <= {target}:
        web.project.category_dir(target)  # 404 if it does not exist; else nothing to do
        return Merged(target, moved=0)
    moved = web.project.merge_categories(data.sources, target)
    web.changed()
    return Merged(target, moved)


@post("/api/categories/remove", responses=ERROR_RESPONSES, sync_to_thread=True, status_code=200)
def remove_category(web: InjectedWebState, data: JSONBody[NewCategory]) -> CategoryRemoved:
    web.project.remove_category(data.name)
    web.changed()
    return CategoryRemoved(data.name)


@post("/api/images/move", responses=ERROR_RESPONSES, sync_to_thread=True, status_code=200)
def move_images(web: InjectedWebState, data: JSONBody[MoveImages]) -> PhotosMoved:
    try:
        moved = web.project.move_images(_ids(data.images), data.category)
    except OSError:
        raise NotFoundError("There is no such image in this project.") from None
    web.changed()
    return PhotosMoved(moved)


@post(
    "/api/images/split",
    responses=ERROR_RESPONSES,
    sync_to_thread=True,
    status_code=200,
    summary="Move photos between the training and the test set",
)
def move_to_split(web: InjectedWebState, data: JSONBody[MoveToSplit]) -> PhotosMoved:
    try:
        moved = web.project.move_to_split(_ids(data.images), data.split)
    except OSError:
        raise NotFoundError("There is no such image in this project.") from None
    web.changed()
    return PhotosMoved(moved)


# A POST, as /api/evaluation: the model's answer may compute and cache the photo's features.
@post(
    "/api/images/facts",
    responses=ERROR_RESPONSES,
    sync_to_thread=True,
    status_code=200,
    summary="A photo's category, set, date added and the model's answer",
)
def photo_facts(web: InjectedWebState, data: JSONBody[OnePhoto]) -> PhotoFacts:
    from duetml.photo_facts import photo_facts as facts_of

    try:
        return facts_of(web.project, data.image)
    except OSError:
        raise NotFoundError("There is no such image in this project.") from None


@post("/api/images/remove", responses=ERROR_RESPONSES, sync_to_thread=True, status_code=200)
def remove_images(web: InjectedWebState, data: JSONBody[PhotoList]) -> PhotosRemoved:
    try:
        removed = web.project.remove_images(_ids(data.images))
    except OSError:
        raise NotFoundError("There is no such image in this project.") from None
    web.changed()
    return PhotosRemoved(removed)


@post(
    "/api/upload",
    responses=ERROR_RESPONSES,
    status_code=200,
    request_max_body_size=UPLOAD_MAX_BYTES,
    summary="Add photos to a category",
    description=f"At most {UPLOAD_MAX_FILES} files and {UPLOAD_MAX_BYTES} bytes per request.",
)
async def upload(
    web: InjectedWebState,
    category: StoredCategoryQuery,
    data: MultipartBody[UploadForm],
    split: Annotated[
        Literal["train", "test"],
        QueryParameter(description="`test` adds them to the category's test set."),
    ] = "train",
) -> AddReport:
    items = await read_uploads(data.files)
    report = await sync_to_thread(web.project.add_image_bytes, category, items, split)
    web.changed()
    return report


@post("/api/undo", responses=ERROR_RESPONSES, sync_to_thread=True, status_code=200)
def undo(web: InjectedWebState) -> Undone:
    undone = web.project.undo_once()
    web.changed()
    if undone.interrupted:
        # Its reversal was the undo; the page says "Undone: <this>."
        return Undone(
            f"{undone.summary}, which an earlier duetml left half done "
            "(reversing it was the undo; nothing older was undone)"
        )
    return Undone(undone.summary)


@post("/api/redo", responses=ERROR_RESPONSES, sync_to_thread=True, status_code=200)
def redo(web: InjectedWebState) -> Redone:
    redone = web.project.redo()
    web.changed()
    return Redone(redone)


@get(
    "/api/thumb",
    responses=ERROR_RESPONSES,
    sync_to_thread=True,
    summary="A photo's thumbnail (JPEG)",
    media_type="image/jpeg",
)
def thumbnail(
    web: InjectedWebState,
    image: ImageIdQuery,
    v: Annotated[str | None, QueryParameter(max_length=64)] = None,
) -> Response[bytes]:
    record = web.project.image(image)
    digest = web.digests([record]).get(record.rel)
    if digest is None:
        raise NotFoundError("There is no such image in this project.")
    data = web.thumbs.get(digest, record.path)
    # A URL that names the content can be cached for ever; others are revalidated.
    cache = IMMUTABLE if v and digest.startswith(v) and len(v) >= 8 else "no-cache"
    return Response(
        data,
        media_type="image/jpeg",
        headers={"Cache-Control": cache, "ETag": f'"{digest[:32]}"'},
    )


@get(
    "/api/image",
    responses=ERROR_RESPONSES,
    sync_to_thread=True,
    summary="A photo as stored, with its real type",
    media_type="image/*",
)
def original(web: InjectedWebState, image: ImageIdQuery) -> Response[bytes]:
    record = web.project.image(image)
    data = record.path.read_bytes()
    facts = images.check_image(data)  # served only if it decodes, typed by its real format
    return Response(data, media_type=facts.mime, headers={"Cache-Control": "no-cache"})


# The handlers take the server's WebState as `web`, injected by create_app (Litestar's Provide).
DATA_ROUTES = [
    list_categories,
    status,
    add_category,
    rename_category,
    merge_categories,
    remove_category,
    move_images,
    move_to_split,
    photo_facts,
    remove_images,
    upload,
    undo,
    redo,
    thumbnail,
    original,
]
