"""PyTorch: building a backbone's network from its weights and exporting it to ONNX.

The only module of duetml that imports torch (and torchvision), always inside the function
that needs it: PyTorch is the `torch` extra, needed once per machine to export a backbone
other than the shipped one, and to rebuild the shipped file (bench/build_backbone_onnx.py).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from duetml.backbones.registry import INPUT_SIZE, Backbone
from duetml.errors import BackboneUnavailableError

if TYPE_CHECKING:  # a heavy import, made only where a network is built
    import torch

EXPORT_VERSION = 1  # bump when the exported graph changes, so stale exports are redone
TORCH_EXTRA = 'pip install "duetml[torch]"'


def torch_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) for name in ("torch", "torchvision"))


def require_torch(backbone: Backbone) -> None:
    """PyTorch is an extra: only backbones other than the shipped one need it, once."""
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError:
        raise BackboneUnavailableError(
            f"{backbone.name} is built with PyTorch, which is not installed: install it with "
            f"`{TORCH_EXTRA}`, or use the default `efficientnet-lite0`, which needs no PyTorch.",
            web=f"{backbone.name} needs PyTorch, which is not installed: install it in a "
            f"terminal with `{TORCH_EXTRA}`, or make the default efficientnet-lite0 this "
            "project's backbone in its duetml.toml.",
        ) from None


def build_torch_model(backbone: Backbone, weights: Path) -> torch.nn.Module:
    """The network as a module mapping uint8 NHWC photos to (features, logits)."""
    import torch

    state = torch.load(weights, map_location="cpu", weights_only=True)
    if backbone.name == "efficientnet-lite0":
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0")
        net.load_state_dict(state)

        def features(x: torch.Tensor) -> torch.Tensor:
            pooled: torch.Tensor = net.extract_features(x).mean((2, 3))
            return pooled

        head = net._fc
    else:
        import torchvision

        factory = getattr(torchvision.models, backbone.name.replace("-", "_"))
        net = factory(weights=None)
        net.load_state_dict(state)

        def features(x: torch.Tensor) -> torch.Tensor:
            pooled: torch.Tensor = net.avgpool(net.features(x)).flatten(1)
            return pooled

        head = net.classifier

    mean = torch.tensor(backbone.mean).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(backbone.std).view(1, 3, 1, 1) * 255.0

    class Extractor(torch.nn.Module):
        mean: torch.Tensor  # buffers, registered below
        std: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.head = head
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)

        def forward(self, photos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = (photos.permute(0, 3, 1, 2).float() - self.mean) / self.std
            pooled = features(x)
            return pooled, self.head(pooled)

    return Extractor().eval()


def export_onnx(model: torch.nn.Module, path: Path) -> None:
    """Export a network from `build_torch_model` to ``path`` (written atomically)."""
    import warnings

    import torch

    example = torch.zeros(1, INPUT_SIZE, INPUT_SIZE, 3, dtype=torch.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                tmp_name,
                input_names=["photos"],
                output_names=["features", "logits"],
                dynamic_axes={"photos": {0: "n"}, "features": {0: "n"}, "logits": {0: "n"}},
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
