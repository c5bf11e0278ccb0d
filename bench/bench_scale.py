"""The scaling curve of the classifier part: photos vs train time and peak memory.

    python bench/bench_scale.py [N ...]     (default 1000 2500 5000 7500 10000 25000)

Synthetic 100-category features (Gaussian clusters in 1,280 dimensions, like the backbone's),
one fresh process per size so the peak RSS is that size's alone; "beyond the features"
subtracts the RSS once the features exist. Each size runs a first training (full selection
and a fresh cross-validation), then a re-train with 5 more photos as `duetml train` runs it
(the last cross-validation extended, only the final model fitted). Reference in the same
run and process: the Gram product of 5,000 of the features in float64 (a fixed unit of
work, to read wall seconds on a busy machine). Below 10,000 photos the model is the kernel
SVM (n x n kernel), from 10,000 on the ridge classifier (O(n d) memory).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np
from duetml import classifier
n = int(sys.argv[1]); k = 100; d = 1280
rng = np.random.default_rng(0)
centres = rng.normal(size=(k, d))
y = np.arange(n) % k
x = centres.astype(np.float32)[y] + 1.6 * rng.standard_normal(size=(n, d), dtype=np.float32)
names = [f"c{i:03d}" for i in range(k)]
labels = [names[i] for i in y]
keys = [f"photo{i}" for i in range(n)]
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024
base = rss()
u = classifier.normalise(x[:5000])  # a fixed unit of work: at 25,000 an n x n is 2.5 GB
w, c = time.perf_counter(), time.process_time()
u @ u.T
ref = (time.perf_counter() - w, time.process_time() - c)
del u
w, c = time.perf_counter(), time.process_time()
model, cv, _ = classifier.train(x, labels, names, "synthetic", keys=keys)
full = (time.perf_counter() - w, time.process_time() - c)
earlier = classifier.EarlierCrossValidation(
    model=model, keys=keys, labels=labels, probabilities=cv.probabilities,
    from_folds=np.ones(n, dtype=bool), fresh_photos=n, folds=cv.folds,
    candidate_scores=cv.candidate_scores,
)
x5 = np.concatenate([x, x[:5] + 0.01]); l5 = labels + labels[:5]; k5 = keys + list("abcde")
w, c = time.perf_counter(), time.process_time()
_, cv5, _ = classifier.train(x5, l5, names, "synthetic", keys=k5, earlier=earlier)
small = (time.perf_counter() - w, time.process_time() - c)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"n": n, "ref": ref, "full": full, "small": small, "peak_mb": peak - base,
                  "cv": cv.accuracy, "model": model.kernel, "extended": cv5.added_since == 5}))
"""


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 2500, 5000, 7500, 10000, 25000]
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} (1-min average)")
    print(
        "photos  model   first training (wall/CPU s)  +5 photos (wall/CPU s)  "
        "peak MB beyond features  CV acc   5k Gram ref (wall/CPU s)"
    )
    for n in sizes:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True, check=True
        ).stdout
        r = json.loads(out.splitlines()[-1])
        print(
            f"{r['n']:>6}  {r['model']:<6}  {r['full'][0]:8.1f} / {r['full'][1]:6.1f}"
            f"              {r['small'][0]:6.1f} / {r['small'][1]:5.1f}"
            f"{'' if r['extended'] else ' (not extended)'}"
            f"          {r['peak_mb']:6.0f}           {r['cv']:.4f}   "
            f"{r['ref'][0]:5.2f} / {r['ref'][1]:5.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
