"""Latency of a cold `duetml predict` of one photo on a trained project, beside Python's own
start (`python -c pass`) in the same run.

    python bench/bench_predict.py [TRAINED_PROJECT] [PHOTO] [--runs N]

The command is run as a user runs it (`duetml predict PHOTO -p PROJECT`, the console
script's entry point, Typer and all), alternating with `python -c pass`, N times each (default
9); the figures are medians, and the aim is the command within 200 ms of `python -c pass`.
Then, in one more fresh process, where the time goes phase by phase (imports, model load,
ONNX Runtime session, decode + resize, network, SVM).

Python writes bytecode for every run here, as for a package pip installed (pip compiles it at
install time): with PYTHONDONTWRITEBYTECODE set, as it is in some shells, each run would
compile duetml's modules afresh, about 50 ms that no installed duetml spends.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT = Path(tempfile.gettempdir()) / "duetml-bench-caltech"

PHASES = r"""
import os, sys, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as duetml.cli.main does for predict
t0 = time.perf_counter()
from pathlib import Path
import typer
from duetml.cli import _commands
_commands("model_cmds")
from duetml.project import Project
from duetml.prediction import PREDICTION_EXTRAS, load_model, abstention_rule, model_backbone
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
features = extractor.run(square[None])
t5 = time.perf_counter()
probabilities = model.predict_proba(features)
rule, reference = abstention_rule(model)
abstention.reasons(rule, reference, normalise(features), probabilities)
t6 = time.perf_counter()
print(" ".join(f"{v:.4f}" for v in (t1-t0, t2-t1, t3-t2, t4-t3, t5-t4, t6-t5)))
"""


ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True, env=ENV)
    return time.perf_counter() - start


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds, and CPU seconds (user + system) of the process: on a shared machine
    the CPU time moves less with the load than the wall time does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = wall(command)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("project", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("photo", nargs="?", type=Path)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    photo = args.photo or next((args.project / "train").rglob("*.jpg"))
    python = [sys.executable, "-c", "pass"]
    predict = [
        sys.executable,
        "-c",
        "import sys; from duetml.cli import main; sys.argv[0] = 'duetml'; main()",
        "predict",
        str(photo),
        "-p",
        str(args.project),
    ]
    wall(predict)  # once first: the optimised graph and the OS file cache are made here
    python_runs, predict_runs = [], []
    for _ in range(args.runs):
        python_runs.append(timed(python))
        predict_runs.append(timed(predict))
    python_wall, python_cpu = (statistics.median(r[i] for r in python_runs) for i in (0, 1))
    command_wall, command_cpu = (statistics.median(r[i] for r in predict_runs) for i in (0, 1))
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"medians of {args.runs} runs, alternating; load average {load}")
    print(
        f"`duetml predict` of one photo, cold: {command_wall * 1000:5.0f} ms wall, "
        f"{command_cpu * 1000:5.0f} ms CPU"
    )
    print(
        f"`python -c pass`, same run:          {python_wall * 1000:5.0f} ms wall, "
        f"{python_cpu * 1000:5.0f} ms CPU"
    )
    print(
        f"difference: {(command_wall - python_wall) * 1000:.0f} ms wall, "
        f"{(command_cpu - python_cpu) * 1000:.0f} ms CPU (aim: within 200 ms)"
    )
    out = subprocess.run(
        [sys.executable, "-c", PHASES, str(args.project), str(photo)],
        capture_output=True,
        text=True,
        check=True,
        env=ENV,
    ).stdout
    phases = [float(v) for v in out.split()]
    names = ["imports", "model load", "ONNX session", "decode+resize", "network", "SVM+not sure"]
    print("one more process, phase by phase, one after the other (the command itself has")
    print("ONNX Runtime build the session on a thread beside the imports and the decoding):")
    for name, value in zip(names, phases, strict=True):
        print(f"  {name + ':':<16}{value * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
