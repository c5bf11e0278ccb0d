"""ONNX Runtime sessions for the backbones, at either precision."""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from duetml.backbones.int8 import ensure_int8, int8_path
from duetml.backbones.registry import Backbone
from duetml.backbones.weights import derived_path, ensure_onnx, find_weights, onnx_path

FEATURES_OUTPUT = "features"  # the output the sessions compute; the graph's other is the logits

if TYPE_CHECKING:  # a heavy import, made only where a session is built
    from onnxruntime import InferenceSession


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
    It computes the features only: the ImageNet head (a second output, 5 MB of weights) is
    left out, which took the first session of a process from 40 to 27 ms here.

    A session `open_session_early` began for this backbone is taken as it is, once.
    """
    early = _EARLY.pop(backbone.key, None) if threads is None and not spinning else None
    if early is not None:
        early.join()
        if early.session is not None:
            return early.session
    return _build_session(backbone, threads, spinning)


class _EarlySession(threading.Thread):
    def __init__(self, backbone: Backbone) -> None:
        super().__init__(name=f"open {backbone.key}", daemon=True)
        self.backbone = backbone
        self.session: InferenceSession | None = None

    def run(self) -> None:
        with contextlib.suppress(Exception):  # open_session then tries again, and says why
            self.session = _build_session(self.backbone, None, False)


_EARLY: dict[str, _EarlySession] = {}


def open_session_early(backbone: Backbone) -> None:
    """Begin opening the backbone's session on a thread; `open_session` takes it when asked.

    ONNX Runtime builds a session (about 50 ms here) with the GIL released, so the caller
    goes on importing and reading meanwhile: a cold `duetml predict` of one photo answers
    that much sooner (bench/bench_predict.py). ONNX Runtime, the heavy import, is made here
    before the thread starts, so the thread does not hold the GIL importing it while the
    caller imports too. Only a model file already made is opened: a guess never exports or
    quantizes (seconds of work).
    """
    import onnxruntime  # noqa: F401

    if backbone.key in _EARLY or not model_file_made(backbone):
        return
    thread = _EARLY[backbone.key] = _EarlySession(backbone)
    thread.start()
    atexit.register(thread.join)  # never exit while ONNX Runtime builds on the thread


def session_begun(backbone: Backbone) -> bool:
    """Whether `open_session_early` began a session for this backbone that nobody took yet."""
    return backbone.key in _EARLY


def model_file_made(backbone: Backbone) -> bool:
    """Whether `model_file` would return at once (nothing to export or quantize)."""
    if backbone.precision == "int8":
        return int8_path(backbone).is_file()
    if backbone.ships_with_package:
        return True
    weights = find_weights(backbone)
    return weights is not None and onnx_path(backbone, weights).is_file()


def _build_session(backbone: Backbone, threads: int | None, spinning: bool) -> InferenceSession:
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
        session = ort.InferenceSession(_features_only(source), fresh, providers)
        with contextlib.suppress(OSError):  # a read-only cache: the next session optimises too
            with open(scratch, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(scratch, optimised)
    finally:
        with contextlib.suppress(OSError):
            scratch.unlink()
    return session


def _features_only(source: Path) -> bytes:
    """The ONNX graph of ``source`` without what only its other outputs need (the ImageNet
    logits): what the feature extractor runs. Read with onnx, once per machine."""
    import onnx

    model = onnx.load(str(source))
    graph = model.graph
    needed = {FEATURES_OUTPUT}
    kept = []
    for node in reversed(graph.node):  # the nodes are in topological order
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(node.input)
    outputs = [o for o in graph.output if o.name == FEATURES_OUTPUT]
    initializers = [i for i in graph.initializer if i.name in needed]
    del graph.node[:], graph.output[:], graph.initializer[:]
    graph.node.extend(reversed(kept))
    graph.output.extend(outputs)
    graph.initializer.extend(initializers)
    return bytes(model.SerializeToString())


def optimised_path(source: Path) -> Path:
    """Where ONNX Runtime's optimised graph of ``source`` is kept, named by what it depends
    on: the source model, ONNX Runtime's version and this machine's CPU."""
    import platform

    import onnxruntime

    cpu = platform.machine()
    with contextlib.suppress(OSError):
        flags = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if "flags" in line]
        cpu += flags[0] if flags else ""
    return derived_path(source, "optimised", onnxruntime.__version__, cpu, FEATURES_OUTPUT)


def model_file(backbone: Backbone) -> Path:
    """The ONNX file that computes this backbone's features at its precision."""
    return ensure_int8(backbone) if backbone.precision == "int8" else ensure_onnx(backbone)
