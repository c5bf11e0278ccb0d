"""Latency of `duetml predict` of one photo on a trained project, phase by phase, cold.

    python bench/bench_predict.py [TRAINED_PROJECT] [PHOTO]

Runs in a fresh process so nothing is warm: imports, model load (the .npz), ONNX Runtime
session, decode + resize, network, SVM. Python's own start is excluded (the target is
< 150 ms without it). Reference in the same run: a bare `python -c pass`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT = Path(tempfile.gettempdir()) / "duetml-bench-caltech"

CHILD = r"""
import sys, time
t0 = time.perf_counter()
from pathlib import Path
from duetml.cli import guard, predict_quick
from duetml.project import Project
from duetml.training import PREDICTION_EXTRAS, load_model, abstention_rule, model_backbone
from duetml.backbones import INPUT_SIZE
from duetml.images import load_square
from duetml.features import extractor_for
from duetml import abstention
from duetml.classifier import normalise
t1 = time.perf_counter()
project = Project.open(Path(sys.argv[1]))
model = load_model(project, PREDICTION_EXTRAS)
t2 = time.perf_counter()
extractor = extractor_for(model_backbone(model))
t3 = time.perf_counter()
square = load_square(Path(sys.argv[2]), INPUT_SIZE)
t4 = time.perf_counter()
features, _ = extractor.run(square[None])
t5 = time.perf_counter()
probabilities = model.predict_proba(features)
rule, reference = abstention_rule(model)
abstention.reasons(rule, reference, normalise(features), probabilities)
t6 = time.perf_counter()
print(" ".join(f"{v:.4f}" for v in (t1-t0, t2-t1, t3-t2, t4-t3, t5-t4, t6-t5)))
"""


def main() -> None:
    project = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    photo = Path(sys.argv[2]) if len(sys.argv) > 2 else next((project / "train").rglob("*.jpg"))
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(project), str(photo)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        runs.append([float(v) for v in out.split()])
    best = [min(r[i] for r in runs) for i in range(6)]
    python_start = best_of([sys.executable, "-c", "pass"])
    names = ["imports", "model load", "ONNX session", "decode+resize", "network", "SVM+not sure"]
    for name, value in zip(names, best, strict=True):
        print(f"{name + ':':<16}{value * 1000:7.1f} ms")
    print(f"{'total:':<16}{sum(best) * 1000:7.1f} ms (best of 3, Python start excluded; aim < 150)")
    print(f"{'reference:':<16}{python_start * 1000:7.1f} ms for `python -c pass`, same run")
    args = ["predict", str(photo), "-p", str(project)]
    quick = best_of([sys.executable, "-c", "from duetml.cli import main; main()", *args])
    # The same command through Typer's parser (how every `duetml predict` ran before).
    typer = best_of(
        [sys.executable, "-c", "from duetml.cli import app; app(prog_name='duetml')", *args]
    )
    print(
        f"{'CLI call:':<16}{quick * 1000:7.1f} ms wall for the whole `duetml predict` process, "
        f"{(quick - python_start) * 1000:.0f} ms without Python's start (best of 3)"
    )
    print(
        f"{'via Typer:':<16}{typer * 1000:7.1f} ms wall, {(typer - python_start) * 1000:.0f} ms "
        "without Python's start, same run"
    )


def best_of(command: list[str], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return min(times)


if __name__ == "__main__":
    main()
