"""What names and ids look like, written into the OpenAPI schema.

The patterns say exactly what `duetml.names.validate_category_name` and `Project.image`
accept (a Hypothesis test checks the two agree), so a client and schemathesis can know the
rules. Body fields carry them as documentation only: the core still validates every value and
answers with its own sentence ("A category name cannot contain '/' ..."), which a regex
mismatch message could never match for clarity. Query parameters, which the page fills from
the server's own listings, are checked against them by Litestar too.
"""

from __future__ import annotations

from typing import Annotated

from litestar.params import KwargDefinition, QueryParameter

from duetml.names import INVISIBLE_CLASS, MAX_NAME_LENGTH

_FORBIDDEN = r'/\\:*?"|\x00-\x1f\x7f-\x9f'
# Category names also refuse invisible characters: format characters (bidi controls, zero-width
# spaces, U+FEFF, U+00AD) and line and paragraph separators (see duetml.names).
_NAME_FORBIDDEN = _FORBIDDEN + INVISIBLE_CLASS
_DEVICE = (
    r"(?:[Cc][Oo][Nn]|[Pp][Rr][Nn]|[Aa][Uu][Xx]|[Nn][Uu][Ll]|[Cc][Oo][Mm][0-9¹²³]"
    r"|[Ll][Pp][Tt][0-9¹²³]|[Cc][Oo][Nn][Ii][Nn]\$|[Cc][Oo][Nn][Oo][Uu][Tt]\$)"
)
# A stored name: no dot or space at either end, no separators or control characters, not a
# Windows device name ("CON", "nul.txt"), 1 to MAX_NAME_LENGTH (60) characters.
_NAME = (
    rf"(?!{_DEVICE}\s*(?:\.|/|$))[^.\s{_NAME_FORBIDDEN}]"
    rf"(?:[^{_NAME_FORBIDDEN}]{{0,{MAX_NAME_LENGTH - 2}}}[^.\s{_NAME_FORBIDDEN}])?"
)
# What a person may type: the same, with spaces around it (they are trimmed). Control
# characters count as white space for some regex engines; the core refuses them, so "space"
# here is white space that is not a control character.
_SPACE = rf"[^\S\x00-\x1f\x7f-\x9f{INVISIBLE_CLASS}]"
CATEGORY_PATTERN = rf"^{_SPACE}*{_NAME}{_SPACE}*$"
STORED_NAME_PATTERN = rf"^{_NAME}$"
# The file part is any name a person may give a photo in a file manager (`:`, `?`, `"`, a
# tab, up to 255 characters): only a slash, a backslash and NUL cannot reach Project.image.
IMAGE_ID_PATTERN = rf"^(?:train|test)/{_NAME}/(?!\.)[^/\\\x00]{{1,255}}$"
MAX_IDS = 10_000

CategoryName = Annotated[
    str,
    KwargDefinition(
        pattern=CATEGORY_PATTERN,
        description=f'A category name: 1-{MAX_NAME_LENGTH} characters, no / \\ : * ? " | or '
        "control characters, no dot at either end, not a Windows device name; spaces around it "
        "are trimmed.",
    ),
]
ImageId = Annotated[
    str,
    KwargDefinition(
        pattern=IMAGE_ID_PATTERN,
        description='A photo of the project, as listed by /api/categories ("train/hat/ab12.jpg").',
    ),
]
ImageIds = Annotated[list[ImageId], KwargDefinition(min_items=1, max_items=MAX_IDS)]

ImageIdQuery = Annotated[
    str,
    QueryParameter(
        pattern=IMAGE_ID_PATTERN,
        max_length=400,
        description='A photo of the project, as listed by /api/categories ("train/hat/ab12.jpg").',
    ),
]
StoredCategoryQuery = Annotated[
    str,
    QueryParameter(
        pattern=STORED_NAME_PATTERN,
        max_length=MAX_NAME_LENGTH,
        description="An existing category, as listed by /api/categories.",
    ),
]
