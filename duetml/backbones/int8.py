"""int8: the fp32 graph quantized once per machine, calibrated on photos that ship with duetml."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from duetml.backbones.registry import INPUT_SIZE, Backbone
from duetml.backbones.weights import derived_path, ensure_onnx

QUANTIZE_VERSION = 2  # bump when the quantization recipe changes, so old int8 models are redone
CALIBRATION_PER_CATEGORY = 16  # 4 demo categories x 16 = 64 calibration photos


def calibration_photos() -> list[Path]:
    """The photos int8 is calibrated on: the first few of each demo category, in name order,
    so every machine calibrates on the same photos in the same order."""
    demo = Path(__file__).parent.parent / "demo_data"
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

    from onnxruntime.quantization.shape_inference import quant_pre_process

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".quantize.", dir=path.parent) as work:
        prepared = Path(work) / "prepared.onnx"
        quantized = Path(work) / "int8.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(str(ensure_onnx(backbone)), str(prepared), skip_symbolic_shape=True)
        _scalar_normalisation(prepared)
        quantize_qdq(prepared, quantized, calibration_photos())
        with open(quantized, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(quantized, path)  # same folder: atomic; a reader sees all of it or none
    return path


def quantize_qdq(
    prepared: Path,
    quantized: Path,
    photos: Sequence[Path],
    *,
    reduce_range: bool = True,
    method: str = "minmax",
    nodes_to_exclude: Sequence[str] = (),
    extra_options: dict[str, object] | None = None,
) -> None:
    """ONNX Runtime's static QDQ quantization of ``prepared`` into ``quantized``, calibrated
    on ``photos``: int8 weights per output channel, uint8 activations. duetml's recipe is the
    defaults; bench/bench_int8_recipes.py tries the others (method "percentile", "entropy")."""
    import warnings

    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from duetml.images import load_square

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }

    class Photos(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.photos = iter(photos)

        def get_next(self) -> dict[str, object] | None:
            photo = next(self.photos, None)
            return None if photo is None else {"photos": load_square(photo, INPUT_SIZE)[None]}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(
            str(prepared),
            str(quantized),
            Photos(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            nodes_to_exclude=list(nodes_to_exclude),
            extra_options=extra_options or {},
        )


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
