"""Export a trained project as files that run without duetml: ONNX model, labels, script.

The exported `model.onnx` is one graph from pixels to calibrated probabilities: the backbone's
own ONNX export (uint8 NHWC photos in, its normalisation inside) merged with the SVM decision
and the calibration of `TrainedModel.predict_proba`, written as ONNX operators. Nothing is
pickled; whoever receives the folder needs onnxruntime, numpy and pillow, nothing else.

Why every SVM step is built by hand rather than with skl2onnx: duetml's model is not an
sklearn estimator (precomputed kernel, its own vote-plus-margin calibration), so the graph
has to follow `predict_proba` step by step. The SVM part runs in float64 like NumPy does, so
the exported probabilities match duetml's to ~1e-12 on the same pixels.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from duetml import __version__, atomic
from duetml.backbones import INPUT_SIZE, model_file
from duetml.classifier import RBF_GAMMA, RidgeModel, SvmModel, TrainedModel, class_pairs
from duetml.errors import DuetmlError

if TYPE_CHECKING:
    import onnx

    from duetml.project import Project

EXPORT_FILES = ("model.onnx", "labels.json", "predict.py", "README.md")
_PREDICT_SCRIPT = Path(__file__).parent / "export_predict.py"


class ExportReport(msgspec.Struct):
    """What `duetml export` wrote (`--json`: the folder as text)."""

    folder: Path
    files: list[str]
    categories: list[str]
    backbone: str


_Parts = tuple[list["onnx.NodeProto"], list["onnx.TensorProto"]]


def svm_graph(
    model: TrainedModel, feature_dim: int, opset: int, ir_version: int
) -> onnx.ModelProto:
    """`model.predict_proba` as ONNX: input "features" (n, d) float32, output "probabilities"."""
    from onnx import helper

    k = len(model.categories)
    if k < 2:
        raise DuetmlError("The model knows only one category: add another and train again.")
    if isinstance(model, RidgeModel):
        return _graph(_ridge_nodes(model), model, feature_dim, opset, ir_version)
    if not isinstance(model, SvmModel):
        raise DuetmlError(f"A {type(model).__name__} cannot be exported yet.")
    first, second = class_pairs(k)
    n_pairs = len(first)
    weights = _pair_weights(model, first, second)
    # Each class's signed sum over its pairs (+ as first class, - as second): the votes and
    # the confidences of `_votes_and_confidence` are both products with this matrix.
    signs = np.zeros((n_pairs, k))
    signs[np.arange(n_pairs), first] = 1.0
    signs[np.arange(n_pairs), second] = -1.0
    # Votes: a pair's first class wins when s >= 0, its second otherwise, so
    # votes = wins @ signs + (number of pairs in which the class is second).
    second_counts = np.bincount(second, minlength=k).astype(np.float64)

    const = _float64
    initializers = [
        const("svm_sv_t", model.support_vectors.astype(np.float64).T),
        const("svm_pair_weights", weights),
        const("svm_intercept", model.intercept),
        const("svm_signs", signs),
        const("svm_second_counts", second_counts),
        const("svm_zero", 0.0),
        const("svm_one", 1.0),
        const("svm_three", 3.0),
        const("svm_margin_factor", model.margin_weight / max(k - 1, 1)),
        const("svm_temperature", model.temperature),
        *_normalise_constants(),
    ]
    nodes = [
        *_normalise_nodes(),
        helper.make_node("MatMul", ["svm_x", "svm_sv_t"], ["svm_gram"]),
    ]
    kernel_nodes, kernel_constants = _kernel_nodes(model)
    nodes += kernel_nodes + _class_score_nodes()
    initializers += kernel_constants
    return _graph((nodes, initializers), model, feature_dim, opset, ir_version)


def _float64(name: str, value: Any) -> onnx.TensorProto:
    """A float64 constant of the SVM's graph."""
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value, dtype=np.float64), name)


def _pair_weights(model: SvmModel, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Pair p = (i, j) scores K[:, SV_i] . coef[j-1, SV_i] + K[:, SV_j] . coef[i, SV_j] + b_p
    (libsvm's layout); as one weight matrix, the whole one-vs-one step is a single MatMul."""
    starts = np.concatenate([[0], np.cumsum(model.n_support)]).astype(int)
    weights = np.zeros((model.support_vectors.shape[0], len(first)))
    for p, (i, j) in enumerate(zip(first, second, strict=True)):
        weights[starts[i] : starts[i + 1], p] = model.dual_coef[j - 1, starts[i] : starts[i + 1]]
        weights[starts[j] : starts[j + 1], p] = model.dual_coef[i, starts[j] : starts[j + 1]]
    return weights


def _kernel_nodes(model: SvmModel) -> _Parts:
    """The kernel between the photo and the support vectors, from their Gram matrix."""
    from onnx import helper

    const, node = _float64, helper.make_node
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    if model.kernel == "linear":
        nodes.append(node("Identity", ["svm_gram"], ["svm_kernel"]))
    elif model.kernel == "rbf":
        initializers.append(const("svm_two_gamma", 2.0 * RBF_GAMMA))
        # kernel(): exp(min(2 gamma g - 2 gamma, 0))
        nodes += [
            node("Mul", ["svm_gram", "svm_two_gamma"], ["svm_g2"]),
            node("Sub", ["svm_g2", "svm_two_gamma"], ["svm_g3"]),
            node("Min", ["svm_g3", "svm_zero"], ["svm_g4"]),
            node("Exp", ["svm_g4"], ["svm_kernel"]),
        ]
    else:
        raise DuetmlError(
            f"Models with a {model.kernel!r} kernel cannot be exported yet: "
            "only the linear and RBF SVMs and the ridge model can."
        )
    return nodes, initializers


def _class_score_nodes() -> list[onnx.NodeProto]:
    """The one-vs-one pairs' scores to each class's probability, as `predict_proba` does."""
    from onnx import TensorProto, helper

    node = helper.make_node
    return [
        node("MatMul", ["svm_kernel", "svm_pair_weights"], ["svm_pairs_raw"]),
        node("Add", ["svm_pairs_raw", "svm_intercept"], ["svm_pairs"]),
        node("GreaterOrEqual", ["svm_pairs", "svm_zero"], ["svm_wins_bool"]),
        node("Cast", ["svm_wins_bool"], ["svm_wins"], to=TensorProto.DOUBLE),
        node("MatMul", ["svm_wins", "svm_signs"], ["svm_votes_raw"]),
        node("Add", ["svm_votes_raw", "svm_second_counts"], ["svm_votes"]),
        node("MatMul", ["svm_pairs", "svm_signs"], ["svm_confidence"]),
        # class_scores(): votes + c / (3 (|c| + 1)) + margin_weight * c / (k - 1)
        node("Abs", ["svm_confidence"], ["svm_abs"]),
        node("Add", ["svm_abs", "svm_one"], ["svm_abs1"]),
        node("Mul", ["svm_abs1", "svm_three"], ["svm_den"]),
        node("Div", ["svm_confidence", "svm_den"], ["svm_tiebreak"]),
        node("Add", ["svm_votes", "svm_tiebreak"], ["svm_ovr"]),
        node("Mul", ["svm_confidence", "svm_margin_factor"], ["svm_margin"]),
        node("Add", ["svm_ovr", "svm_margin"], ["svm_scores"]),
        node("Div", ["svm_scores", "svm_temperature"], ["svm_tempered"]),
        node("Softmax", ["svm_tempered"], ["probabilities"], axis=1),
    ]


def _normalise_nodes() -> list[onnx.NodeProto]:
    """normalise(): float64, x / max(|x|, 1e-12); reads "features", writes "svm_x"."""
    from onnx import TensorProto, helper

    node = helper.make_node
    return [
        node("Cast", ["features"], ["svm_x64"], to=TensorProto.DOUBLE),
        node("Mul", ["svm_x64", "svm_x64"], ["svm_sq"]),
        node("ReduceSum", ["svm_sq", "svm_axis1"], ["svm_sqsum"], keepdims=1),
        node("Sqrt", ["svm_sqsum"], ["svm_norm"]),
        node("Max", ["svm_norm", "svm_eps"], ["svm_norm_safe"]),
        node("Div", ["svm_x64", "svm_norm_safe"], ["svm_x"]),
    ]


def _normalise_constants() -> list[onnx.TensorProto]:
    from onnx import numpy_helper

    return [
        numpy_helper.from_array(np.array(1e-12), "svm_eps"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "svm_axis1"),
    ]


def _ridge_nodes(model: RidgeModel) -> _Parts:
    """The large-project linear model: softmax((normalise(x) W^T + b) / T)."""
    from onnx import helper, numpy_helper

    node = helper.make_node
    constants = [
        *_normalise_constants(),
        numpy_helper.from_array(model.weights.astype(np.float64).T.copy(), "ridge_w_t"),
        numpy_helper.from_array(model.bias.astype(np.float64), "ridge_b"),
        numpy_helper.from_array(np.array(model.temperature, dtype=np.float64), "ridge_t"),
    ]
    nodes = [
        *_normalise_nodes(),
        node("MatMul", ["svm_x", "ridge_w_t"], ["ridge_raw"]),
        node("Add", ["ridge_raw", "ridge_b"], ["ridge_scores"]),
        node("Div", ["ridge_scores", "ridge_t"], ["ridge_tempered"]),
        node("Softmax", ["ridge_tempered"], ["probabilities"], axis=1),
    ]
    return nodes, constants


NEIGHBOUR_OUTPUT = "neighbour_distance"


def _neighbour_nodes(model: TrainedModel) -> _Parts | None:
    """`abstention.neighbour_distances` as ONNX: the mean distance from the normalised
    features ("svm_x") to the `neighbours` nearest training photos, output NEIGHBOUR_OUTPUT
    (n,) float32; None for a model without a "not sure" rule. The reference is float32,
    as duetml keeps it."""
    from onnx import TensorProto, helper, numpy_helper

    from duetml.prediction import abstention_rule

    rule, reference = abstention_rule(model)
    if rule is None or reference is None:
        return None
    node = helper.make_node
    constants = [
        numpy_helper.from_array(np.ascontiguousarray(reference.T, dtype=np.float32), "nn_ref_t"),
        numpy_helper.from_array(np.array([rule.neighbours], dtype=np.int64), "nn_k"),
        numpy_helper.from_array(np.array(2.0, dtype=np.float32), "nn_two"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "nn_zero"),
        numpy_helper.from_array(np.array(float(rule.neighbours), dtype=np.float32), "nn_count"),
    ]
    nodes = [
        node("Cast", ["svm_x"], ["nn_x"], to=TensorProto.FLOAT),
        node("MatMul", ["nn_x", "nn_ref_t"], ["nn_similarity"]),
        node("TopK", ["nn_similarity", "nn_k"], ["nn_top", "nn_top_index"], axis=1, largest=1),
        # sqrt(max(2 - 2 s, 0)) per neighbour, then their mean (ReduceSum / k: ReduceMean
        # takes its axes as an input only from opset 18 on; ReduceSum from 13).
        node("Mul", ["nn_top", "nn_two"], ["nn_top2"]),
        node("Sub", ["nn_two", "nn_top2"], ["nn_squared"]),
        node("Max", ["nn_squared", "nn_zero"], ["nn_squared_safe"]),
        node("Sqrt", ["nn_squared_safe"], ["nn_distances"]),
        node("ReduceSum", ["nn_distances", "svm_axis1"], ["nn_sum"], keepdims=0),
        node("Div", ["nn_sum", "nn_count"], [NEIGHBOUR_OUTPUT]),
    ]
    return nodes, constants


def _graph(
    parts: _Parts, model: TrainedModel, feature_dim: int, opset: int, ir_version: int
) -> onnx.ModelProto:
    import onnx
    from onnx import TensorProto, helper

    nodes, initializers = parts
    outputs = [
        helper.make_tensor_value_info(
            "probabilities", TensorProto.DOUBLE, ["n", len(model.categories)]
        )
    ]
    neighbours = _neighbour_nodes(model)
    if neighbours is not None:
        nodes = [*nodes, *neighbours[0]]
        initializers = [*initializers, *neighbours[1]]
        outputs.append(helper.make_tensor_value_info(NEIGHBOUR_OUTPUT, TensorProto.FLOAT, ["n"]))
    graph = helper.make_graph(
        nodes,
        "duetml_classifier",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", feature_dim])],
        outputs,
        initializers,
    )
    classifier = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    classifier.ir_version = ir_version
    onnx.checker.check_model(classifier)
    return classifier


def build_onnx(model: TrainedModel) -> onnx.ModelProto:
    """The backbone's graph followed by the SVM: uint8 photos -> probabilities.

    The backbone is the one the model was trained with, int8 or fp32: the exported model
    computes the very features the classifier was fitted on."""
    import onnx
    from onnx import compose

    from duetml.prediction import model_backbone

    backbone = model_backbone(model)
    net = onnx.load(str(model_file(backbone)))
    opset = next(o.version for o in net.opset_import if o.domain in ("", "ai.onnx"))
    svm = svm_graph(model, backbone.feature_dim, opset, net.ir_version)
    merged = compose.merge_models(
        net,
        svm,
        io_map=[("features", "features")],
        outputs=[o.name for o in svm.graph.output],  # probabilities (and neighbour_distance)
    )
    merged.doc_string = (
        f"duetml {__version__}: {backbone.name} ({backbone.precision}) + SVM, "
        "to calibrated probabilities"
    )
    onnx.checker.check_model(merged)
    return merged


def not_sure_document(model: TrainedModel) -> dict[str, Any] | None:
    """The "not sure" rule as predict.py applies it (None: the model has none)."""
    from duetml.abstention import REASON_TEXT
    from duetml.prediction import abstention_rule

    rule, _ = abstention_rule(model)
    if rule is None:
        return None
    return {
        **rule.as_dict(),
        "output": NEIGHBOUR_OUTPUT,
        "rule": (
            f"not sure when {NEIGHBOUR_OUTPUT} (the mean distance to the {rule.neighbours} "
            "nearest training photos) is above distance_threshold, or the top probability is "
            "at or below probability_floor"
        ),
        "reasons": REASON_TEXT,
    }


def labels_document(model: TrainedModel) -> dict[str, Any]:
    from duetml.prediction import model_backbone

    meta = model.meta
    trained_at = meta.get("trained_at")
    not_sure = not_sure_document(model)
    return {
        "categories": model.categories,
        "backbone": model.backbone,
        "preprocessing": {
            **meta.get("preprocessing", {}),
            "crop_resize": (
                "upright photo (EXIF orientation applied), RGB, central square cropped, "
                f"resized to {INPUT_SIZE}x{INPUT_SIZE} with OpenCV's bilinear (INTER_LINEAR) "
                "resize; predict.py does this, the resize reproduced bit for bit in NumPy"
            ),
            "model_input": f"uint8 array (n, {INPUT_SIZE}, {INPUT_SIZE}, 3), RGB, named 'photos'",
            "model_output": "float64 array (n, categories), named 'probabilities'"
            + (f"; float32 (n,), named '{NEIGHBOUR_OUTPUT}'" if not_sure else ""),
            "normalisation": "inside the model",
        },
        "kernel": model.kernel,
        "duetml_version": meta.get("duetml_version"),
        "exported_by_duetml": __version__,
        "trained_at": dt.datetime.fromtimestamp(float(trained_at), dt.UTC).isoformat()
        if trained_at is not None
        else None,
        "cv_accuracy": meta.get("cv_accuracy"),
        "cv_folds": meta.get("cv_folds"),
        # >0: the accuracy extends the last full cross-validation with photos added since
        "cv_added_since": meta.get("cv_added_since") or 0,
        "images": meta.get("images"),
        "precision": f"{model_backbone(model).precision} backbone, fp64 classifier",
        "not_sure": not_sure,
    }


def _readme(labels: dict[str, Any]) -> str:
    accuracy = labels["cv_accuracy"]
    added = labels.get("cv_added_since") or 0
    accuracy_line = (
        "The model was not cross-validated (too few photos).\n"
        if not isinstance(accuracy, float)
        else f"Cross-validated accuracy at training: {accuracy:.1%}.\n"
        if not added
        else f"Held-out accuracy at training: {accuracy:.1%} (the last full cross-validation, "
        f"with the {added} photo(s) added since predicted by the model trained before them).\n"
    )
    return (
        "# An image classifier exported from duetml\n\n"
        f"Categories: {', '.join(labels['categories'])}. Backbone: {labels['backbone']}.\n"
        + accuracy_line
        + "\n## Use it\n\n"
        "    pip install onnxruntime numpy pillow\n"
        "    python predict.py photo.jpg other.png\n\n"
        "Each line reads `photo.jpg: shoes 95%, hat 4%, pants 0%`; `--json` prints JSON.\n\n"
        + _not_sure_readme(labels)
        + "## In your own code\n\n"
        f"`model.onnx` takes a batch of {INPUT_SIZE}x{INPUT_SIZE} RGB photos as uint8, shape "
        f"(n, {INPUT_SIZE}, {INPUT_SIZE}, 3), input name `photos`, and returns `probabilities` "
        "(n, categories), in the order of `categories` in `labels.json`. Crop the central "
        f"square of the upright photo and resize it to {INPUT_SIZE}x{INPUT_SIZE} first, as "
        "`load_photo` in predict.py does; the normalisation is inside the model.\n"
    )


def _not_sure_readme(labels: dict[str, Any]) -> str:
    rule = labels.get("not_sure")
    if not rule:
        return ""
    return (
        "## Not sure\n\n"
        "A photo unlike the training photos of every category, or too close to call, gets "
        "`photo.jpg: not sure (closest: shoes 41%)`, and `not_sure` and `reason` in the JSON; "
        "`--no-abstain` always names the most likely category. The rule was fitted on the "
        "project's own photos when it was trained: `model.onnx` has a second output, "
        f"`{rule['output']}`, the mean distance from the photo to its {rule['neighbours']} "
        "nearest training photos (their features are inside the model); above "
        f"`distance_threshold` ({rule['distance_threshold']:.4f}, which "
        f"{1 - rule['quantile']:.0%} of held-out training photos exceed) the photo is unlike "
        "every category. A top probability at or below `probability_floor` "
        f"({rule['probability_floor']:.4f}, under which the model's cross-validated answers "
        "were mostly wrong) is too close to call. Both numbers are in `labels.json`.\n\n"
    )


def export_model(model: TrainedModel, folder: Path) -> ExportReport:
    """Write model.onnx, labels.json, predict.py and README.md into ``folder``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DuetmlError(f"{folder} is a file: give a folder to export into.")
    graph = build_onnx(model)
    labels = labels_document(model)
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(folder / "model.onnx", graph.SerializeToString())
    atomic.write_text(folder / "labels.json", json.dumps(labels, indent=2) + "\n")
    atomic.write_text(folder / "predict.py", _PREDICT_SCRIPT.read_text(encoding="utf-8"))
    atomic.write_text(folder / "README.md", _readme(labels))
    for name in EXPORT_FILES:
        # Atomic writes create private (0600) files; these are meant to be handed on.
        (folder / name).chmod(0o644)
    return ExportReport(folder, list(EXPORT_FILES), model.categories, model.backbone)


def export_project(project: Project, folder: Path) -> ExportReport:
    from duetml.prediction import load_model

    _refuse_inside_the_data(project, Path(folder))
    return export_model(load_model(project), folder)


def _refuse_inside_the_data(project: Project, folder: Path) -> None:
    """The export is not a photo: inside train/ or test/ (a category folder) its files would
    sit among the photos, and inside .duetml/ among duetml's own state."""
    target = folder.resolve()  # symbolic links followed: where the files would really land
    for part, what in (("train", "the training photos"), ("test", "the test photos")):
        place = project.root / part
        if target == place or place in target.parents:
            raise DuetmlError(
                f"{folder} is inside {what} of this project: export into a folder of its own, "
                "e.g. `-o exported-model`."
            )
    state = project.state_dir.resolve()
    if target == state or state in target.parents:
        raise DuetmlError(
            f"{folder} is inside duetml's own state (.duetml): export into a folder of its "
            "own, e.g. `-o exported-model`."
        )


def archive_name(project: Project) -> str:
    """The download's folder name: the project's name in characters any file system takes."""
    import re

    name = re.sub(r"[^A-Za-z0-9._-]+", "_", project.root.name).strip("._")[:60]
    return f"{name or 'duetml'}-model"


def export_archive(project: Project) -> bytes:
    """What `export_project` writes, as one zip (the page's download) in a folder named by
    `archive_name`, so that unzipping gives one folder rather than four loose files."""
    import io
    import tempfile
    import zipfile

    folder = archive_name(project)
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="duetml-export-") as scratch:
        report = export_project(project, Path(scratch))
        with zipfile.ZipFile(buffer, "w") as archive:
            for name in report.files:
                # The weights barely compress (about a tenth, for ten times the time): stored.
                packing = zipfile.ZIP_STORED if name.endswith(".onnx") else zipfile.ZIP_DEFLATED
                archive.write(Path(scratch) / name, f"{folder}/{name}", packing)
    return buffer.getvalue()
