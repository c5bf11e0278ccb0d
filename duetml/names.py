"""Validation of every name that reaches the file system (security.md items 3 and 4).

Category names come from users (CLI, web form, a folder made in a file manager); they are
checked here once, and anything else that touches a path goes through `resolve_inside`.
"""

from __future__ import annotations

import difflib
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from duetml.errors import InvalidNameError

# 60 characters of up to 4 UTF-8 bytes each stay under the 255-byte limit of file systems.
MAX_NAME_LENGTH = 60

# Reserved on Windows whatever the extension ("NUL.jpg" too); a project folder may be copied there.
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{p}{i}" for p in ("COM", "LPT") for i in "0123456789¹²³"
}
# Path separators and characters no common file system accepts in a name. `<` and `>` are
# kept: they are legal on POSIX and a name like "<img src=x>" must display safely as text.
_FORBIDDEN_CHARS = set('/\\:*?"|\x00')
# Bidirectional controls reorder how text is displayed: "photo\u202egpj.exe" shows as
# "photoexe.jpg"; invisible characters make "h\u200bat" look like "hat". Every format
# character (Cf: bidi controls, zero-width spaces and joiners, U+FEFF, the soft hyphen U+00AD)
# and the line and paragraph separators (Zl U+2028, Zp U+2029) are refused like control
# characters (Cc).
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
# The same characters as a regex class for the OpenAPI schema (Unicode 14.0, Python 3.11's;
# tests/test_names.py checks it against the running Python's unicodedata).
INVISIBLE_CLASS = (
    r"\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f"
    r"\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    r"\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    r"\U000e0020-\U000e007f"
)


def validate_category_name(raw: str) -> str:
    """Return the normalised name, or raise InvalidNameError saying what is wrong with it."""
    if not isinstance(raw, str):
        raise InvalidNameError("A category name must be text.")
    # Control characters are refused, not trimmed: Python's strip() would silently drop some
    # (U+001C..U+001F count as white space), so check before trimming ordinary spaces.
    bad = sorted(
        {
            c
            for c in raw
            if c in _FORBIDDEN_CHARS or unicodedata.category(c) in _INVISIBLE_CATEGORIES
        }
    )
    if bad:
        shown = ", ".join(repr(c) for c in bad[:5])
        raise InvalidNameError(
            f"A category name cannot contain {shown}: use letters, digits, spaces, - or _."
        )
    name = unicodedata.normalize("NFC", raw).strip()
    if not name:
        raise InvalidNameError("A category name cannot be empty: type a name such as `edible`.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"The category name is {len(name)} characters long: use at most {MAX_NAME_LENGTH}."
        )
    if name in {".", ".."} or name.startswith("."):
        raise InvalidNameError(f"A category name cannot start with a dot: {name[:20]!r}.")
    if name.endswith("."):
        raise InvalidNameError("A category name cannot end with a dot.")
    if name.split(".")[0].strip().upper() in _WINDOWS_DEVICES:
        raise InvalidNameError(
            f"{name!r} is a reserved device name on Windows: choose another category name."
        )
    return name


def resolve_inside(root: Path, relative: str) -> Path:
    """Join ``relative`` under ``root`` and refuse anything that would leave it.

    Rejects absolute paths, `..`, backslashes, NUL and symlinks anywhere on the way, so a
    path from a request or a journal file can never reach outside the project.
    """
    if not isinstance(relative, str) or not relative or "\x00" in relative or "\\" in relative:
        raise InvalidNameError("That path is not allowed.")
    if relative.startswith("/") or re.match(r"^[A-Za-z]:", relative):
        raise InvalidNameError("That path is not allowed: it must be inside the project.")
    parts = relative.split("/")
    if any(part in {"", ".", ".."} for part in parts):
        raise InvalidNameError("That path is not allowed: it must be inside the project.")
    if any(len(part.encode("utf-8")) > 255 for part in parts) or len(relative) > 1024:
        raise InvalidNameError("That path is too long to be a file of this project.")
    root_real = Path(os.path.realpath(root))
    candidate = root_real.joinpath(*parts)
    current = root_real
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise InvalidNameError("That path is a symbolic link, which duetml never follows.")
    real = Path(os.path.realpath(candidate))
    if real != root_real and root_real not in real.parents:
        raise InvalidNameError("That path is not allowed: it must be inside the project.")
    return candidate


def name_key(name: str) -> str:
    """What two category names share when macOS and Windows would see one folder: the same
    letters after Unicode normalisation, whatever their case ("Upper Body" = "upper body")."""
    return unicodedata.normalize("NFC", name).casefold()


def close_names(name: str, existing: Iterable[str], limit: int = 3) -> list[str]:
    """Existing names a typo of `name` may have meant ("t-shrit" -> "t-shirt", "tshirt" ->
    "t-shirt"): the same letters and digits, or a close spelling (difflib)."""
    existing = list(existing)

    def skeleton(text: str) -> str:
        return "".join(c for c in name_key(text) if c.isalnum())

    same_letters = [e for e in existing if skeleton(e) == skeleton(name) and e != name]
    by_key = {name_key(e): e for e in existing}
    spelled = [
        by_key[k] for k in difflib.get_close_matches(name_key(name), by_key, n=limit, cutoff=0.75)
    ]
    return list(dict.fromkeys(same_letters + spelled))[:limit]
