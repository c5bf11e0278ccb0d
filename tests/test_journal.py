"""The undo journal (issue 7, items 2, 3, 5 and 6): symlinks never lead out, an interrupted
change never breaks undo, a damaged journal gives a sentence, `add --move` undoes in place."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import demo_photos, run_duetml

from duetml.errors import (
    DiskFullError,
    NothingToUndoError,
    SymlinkError,
    UndoSkippedError,
)
from duetml.project import Project


def _photos(project: Project) -> set[str]:
    return {r.rel for r in project.images("train") + project.images("test")}


# ----- item 2: symbolic links ---------------------------------------------------------------
def test_merge_into_a_category_that_is_a_symlink_is_refused(
    new_project: Project, tmp_path: Path
) -> None:
    new_project.add_images("hat", demo_photos("hat")[:5])
    outside = tmp_path / "outside"
    outside.mkdir()
    (new_project.root / "train" / "evilmerge").symlink_to(outside)
    with pytest.raises(SymlinkError, match="train/evilmerge is a symbolic link"):
        new_project.merge_categories(["hat"], "evilmerge")
    assert list(outside.iterdir()) == []
    assert len(new_project.images("train", "hat")) == 5
    assert new_project.undo_history() == ["add 5 image(s) to 'hat'"]


@pytest.mark.slow
@pytest.mark.parametrize("link", ["train", "test", ".duetml", ".duetml/cache", ".duetml/trash"])
def test_a_project_whose_own_folders_are_symlinks_is_refused_with_a_sentence(
    new_project: Project, tmp_path: Path, link: str
) -> None:
    new_project.add_images("hat", demo_photos("hat")[:2])
    path = new_project.root / link
    outside = tmp_path / "outside"
    if path.exists():
        shutil.move(path, outside)
    else:
        outside.mkdir()
    path.symlink_to(outside, target_is_directory=True)
    before = sorted(p.relative_to(outside) for p in outside.rglob("*"))
    with pytest.raises(SymlinkError) as caught:
        Project.open(new_project.root)
    message = str(caught.value)
    assert f"{link} in the project" in message and "replace it with a real folder" in message
    result = run_duetml("categories", "add", "x", "-p", str(new_project.root))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and link in result.stderr
    assert sorted(p.relative_to(outside) for p in outside.rglob("*")) == before


def test_undo_skips_a_change_it_cannot_undo_and_later_undos_still_work(
    new_project: Project, tmp_path: Path
) -> None:
    new_project.add_images("hat", demo_photos("hat")[:3])
    new_project.add_images("shoes", demo_photos("shoes")[:3])
    # The journal names a path that is now a symbolic link (planted by hand, or a received
    # project): undoing it would follow the link.
    entries = json.loads(new_project.journal.path.read_text())
    entries.append(
        {
            "id": "planted",
            "summary": "merge 'hat' into 'evil'",
            "moves": [["train/hat/x.jpg", "train/evil/x.jpg"]],
            "made_dirs": ["train/evil"],
            "removed_dirs": [],
        }
    )
    new_project.journal.path.write_text(json.dumps(entries))
    (tmp_path / "outside").mkdir()
    (new_project.root / "train" / "evil").symlink_to(tmp_path / "outside")
    with pytest.raises(UndoSkippedError, match="merge 'hat' into 'evil'.*cannot be undone"):
        new_project.undo()
    assert new_project.undo() == "add 3 image(s) to 'shoes'"
    assert [c.name for c in new_project.categories()] == ["hat"]
    assert new_project.undo() == "add 3 image(s) to 'hat'"


# ----- item 5: a damaged journal ----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    "damage",
    [
        [5, "x"],
        [{"summary": "a move", "moves": [["a", "b", "c"]]}],
        [{"summary": "a merge", "moves": [], "removed_dirs": 5}],
        [{"summary": "a move", "moves": "train/x"}],
    ],
)
def test_a_journal_with_the_wrong_structure_gives_a_sentence(
    new_project: Project, damage: list[object]
) -> None:
    new_project.add_images("hat", demo_photos("hat")[:2])
    entries = json.loads(new_project.journal.path.read_text())
    new_project.journal.path.write_text(json.dumps(entries + damage))
    assert "(a damaged change" in run_duetml("undo", "--list", "-p", str(new_project.root)).stdout
    # The damaged entries are skipped one by one, each with a sentence; the good one
    # underneath still undoes.
    for _ in damage:
        result = run_duetml("undo", "-p", str(new_project.root))
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert "cannot be undone" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    result = run_duetml("undo", "-p", str(new_project.root))
    assert result.stdout.splitlines()[0] == "Undone: add 2 image(s) to 'hat'"


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe binary", b'{"a": 1}'])
def test_an_unreadable_journal_is_kept_as_a_copy_and_the_user_told(
    new_project: Project, content: bytes
) -> None:
    new_project.add_images("hat", demo_photos("hat")[:2])
    new_project.journal.path.write_bytes(content)
    assert "cannot be read" in new_project.undo_history()[0]
    with pytest.raises(NothingToUndoError, match="could not be read.*kept as .duetml/journal-"):
        new_project.undo()
    copies = new_project.journal.damaged_copies()
    assert [c.read_bytes() for c in copies] == [content]
    new_project.add_category("fresh")
    assert new_project.undo() == "add category 'fresh'"


# ----- item 3: write-ahead journal ---------------------------------------------------------
def test_disk_full_mid_change_leaves_the_project_as_before(
    new_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_project.add_images("hat", demo_photos("hat")[:4])
    new_project.add_images("shoes", demo_photos("shoes")[:4])
    before, history = _photos(new_project), new_project.undo_history()
    real_replace = os.replace
    calls = {"n": 0}

    def filling_replace(source: object, destination: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(source, destination)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", filling_replace)  # journal's os
    with pytest.raises(DiskFullError, match="disk is full.*merge.*project is as it was"):
        new_project.merge_categories(["hat", "shoes"], "worn")
    monkeypatch.undo()
    assert _photos(new_project) == before and new_project.undo_history() == history
    assert not new_project.journal.pending_path.exists()
    assert new_project.undo() == "add 4 image(s) to 'shoes'"


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    return result.returncode == 0


def test_a_really_full_disk_during_add_and_rename(tmp_path: Path) -> None:
    where = tmp_path / "small-disk"
    if not _mount_tmpfs(where, "600k"):
        pytest.skip("making a small file system needs root and tmpfs (mount -t tmpfs)")
    try:
        project, _ = Project.init(where / "p")
        project.add_images("hat", demo_photos("hat")[:2])
        before, history = _photos(project), project.undo_history()
        with pytest.raises(DiskFullError, match="disk is full"):
            project.add_images("shoes", demo_photos("shoes") + demo_photos("pants"))
        assert _photos(project) == before and project.undo_history() == history
        assert not project.journal.pending_path.exists()
        # A rename on the still-full disk: it needs a little room for its journal entry.
        filler = where / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        with pytest.raises(DiskFullError, match="rename 'hat' to 'cap' was not done"):
            project.rename_category("hat", "cap")
        assert _photos(project) == before and project.undo_history() == history
        filler.unlink()
        assert project.undo() == "add 2 image(s) to 'hat'"
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


ADDER = """
import sys
from pathlib import Path
from duetml.project import Project
project = Project.open(sys.argv[1])
print("ready", flush=True)
project.add_images("mixed", [Path(p) for p in sys.argv[2:]])
print("done", flush=True)
"""


@pytest.mark.slow
def test_sigkill_during_add_never_breaks_undo(new_project: Project) -> None:
    """Killed at random moments, an add is either whole and undoable or not there at all;
    undo never reverts the older change underneath (the t-shirts of issue 7)."""
    new_project.add_images("older", demo_photos("hat")[:5])
    older = _photos(new_project)
    sources = [str(p) for c in ("pants", "shoes", "t-shirt") for p in demo_photos(c)]
    rng = random.Random(11)
    outcomes = {"killed": 0, "finished": 0}

    def start_adder() -> subprocess.Popen[str]:
        adder = subprocess.Popen(
            [sys.executable, "-c", ADDER, str(new_project.root), *sources],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert adder.stdout is not None and adder.stdout.readline().strip() == "ready"
        return adder

    # How long the add itself takes on this machine, from "ready" (imports done) to exit: an
    # idle one adds the 75 photos in a few tenths of a second, a loaded one in seconds. The
    # kills land within that span (timed with the start-up included, an idle machine's
    # batched add finished before every kill).
    first = start_adder()
    began = time.perf_counter()
    first.wait(120)
    whole = time.perf_counter() - began
    Project.open(new_project.root).undo()
    for _ in range(8):
        adder = start_adder()
        time.sleep(rng.uniform(0.05, 0.9) * whole)
        adder.send_signal(signal.SIGKILL)
        adder.wait(10)
        reopened = Project.open(new_project.root)
        assert not reopened.journal.pending_path.exists()
        now = _photos(reopened)
        if now == older:
            outcomes["killed"] += 1
            assert reopened.undo_history()[0] == "add 5 image(s) to 'older'"
        else:
            outcomes["finished"] += 1
            assert reopened.undo_history()[0] == f"add {len(sources)} image(s) to 'mixed'"
            assert len(now - older) == len(sources)
            reopened.undo()
        assert _photos(reopened) == older
    assert outcomes["killed"] > 0
    assert Project.open(new_project.root).undo() == "add 5 image(s) to 'older'"
    assert _photos(Project.open(new_project.root)) == set()


def test_sigterm_during_add_reverses_it_like_ctrl_c(new_project: Project) -> None:
    sources = [str(p) for c in ("pants", "shoes", "t-shirt") for p in demo_photos(c)]
    adder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from duetml.cli import main; main()",
            "add",
            "mixed",
            *sources,
            "-p",
            str(new_project.root),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait until the add is under way (its write-ahead file exists), then stop it.
    deadline = time.monotonic() + 60
    while not new_project.journal.pending_path.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    adder.send_signal(signal.SIGTERM)
    _, stderr = adder.communicate(timeout=60)
    assert adder.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "Interrupted: add image(s) to 'mixed' was reversed" in stderr
    assert _photos(new_project) == set()
    assert not new_project.journal.pending_path.exists()
    with pytest.raises(NothingToUndoError):
        new_project.undo()


def test_an_operation_killed_after_its_commit_is_kept(new_project: Project) -> None:
    new_project.add_images("hat", demo_photos("hat")[:3])
    entry = new_project.journal.entries()[-1]
    # The process died between the commit (journal.json) and removing the pending file.
    begin = {"op": "begin", "id": entry["id"], "kind": "add_images", "summary": "add"}
    steps = [{"op": "create", "to": to} for _, to in entry["moves"]]
    lines = [json.dumps(x) for x in [begin, *steps]]
    new_project.journal.pending_path.write_text("\n".join(lines) + "\n")
    reopened = Project.open(new_project.root)
    assert reopened.recovered is None and len(reopened.images("train", "hat")) == 3


CONCURRENT_ADDER = """
import json, sys
from pathlib import Path
from duetml.project import Project
report = Project.open(sys.argv[1]).add_images("hat", [Path(p) for p in sys.argv[2:]])
print(json.dumps(len(report.added)))
"""


@pytest.mark.slow
def test_two_concurrent_adds_of_the_same_photos_add_them_once(new_project: Project) -> None:
    sources = [str(p) for p in demo_photos("hat") + demo_photos("shoes")]
    adders = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_ADDER, str(new_project.root), *sources],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    added = [json.loads(a.communicate(timeout=300)[0]) for a in adders]
    assert sorted(added) == [0, len(sources)]
    assert len(new_project.images("train", "hat")) == len(sources)
    assert len(new_project.undo_history()) == 1


# ----- item 6: one change, one undo ----------------------------------------------------------
def test_undo_of_add_move_puts_the_photos_back_where_they_were(
    new_project: Project, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    originals = {}
    for i, photo in enumerate(demo_photos("hat")[:4]):
        place = inbox / ("sub" if i % 2 else "") / f"my photo {i}.jpg"
        shutil.copy(photo, place)
        originals[place] = place.read_bytes()
    report = new_project.add_images("hat", [inbox], move=True)
    assert len(report.added) == 4 and not any(p.exists() for p in originals)
    taken = next(iter(originals))
    taken.write_bytes(b"a new file the user put there since")
    new_project.undo()
    for place, content in originals.items():
        if place == taken:
            assert place.read_bytes() == b"a new file the user put there since"  # never overwritten
        else:
            assert place.read_bytes() == content
    in_trash = [p.read_bytes() for p in (new_project.state_dir / "trash").rglob("*.jpg")]
    assert in_trash == [originals[taken]]
    assert _photos(new_project) == set()


def test_a_journal_from_elsewhere_cannot_send_photos_outside(
    new_project: Project, tmp_path: Path
) -> None:
    new_project.add_images("hat", demo_photos("hat")[:1])
    entries = json.loads(new_project.journal.path.read_text())
    rel = entries[-1]["moves"][0][1]
    target = tmp_path / "planted.jpg"
    entries[-1]["origins"] = {rel: [str(target), "0" * 64]}  # not signed by this user
    new_project.journal.path.write_text(json.dumps(entries))
    new_project.undo()
    assert not target.exists()
    assert len(list((new_project.state_dir / "trash").rglob("*.jpg"))) == 1


@pytest.mark.slow
def test_adding_several_categories_is_one_undoable_change(tmp_path: Path) -> None:
    root = tmp_path / "p"
    Project.init(root)
    assert run_duetml("categories", "add", "e1", "e2", "-p", str(root)).returncode == 0
    assert Project.open(root).undo_history() == ["add categories 'e1', 'e2'"]
    result = run_duetml("undo", "-p", str(root))
    assert result.stdout.splitlines()[0] == "Undone: add categories 'e1', 'e2'"
    assert Project.open(root).categories() == []


# Stops an add of many photos with a real SIGKILL once some of them are stored: the wrapped
# write stores the first half, says so, and waits for the kill.
HALF_ADDER = """
import sys
from pathlib import Path
from duetml import journal
from duetml.project import Project
write_many = journal.atomic.write_many
def stored_half_then_wait(files, **kwargs):
    write_many(files[: len(files) // 2], **kwargs)
    print("stored", len(files) // 2, flush=True)
    sys.stdin.read()
journal.atomic.write_many = stored_half_then_wait
Project.open(sys.argv[1]).add_images("pants", [Path(p) for p in sys.argv[2:]])
"""


def test_undo_after_a_killed_add_stops_at_the_reversed_add(new_project: Project) -> None:
    """Issue 17, item 1: reversing the add a kill -9 interrupted is the undo the user asked
    for; the earlier, unrelated add of t-shirts stays."""
    new_project.add_images("t-shirt", demo_photos("t-shirt"))
    before = _photos(new_project)
    sources = [str(p) for c in ("pants", "shoes", "hat") for p in demo_photos(c)]
    adder = subprocess.Popen(
        [sys.executable, "-c", HALF_ADDER, str(new_project.root), *sources],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert adder.stdout is not None
    assert adder.stdout.readline().split()[0] == "stored"
    adder.send_signal(signal.SIGKILL)
    adder.wait(30)
    assert len(list((new_project.root / "train" / "pants").glob("*.jpg"))) > 0  # half stored

    result = run_duetml("undo", "-p", str(new_project.root))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    first = result.stdout.splitlines()[0]
    assert first == "Undone: add image(s) to 'pants', which an earlier duetml left half done."
    assert "Reversing it was the undo, so nothing older was undone" in result.stdout
    assert _photos(Project.open(new_project.root)) == before
    assert Project.open(new_project.root).undo_history() == ["add 25 image(s) to 't-shirt'"]
    # The next undo is the t-shirts', as the first one said.
    assert "`duetml undo` again would undo add 25 image(s) to 't-shirt'" in result.stdout
    result = run_duetml("undo", "-p", str(new_project.root))
    assert result.stdout.splitlines()[0] == "Undone: add 25 image(s) to 't-shirt'"
    assert _photos(Project.open(new_project.root)) == set()


def test_a_change_after_the_reversal_is_what_undo_takes_back(new_project: Project) -> None:
    """The reversal counts as the undo only until the next change: on a page left open after
    a kill, Undo after an add takes back that add."""
    new_project.add_images("t-shirt", demo_photos("t-shirt", 3))
    adder = subprocess.Popen(
        [sys.executable, "-c", HALF_ADDER, str(new_project.root), *map(str, demo_photos("pants"))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert adder.stdout is not None and adder.stdout.readline().startswith("stored")
    adder.send_signal(signal.SIGKILL)
    adder.wait(30)
    reopened = Project.open(new_project.root)
    assert reopened.recovered == "add image(s) to 'pants'"
    reopened.add_images("hat", demo_photos("hat", 2))
    assert reopened.undo() == "add 2 image(s) to 'hat'"
    assert reopened.undo() == "add 3 image(s) to 't-shirt'"
