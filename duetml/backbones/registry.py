"""The backbones duetml knows, what each one is, and the two precisions each runs at."""

from __future__ import annotations

from dataclasses import dataclass, replace

from duetml.errors import DuetmlError

INPUT_SIZE = 224
PRECISIONS = ("int8", "fp32")


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
