"""ONNX Runtime session creation for the backbone: the optimised graph saved once per machine
against optimising the graph at every start, in turn, at both precisions.

    python bench/bench_session.py [--rounds R]

`backbones.open_session` saves ONNX Runtime's optimised graph in the user cache the first time
and later loads it with the optimisations off; the reference is what it did before, full
optimisation (ORT_ENABLE_ALL) of the exported graph at every session. Both sessions must give
the same features, which is checked on one photo.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort

from duetml.backbones import get_backbone, model_file, open_session, optimised_path
from duetml.demo import DEMO_DATA
from duetml.images import load_square


def optimising_every_time(path: str) -> tuple[ort.InferenceSession, float]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    start = time.perf_counter()
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return session, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    photo = load_square(sorted(DEMO_DATA.glob("*/*.jpg"))[0], 224)[None]
    for precision in ("fp32", "int8"):
        backbone = get_backbone("efficientnet-lite0", precision)
        open_session(backbone)  # the one-time export, quantization and optimisation
        assert optimised_path(model_file(backbone)).is_file()
        saved, fresh = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            session = open_session(backbone)
            saved.append(time.perf_counter() - start)
            reference, seconds = optimising_every_time(str(model_file(backbone)))
            fresh.append(seconds)
        ours = session.run(None, {"photos": photo})[0]
        theirs = reference.run(None, {"photos": photo})[0]
        print(
            f"{precision}: saved optimised graph {1000 * min(saved):.0f}-{1000 * max(saved):.0f} ms"
            f" (median {1000 * np.median(saved):.0f}); optimising at every start "
            f"{1000 * min(fresh):.0f}-{1000 * max(fresh):.0f} ms (median "
            f"{1000 * np.median(fresh):.0f}); features differ by at most "
            f"{np.abs(ours - theirs).max():.2g}"
        )


if __name__ == "__main__":
    main()
