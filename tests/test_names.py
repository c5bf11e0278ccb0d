"""Names and paths that reach the file system (security.md items 3 and 4), property-tested."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duetml.errors import InvalidNameError
from duetml.names import resolve_inside, validate_category_name


@pytest.mark.parametrize(
    "name",
    [
        "..",
        ".",
        "🌱" * 61,
        "name\x1f",
        "\x1cname",
        "x\x85",
        "a/b",
        "a\\b",
        "x\x00y",
        "tab\there",
        "bell\x07",
        "a" * 300,
        "CON",
        "nul.jpg",
        "COM1",
        "lpt9.txt",
        "",
        "   ",
        ".hidden",
        "ends.",
    ],
)
def test_bad_category_names_are_rejected_with_a_reason(name: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        validate_category_name(name)
    assert str(info.value).endswith(".") and len(str(info.value)) < 200


BIDI_CONTROLS = [
    *(chr(c) for c in range(0x202A, 0x202F)),
    *(chr(c) for c in range(0x2066, 0x206A)),
    "\u200e",
    "\u200f",
    "\u061c",
]


@pytest.mark.parametrize("control", BIDI_CONTROLS)
def test_bidi_controls_are_refused_like_control_characters(control: str) -> None:
    # "hat\u202egpj.exe" would show as "hatexe.jpg": a name must look like what it is.
    with pytest.raises(InvalidNameError) as info:
        validate_category_name(f"hat{control}gpj.exe")
    assert repr(control) in str(info.value) and "use letters" in str(info.value)


def test_right_to_left_letters_are_still_fine() -> None:
    assert validate_category_name("قطة") == "قطة" and validate_category_name("חתול") == "חתול"


@pytest.mark.parametrize(
    "name", ["edible", "not edible", "t-shirt", "Straße", "猫", "<img src=x onerror=alert(1)>"]
)
def test_ordinary_names_pass(name: str) -> None:
    assert validate_category_name(name) == name


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=120))
def test_an_accepted_name_is_always_one_safe_path_component(raw: str) -> None:
    try:
        name = validate_category_name(raw)
    except InvalidNameError:
        return
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert name not in {".", ".."} and not name.startswith(".")
    assert Path(name).name == name and len(name) <= 60 and len(name.encode()) <= 240


@pytest.mark.parametrize(
    "rel",
    [
        "train/hat/" + "a" * 300 + ".jpg",
        "x/" * 600,
        "../etc/passwd",
        "train/../../x",
        "/etc/passwd",
        "train\\..\\x",
        "train/%2e%2e/x/../../..",
        "a\x00b",
        "C:/x",
        "",
        "train//x",
    ],
)
def test_escaping_paths_are_refused(tmp_path: Path, rel: str) -> None:
    try:
        resolved = resolve_inside(tmp_path, rel)
    except InvalidNameError:
        return
    # Percent-encoded dots are not decoded: they stay a literal (harmless) folder name.
    assert tmp_path.resolve() in resolved.resolve().parents


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["..", ".", "a", "b", "", "%2e%2e", "\\", "c:"]), min_size=1, max_size=6
    )
)
def test_resolve_inside_never_leaves_the_root(parts: list[str]) -> None:
    root = Path("/tmp/duetml-root-for-property-test")
    try:
        resolved = resolve_inside(root, "/".join(parts))
    except InvalidNameError:
        return
    assert str(resolved).startswith(str(root) + "/")


def test_symlinks_on_the_way_are_refused(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(InvalidNameError, match="symbolic link"):
        resolve_inside(root, "link/file.jpg")


@pytest.mark.parametrize(
    "name",
    ["h\u200bat", "h\u200cat", "h\u200dat", "\ufeffhat", "h\u00adat", "hat\u2028", "h\u2029at"],
)
def test_invisible_characters_are_refused(name: str) -> None:
    """Issue 17, item 7: each of these displays as "hat"."""
    with pytest.raises(InvalidNameError, match="cannot contain"):
        validate_category_name(name)


def test_the_schemas_invisible_class_is_the_running_pythons() -> None:
    import re
    import sys
    import unicodedata

    from duetml.names import INVISIBLE_CLASS

    pattern = re.compile(f"[{INVISIBLE_CLASS}]")
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        invisible = unicodedata.category(char) in ("Cf", "Zl", "Zp")
        assert bool(pattern.fullmatch(char)) == invisible, hex(code)
